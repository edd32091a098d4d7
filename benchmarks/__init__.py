"""fastmf's benchmarks: pytest-benchmark figures (``test_bench_*.py``) and the side-by-side runner
(``python -m benchmarks.compare``). Not part of the installed package."""

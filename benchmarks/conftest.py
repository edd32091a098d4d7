"""Options of fastmf's pytest-benchmark files (``pytest benchmarks/ --benchmark-only``).

The 25M-rating cases run only with ``--bench-25m``. ``--bench-sizes`` and ``--bench-factors``
replace the sizes and factor counts (e.g. ``--bench-sizes 5000 --bench-factors 8`` for a smoke
run of the code itself).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastmf benchmarks")
    group.addoption(
        "--bench-25m",
        action="store_true",
        default=False,
        help="also run the cases on the 25M-rating synthetic ML-25M twin",
    )
    group.addoption(
        "--bench-sizes",
        default=None,
        help="comma-separated numbers of ratings replacing 1M,5M(,25M)",
    )
    group.addoption(
        "--bench-factors", default=None, help="comma-separated factor counts replacing 32,64,128"
    )
    group.addoption(
        "--bench-threads", default=None, help="comma-separated thread counts replacing 1,2"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench25m: a benchmark on 25M ratings (needs --bench-25m)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--bench-25m"):
        return
    skip = pytest.mark.skip(reason="25M-rating benchmark: pass --bench-25m to run it")
    for item in items:
        if "bench25m" in item.keywords:
            item.add_marker(skip)

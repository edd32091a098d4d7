"""Side-by-side comparison of fastmf with the libraries its users would pick instead.

Run ``python -m benchmarks.compare --help``. Each library trains on the same split with the same
number of factors and epochs, in its own process under a time and memory budget; the report is a
markdown table, a JSON file with the machine and every figure, and a plot of test RMSE against
wall time.
"""

from benchmarks.compare.peers import PEERS
from benchmarks.compare.runner import Settings, run_comparison

__all__ = ["PEERS", "Settings", "run_comparison"]

"""One library's run, in its own process: ``python -m benchmarks.compare.worker SPEC.json``.

Writes JSON lines to the spec's progress file as it goes (``start``, one ``epoch`` per point of
the curve, then ``done`` or ``error``), so the runner knows what was reached even when this process
is killed for time or memory.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path


def _die_with_parent() -> None:
    """Be killed if the runner dies (Linux), so no worker is left running on its own."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    _die_with_parent()
    spec = json.loads(Path(argv[0]).read_text())
    progress = open(spec["progress"], "a", encoding="utf-8")  # noqa: SIM115

    def emit(event: str, **data) -> None:
        progress.write(json.dumps({"event": event, "t": time.time(), **data}) + "\n")
        progress.flush()

    try:
        from benchmarks.compare.data import Split
        from benchmarks.compare.peers import PEERS, Context, rss_gb

        peer = PEERS[spec["library"]]
        split = Split.load(Path(spec["data_dir"]))
        baseline = rss_gb()
        emit("start", version=peer.version(), baseline_rss_gb=baseline)
        ctx = Context(
            split=split,
            n_factors=spec["n_factors"],
            n_epochs=spec["n_epochs"],
            reg=spec["reg"],
            threads=spec["threads"],
            seed=spec["seed"],
            options=spec.get("options", {}),
            emit=emit,
        )
        summary = peer.run(ctx)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        if ctx.baseline_rss_gb is not None:
            baseline = ctx.baseline_rss_gb  # after the library's import
        emit("done", peak_rss_gb=peak, baseline_rss_gb=baseline, **summary)
        return 0
    except Exception as exc:  # noqa: BLE001 - reported to the runner, which goes on
        emit("error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        return 1
    finally:
        progress.close()


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit at once: a library thread stuck in compiled code (a LIBMF hang) must not hold the
    # process open after its result has been reported.
    os._exit(code)

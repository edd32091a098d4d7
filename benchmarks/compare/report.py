"""The comparison's outputs: a markdown table, a JSON file of every figure, a plot of test RMSE
against wall time (one line per library)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path


def _fmt(value, digits: int = 3, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{suffix}"


def markdown(report: dict) -> str:
    """The report as a markdown section: the settings, the machine and one row per library."""
    s, d, m = report["settings"], report["data"], report["machine"]
    lines = [
        (
            f"### {d['dataset']}: {d['n_train']:,} train / {d['n_test']:,} test ratings, "
            f"{d['n_users']:,} users, {d['n_items']:,} items"
        ),
        "",
        (
            f"{s['n_factors']} factors, {s['n_epochs']} epochs, reg {s['reg']}, {s['threads']} "
            f"threads; {m['cpu_model']}, {m['usable_cores'] or m['logical_cores']} cores, "
            f"{m['memory_gb']} GB; run {report['started']}."
        ),
        "",
    ]
    target = report.get("target_rmse")
    notes = [
        f"Target test RMSE {target:.4f} (1.01 x the best final RMSE)."
        if target
        else "No library finished, so no target."
    ]
    if "truth_test_rmse" in d:
        notes.append(
            f"The hidden model's own test RMSE (the best reachable) is {d['truth_test_rmse']:.4f}."
        )
    if s.get("parallel", 1) > 1:
        notes.append("Libraries ran concurrently (a smoke run): the timings mean nothing.")
    lines += [" ".join(notes), ""]
    base = next(
        (r for r in report["results"] if r["library"] == "fastmf" and r.get("status") == "ok"), None
    )
    lines += [
        (
            "| library | version | threads | s/epoch | x fastmf | fit s | setup s | to target s "
            "| to target x LIBMF-AVX | test RMSE | test MAE | peak RSS GB | status |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        ok = r.get("status") == "ok"
        ratio = (
            r["seconds_per_epoch"] / base["seconds_per_epoch"]
            if ok and base and base["seconds_per_epoch"] > 0
            else None
        )
        ttt = r.get("time_to_target")
        if ttt is not None:
            ttt_text = ("<= " if r.get("time_to_target_upper_bound") else "") + _fmt(ttt, 2)
        else:
            ttt_text = "not reached" if ok or r.get("curve") else "-"
        status = r.get("status", "?")
        if not ok:
            status += ": " + (r.get("reason") or r.get("reached") or "")
            status = status.rstrip(": ")
        elif r.get("notes"):
            status += f" ({r['notes']})"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["label"],
                    r.get("version") or "-",
                    str(r.get("threads", "-")),
                    _fmt(r.get("seconds_per_epoch"), 3),
                    _fmt(ratio, 1, "x"),
                    _fmt(r.get("fit_seconds"), 2),
                    _fmt(_setup(r), 2),
                    ttt_text,
                    _fmt(r.get("time_to_target_vs_libmf_avx"), 2, "x"),
                    _fmt(r.get("final_rmse"), 4),
                    _fmt(r.get("final_mae"), 4),
                    _fmt(r.get("peak_rss_gb"), 2),
                    status.replace("|", "/").replace("\n", " ")[:160],
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _setup(r: dict) -> float | None:
    """Preparing the library's input plus the setup inside its fit call, where known."""
    parts = [r.get("prepare_seconds"), r.get("setup_seconds")]
    known = [p for p in parts if p is not None]
    return sum(known) if known else None


def plot_curves(report: dict, path: Path) -> Path | None:
    """Test RMSE against wall time, one line per library; None when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(11, 5))
    for r in report["results"]:
        curve = r.get("curve") or []
        if curve:
            ax.plot(
                [p["seconds"] for p in curve],
                [p["test_rmse"] for p in curve],
                marker="o",
                markersize=3,
                label=r["label"],
            )
        elif r.get("status") == "ok":
            ax.plot(
                [r["total_seconds"]],
                [r["final_rmse"]],
                marker="x",
                markersize=9,
                linestyle="none",
                label=f"{r['label']} (final only)",
            )
    if report.get("target_rmse"):
        ax.axhline(report["target_rmse"], color="gray", linestyle=":", label="target")
    truth = report["data"].get("truth_test_rmse")
    if truth:
        ax.axhline(
            truth,
            color="black",
            linestyle="--",
            linewidth=0.8,
            label="hidden model (best reachable)",
        )
    s, d = report["settings"], report["data"]
    ax.set_xscale("log")
    ax.set_xlabel("wall time, seconds (setup + training; evaluation not counted)")
    ax.set_ylabel("test RMSE")
    ax.set_title(
        f"{d['dataset']}: {s['n_factors']} factors, {s['n_epochs']} epochs, {s['threads']} threads"
    )
    ys = [p["test_rmse"] for r in report["results"] for p in r.get("curve") or []]
    if ys and report.get("target_rmse"):
        ax.set_ylim(min(ys + [truth or ys[0]]) - 0.01, min(max(ys), 2.5 * report["target_rmse"]))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(report: dict, out_dir: Path, *, plot: bool = True) -> dict:
    """Write ``compare-<dataset>-<time>.{json,md,png}`` into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", report["data"]["dataset"])
    base = out_dir / f"compare-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    files = {"json": str(base.with_suffix(".json")), "markdown": str(base.with_suffix(".md"))}
    if plot:
        made = plot_curves(report, base.with_suffix(".png"))
        if made is not None:
            files["plot"] = str(made)
    Path(files["markdown"]).write_text(markdown(report))
    Path(files["json"]).write_text(json.dumps(dict(report, files=files), indent=2, default=str))
    return files

"""The benchmarks run on tiny data, so that neither the side-by-side runner nor the
pytest-benchmark files can rot. Peers that are not installed are reported as skipped."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.compare import PEERS, Settings, run_comparison
from benchmarks.compare.__main__ import _options
from benchmarks.compare.__main__ import main as compare_main
from benchmarks.compare.data import load_dataset, make_split
from benchmarks.compare.report import markdown
from benchmarks.compare.runner import DEFAULT_LIBRARIES, _add_targets

ROOT = Path(__file__).resolve().parents[1]
# Peers with no per-epoch curve (all epochs happen in one compiled call).
NO_CURVE = {"surprise"}


def _has_fastmf_model() -> bool:
    import fastmf

    return hasattr(fastmf, "MatrixFactorization")


def tiny_settings(tmp_path: Path, **changes) -> Settings:
    """A one-epoch comparison of 3,000 synthetic ratings, 4 factors, one thread, no plot."""
    base = dict(dataset="synthetic:3000", n_factors=4, n_epochs=1, threads=1)
    return Settings(**{**base, **changes, "out_dir": tmp_path, "plot": False})


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    # One thread: LIBMF's scheduler can hang at exit on tiny data with two (a race between its
    # last epoch and its stop signal); on real data sizes it does not.
    settings = Settings(
        dataset="synthetic:5000",
        n_factors=8,
        n_epochs=2,
        threads=1,
        libraries=DEFAULT_LIBRARIES,
        time_budget=120,
        build_libmf=False,  # never download or compile in the tests
        parallel=3,
        out_dir=tmp_path_factory.mktemp("compare"),
    )
    return run_comparison(settings, log=lambda text: None)


@pytest.mark.slow
def test_runner_reports_every_library(tiny_report: dict) -> None:
    results = {r["library"]: r for r in tiny_report["results"]}
    assert list(results) == list(DEFAULT_LIBRARIES)
    for name, r in results.items():
        installed = importlib.util.find_spec(PEERS[name].module) is not None
        if not installed:
            assert r["status"] == "skipped" and "not installed" in r["reason"]
            continue
        if r["status"] == "skipped":  # only the AVX build of LIBMF, when not built yet
            assert name == "libmf-avx" and "not built" in r["reason"]
            continue
        if name.startswith("fastmf") and not _has_fastmf_model():
            continue
        if name.startswith("libmf") and "LIBMF hung when stopping" in (r.get("reason") or ""):
            # LIBMF's own scheduler race on tiny data: the runner must name it, as it did
            assert r["status"] == "error"
            continue
        assert r["status"] == "ok", (name, r.get("reason"), r.get("traceback"))
        assert 0.3 < r["final_rmse"] < 1.6 and 0.2 < r["final_mae"] < r["final_rmse"]
        assert r["fit_seconds"] > 0 and r["seconds_per_epoch"] >= 0
        assert r["peak_rss_gb"] > 0 and r["threads"] >= 1
        assert r["version"]
        if name not in NO_CURVE:
            assert [p["epoch"] for p in r["curve"]] == [1, 2]
            times = [p["seconds"] for p in r["curve"]]
            assert times == sorted(times)
            assert all(0.3 < p["test_rmse"] < 1.6 for p in r["curve"])


@pytest.mark.slow
def test_runner_writes_table_json_and_plot(tiny_report: dict) -> None:
    files = tiny_report["files"]
    saved = json.loads(Path(files["json"]).read_text())
    assert saved["machine"]["cpu_model"] and saved["machine"]["logical_cores"] >= 1
    assert saved["data"]["n_train"] + saved["data"]["n_test"] <= 5000
    assert saved["data"]["truth_test_rmse"] > 0
    table = Path(files["markdown"]).read_text()
    for r in tiny_report["results"]:
        assert r["label"] in table
    ok = [r for r in tiny_report["results"] if r["status"] == "ok"]
    if ok:
        assert tiny_report["target_rmse"] == pytest.approx(1.01 * min(r["final_rmse"] for r in ok))
    if "plot" in files:
        assert Path(files["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_runner_stops_a_library_over_its_time_budget(tmp_path: Path) -> None:
    settings = tiny_settings(tmp_path, libraries=["fastmf"], time_budget=0.3)
    (result,) = run_comparison(settings, log=lambda text: None)["results"]
    assert result["status"] == "timeout after 0.3 s"
    assert result["time_to_target"] is None


def test_runner_stops_a_library_over_its_memory_limit(tmp_path: Path) -> None:
    settings = tiny_settings(tmp_path, libraries=["fastmf"], memory_limit_gb=0.01)
    (result,) = run_comparison(settings, log=lambda text: None)["results"]
    assert result["status"].startswith("out of memory (killed at")
    table = markdown(run_report_stub([result]))
    assert "out of memory" in table


def test_runner_reports_a_failing_library_and_goes_on(tmp_path: Path) -> None:
    # A setting the library rejects makes its worker fail; the next library still runs.
    settings = tiny_settings(
        tmp_path, libraries=["fastmf", "fastmf"], options={"fastmf": {"n_factors": -1}}
    )
    results = run_comparison(settings, log=lambda text: None)["results"]
    if not _has_fastmf_model():
        pytest.skip("fastmf.MatrixFactorization is not available yet")
    assert [r["status"] for r in results] == ["error", "error"]
    assert "n_factors" in results[0]["reason"]


def run_report_stub(results: list[dict]) -> dict:
    """A report dict as run_comparison makes it, around given results."""
    report = {
        "settings": {"n_factors": 8, "n_epochs": 3, "reg": 0.05, "threads": 2, "parallel": 1},
        "data": {
            "dataset": "synthetic:1",
            "n_train": 90,
            "n_test": 10,
            "n_users": 5,
            "n_items": 6,
            "truth_test_rmse": 0.7,
        },
        "machine": {"cpu_model": "cpu", "usable_cores": 2, "logical_cores": 2, "memory_gb": 1},
        "started": "now",
        "results": results,
    }
    _add_targets(report)
    return report


def test_time_to_target_from_curves() -> None:
    def ok(name, final, curve, total=9.0):
        return {
            "library": name,
            "label": name,
            "status": "ok",
            "final_rmse": final,
            "total_seconds": total,
            "seconds_per_epoch": 1.0,
            "curve": [
                {"epoch": e, "seconds": float(e), "test_rmse": v}
                for e, v in enumerate(curve, start=1)
            ],
        }

    report = run_report_stub(
        [
            ok("fastmf", 0.80, [0.9, 0.805, 0.80]),
            ok("slow", 0.85, [0.95, 0.9, 0.85]),
            ok("nocurve", 0.805, [], total=7.5),
            {
                "library": "dead",
                "label": "dead",
                "status": "timeout after 5 s",
                "curve": [{"epoch": 1, "seconds": 4.0, "test_rmse": 0.79}],
            },
        ]
    )
    by = {r["library"]: r for r in report["results"]}
    assert report["target_rmse"] == pytest.approx(0.808)
    assert by["fastmf"]["time_to_target"] == 2.0 and by["fastmf"]["epochs_to_target"] == 2
    assert by["slow"]["time_to_target"] is None
    assert by["nocurve"]["time_to_target"] == 7.5
    assert by["nocurve"]["time_to_target_upper_bound"]
    assert by["dead"]["time_to_target"] == 4.0  # reached before it was stopped
    table = markdown(report)
    assert "<= 7.50" in table and "not reached" in table and "timeout after 5 s" in table


def test_split_is_dense_and_drops_unknown_test_ids() -> None:
    df = pd.DataFrame(
        {
            "user": ["a", "a", "b", "b", "c", "d"] * 50,
            "item": [i % 40 for i in range(300)],
            "rating": np.linspace(1, 5, 300),
        }
    )
    df.loc[299, "item"] = 10_000  # an item no training rating can know
    split = make_split(df, {"dataset": "x"}, test_fraction=0.3, seed=1)  # row 299 in test
    train, test = split.train, split.test
    assert train["user"].dtype == np.int32 and train["rating"].dtype == np.float32
    assert train["user"].max() == split.n_users - 1 and train["item"].max() == split.n_items - 1
    assert test["item"].max() < split.n_items and test["user"].min() >= 0
    dropped = split.meta["n_test_dropped_unknown"]
    assert split.meta["n_train"] + split.meta["n_test"] + dropped == len(df)
    assert len(train["user"]) == split.meta["n_train"] and len(test["user"]) == split.meta["n_test"]
    # Independent count of the test rows whose user or item has no training rating.
    is_test = np.random.default_rng(1).random(len(df)) < 0.3
    tr, te = df[~is_test], df[is_test]
    unknown = ~te["user"].isin(tr["user"]) | ~te["item"].isin(tr["item"])
    assert dropped == unknown.sum() and dropped >= 1
    assert test["rating"].sum() == pytest.approx(te.loc[~unknown, "rating"].sum(), rel=1e-6)


def test_synthetic_split_records_the_best_reachable_rmse() -> None:
    df, meta = load_dataset("synthetic:4000")
    split = make_split(df, meta, seed=0)
    assert 0.6 < split.meta["truth_test_rmse"] < 0.9
    assert split.meta["rating_min"] >= 0.5 and split.meta["rating_max"] <= 5.0


def test_real_small_dataset(movielens_small_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FASTMF_DATA", str(movielens_small_path.parent))
    df, meta = load_dataset("ml-latest-small")
    assert len(df) == 100_836 and meta["kind"] == "MovieLens (real)"


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("synthetic:lots", ValueError, "synthetic:N"),
        ("nope", ValueError, "unknown dataset"),
        (3, TypeError, "dataset must be a string"),
    ],
)
def test_bad_dataset_names(name, error, match) -> None:
    with pytest.raises(error, match=match):
        load_dataset(name)


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown libraries"):
        Settings(libraries=["sklearn"]).check()
    with pytest.raises(ValueError, match="n_epochs must be"):
        Settings(n_epochs=0).check()
    with pytest.raises(ValueError, match="unknown library 'tf'"):
        Settings(options={"tf": {"lr": 1}}).check()


def test_command_line_options(capsys) -> None:
    assert _options(["torch-b1024.lr=0.01", "libmf.nr_bins=20", "x.name=abc"]) == {
        "torch-b1024": {"lr": 0.01},
        "libmf": {"nr_bins": 20},
        "x": {"name": "abc"},
    }
    with pytest.raises(ValueError, match="LIBRARY.NAME=VALUE"):
        _options(["lr=0.1"])
    assert compare_main(["--data", "nope", "--no-plot"]) == 2
    assert "unknown dataset" in capsys.readouterr().err


def test_pytest_benchmark_files_run_on_tiny_data() -> None:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks/test_bench_epoch.py",
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-disable",
        "--bench-sizes",
        "3000",
        "--bench-factors",
        "8",
        "--bench-threads",
        "1",
        "-k",
        "not compile_time",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    if not _has_fastmf_model():
        pytest.skip("fastmf.MatrixFactorization is not available yet")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout


def test_time_to_target_against_libmf_avx_in_the_same_run() -> None:
    def ok(name, curve, total=9.0):
        return {
            "library": name,
            "label": name,
            "status": "ok",
            "final_rmse": curve[-1] if curve else 0.80,
            "total_seconds": total,
            "seconds_per_epoch": 1.0,
            "curve": [
                {"epoch": e, "seconds": 0.5 * e, "test_rmse": v}
                for e, v in enumerate(curve, start=1)
            ],
        }

    report = run_report_stub(
        [
            ok("fastmf", [0.9, 0.80]),  # target 0.808 at 1.0 s
            ok("libmf-avx", [0.95, 0.9, 0.85, 0.805]),  # at 2.0 s
            ok("nocurve", [], total=7.5),  # only an upper bound: no ratio
        ]
    )
    by = {r["library"]: r for r in report["results"]}
    assert by["fastmf"]["time_to_target_vs_libmf_avx"] == pytest.approx(0.5)
    assert by["libmf-avx"]["time_to_target_vs_libmf_avx"] == pytest.approx(1.0)
    assert by["nocurve"]["time_to_target_vs_libmf_avx"] is None
    assert "| 0.50x |" in markdown(report)


def test_a_library_can_have_a_time_budget_of_its_own(tmp_path: Path) -> None:
    settings = tiny_settings(  # --set fastmf.time_budget=0.3
        tmp_path, libraries=["fastmf"], time_budget=600, options={"fastmf": {"time_budget": 0.3}}
    )
    (result,) = run_comparison(settings, log=lambda text: None)["results"]
    assert result["status"] == "timeout after 0.3 s"
    assert PEERS["skrecsys"].time_budget == 900.0

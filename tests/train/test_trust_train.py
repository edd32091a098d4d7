"""Training calls as a notebook user makes them: each works, or raises a clear error and leaves
the previous fitted model exactly as it was."""

from __future__ import annotations

import copy
import os
import signal
import threading
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmf import MatrixFactorization, NonFiniteModelError
from fastmf.train.guard import ModelStateError
from fastmf.train.lock import ModelBusyError
from tests.conftest import random_ratings

FAST = {"n_factors": 4, "n_epochs": 3, "random_state": 0, "verbose": 0}
OPTIMIZERS = ("sgd", "adagrad", "adam", "row_adagrad")
ALLOWED = (ValueError, TypeError, RuntimeError, ArithmeticError)


def fitted_state(m: MatrixFactorization) -> dict:
    """Everything a fit leaves behind, copied, to compare bit for bit."""
    if not hasattr(m, "user_factors_"):
        return {"fitted": False}
    st_ = m._state
    return {
        "fitted": True,
        "P": m.user_factors_.copy(),
        "Q": m.item_factors_.copy(),
        "bu": m.user_bias_.copy(),
        "bi": m.item_bias_.copy(),
        "mu": m.global_mean_,
        "users": m.user_map_.ids.copy(),
        "items": m.item_map_.ids.copy(),
        "history": m.history_.copy(),
        "epochs": m.n_epochs_done_,
        "rng": copy.deepcopy(st_.rng.bit_generator.state),
        "opt": {k: v.copy() for k, v in st_.optimizer.items()},
        "optimizer_name": st_.optimizer_name,
        "lr": st_.learning_rate,
    }


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key == "history":
            pd.testing.assert_frame_equal(a[key], b[key])
        elif key == "opt":
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                np.testing.assert_array_equal(a[key][name], b[key][name])
        elif isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key], key


@pytest.fixture
def df() -> pd.DataFrame:
    return random_ratings(60, 40, 900)


@pytest.mark.parametrize("first", OPTIMIZERS)
@pytest.mark.parametrize("second", OPTIMIZERS)
def test_changed_optimizer_continues_with_fresh_state(df, first, second):
    m = MatrixFactorization(**FAST, optimizer=first, batch_size=8).fit(df)
    m.set_params(optimizer=second, learning_rate=0.01).partial_fit(df)
    assert m.n_epochs_done_ == 4 and m._state.optimizer_name == second
    assert np.isfinite(m.predict(df)).all()


@pytest.mark.parametrize(
    ("name", "value"),
    [("n_factors", 8), ("dtype", "float64"), ("biases", "none"), ("biases", "fixed")],
)
@pytest.mark.parametrize("batch_size", [1, 16])
def test_changed_shape_parameter_is_refused_by_partial_fit(df, name, value, batch_size):
    m = MatrixFactorization(**FAST, batch_size=batch_size).fit(df)
    before = fitted_state(m)
    with pytest.raises(ValueError, match=f"{name} was .* at fit .* call fit"):
        m.set_params(**{name: value}).partial_fit(df)
    assert_same_state(fitted_state(m), before)
    m.fit(df)  # fit starts anew with the new value
    assert m.n_epochs_done_ == 3


def test_changed_batch_size_continues(df):
    m = MatrixFactorization(**FAST).fit(df)
    m.set_params(batch_size=64).partial_fit(df)
    m.set_params(batch_size=10**7).partial_fit(df)  # scratch sized by the blocks, not by this
    assert m.n_epochs_done_ == 5


def test_huge_batch_size_allocates_for_the_data_only(df):
    MatrixFactorization(**FAST, batch_size=4).fit(df)  # compile outside the measurement
    tracemalloc.start()
    MatrixFactorization(**FAST, batch_size=10**7).fit(df)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20


def test_absurd_factor_count_is_refused_before_allocating(df):
    m = MatrixFactorization(**FAST).fit(df)
    before = fitted_state(m)
    with pytest.raises(ValueError, match="n_factors=1000000000000 .* GiB"):
        m.set_params(n_factors=10**12).fit(df)
    assert_same_state(fitted_state(m), before)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("rate", [1e3, 1e6])
def test_divergence_is_detected_for_every_optimizer(df, optimizer, rate):
    m = MatrixFactorization(**FAST).fit(df)
    before = fitted_state(m)
    bad = {"optimizer": optimizer, "learning_rate": rate, "batch_size": 8}
    with pytest.raises(NonFiniteModelError, match="lower learning_rate"):
        m.set_params(**bad).fit(df)
    assert_same_state(fitted_state(m), before)
    m.set_params(optimizer="sgd", learning_rate=0.03, batch_size=1)
    m.partial_fit(df)
    before = fitted_state(m)
    with pytest.raises(NonFiniteModelError):
        m.set_params(**bad).partial_fit(df)
    assert_same_state(fitted_state(m), before)


def test_refit_with_bad_validation_keeps_the_model(df):
    m = MatrixFactorization(**FAST).fit(df)
    before = fitted_state(m)
    for val in (
        df.drop(columns="user"),
        df.assign(rating=np.nan),
        df.iloc[:0],
        "not a frame",
        (df[["user", "item"]].to_numpy(), np.ones(3)),
    ):
        with pytest.raises(ALLOWED):
            m.set_params(random_state=5).fit(df.sample(frac=1.0, random_state=1), validation=val)
        assert_same_state(fitted_state(m), before)
        with pytest.raises(ALLOWED):
            m.partial_fit(df, validation=val)
        assert_same_state(fitted_state(m), before)


def test_schedule_returning_a_bad_rate_keeps_the_model(df):
    m = MatrixFactorization(**FAST).fit(df)
    before = fitted_state(m)
    for rate in (-1.0, float("nan"), "fast"):
        sched = (lambda r: lambda epoch, lr: r if epoch >= 1 else lr)(rate)
        with pytest.raises(ALLOWED):
            m.set_params(lr_schedule=sched).fit(df)
        assert_same_state(fitted_state(m), before)
        m.set_params(lr_schedule="exponential")


def test_callback_raising_in_partial_fit_keeps_the_model(df):
    m = MatrixFactorization(**FAST).fit(df)
    before = fitted_state(m)

    def boom(model, row):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        m.set_params(callbacks=[boom]).partial_fit(df)
    assert_same_state(fitted_state(m), before)


def test_training_from_inside_a_callback_is_refused(df):
    def nested(model, row):
        model.partial_fit(df)

    m = MatrixFactorization(**FAST).fit(df)
    before = fitted_state(m)
    with pytest.raises(ModelBusyError, match="from inside its own training"):
        m.set_params(callbacks=[nested]).fit(df)
    assert_same_state(fitted_state(m), before)


def test_callback_may_predict(df):
    seen = []
    m = MatrixFactorization(**FAST, callbacks=[lambda model, row: seen.append(model.score(df))])
    m.fit(df)
    assert len(seen) == 3


def test_ctrl_c_in_a_refit_before_any_epoch_keeps_the_previous_model(df):
    m = MatrixFactorization(**FAST).fit(df)
    before = fitted_state(m)

    def interrupt(epoch, lr):
        os.kill(os.getpid(), signal.SIGINT)  # held until the epoch is recorded
        return lr

    with pytest.raises(KeyboardInterrupt):
        m.set_params(lr_schedule=interrupt, n_epochs=4).fit(df)
    assert m.n_epochs_done_ == 1  # the epoch that was running completed and is kept
    m2 = MatrixFactorization(**FAST).fit(df)
    before = fitted_state(m2)

    def interrupt_now(epoch, lr):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        m2.set_params(lr_schedule=interrupt_now).fit(df)
    assert_same_state(fitted_state(m2), before)


def test_partial_fit_refuses_an_unseen_id_past_the_first_few(df):
    m = MatrixFactorization(**FAST).fit(df)
    before = fitted_state(m)
    renamed = df.copy()
    last = renamed.user.max()
    renamed.loc[renamed.user == last, "user"] = last + 1000  # same codes, same first ids
    with pytest.raises(ValueError, match="not seen at fit.*fold_in"):
        m.partial_fit(renamed)
    assert_same_state(fitted_state(m), before)


def test_partial_fit_trains_on_the_ratings_it_is_given(df):
    a = MatrixFactorization(**FAST).fit(df)
    b = MatrixFactorization(**FAST).fit(df)
    changed = df.copy()
    changed.loc[changed.index[-1], "rating"] = 5.0 if df.rating.iloc[-1] != 5.0 else 1.0
    a.partial_fit(changed)
    b.partial_fit(df)
    assert not np.array_equal(a.user_factors_, b.user_factors_)


def test_two_threads_training_one_model_take_turns(df):
    m = MatrixFactorization(**FAST).fit(df)
    errors = []

    def work():
        try:
            for _ in range(4):
                m.partial_fit(df)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert m.history_.epoch.tolist() == list(range(1, 12))


def test_two_threads_fit_and_predict(df):
    m = MatrixFactorization(**FAST).fit(df)
    other = MatrixFactorization(**FAST, batch_size=16)
    errors = []

    def train(model):
        try:
            for seed in range(3):
                model.set_params(random_state=seed).fit(df)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    def serve():
        try:
            for _ in range(20):
                assert np.isfinite(m.predict(df)).all()
                m.recommend(int(df.user.iloc[0]), n=5)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=f, args=a) for f, a in
               ((train, (m,)), (train, (other,)), (serve, ()))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert m.n_epochs_done_ == 3 and other.n_epochs_done_ == 3


def test_arrays_replaced_by_hand_are_refused_before_a_kernel_runs(df):
    m = MatrixFactorization(**FAST, batch_size=8).fit(df)
    for name, bad in (
        ("user_factors_", m.user_factors_[:2]),
        ("item_bias_", m.item_bias_[:1]),
        ("user_factors_", m.user_factors_.astype(np.int64)),
    ):
        good = getattr(m, name)
        setattr(m, name, bad)
        with pytest.raises(ModelStateError, match=name.rstrip("_")):
            m.predict(df)
        with pytest.raises(ModelStateError):
            m.partial_fit(df)
        setattr(m, name, good)
    good = m.item_factors_
    m.item_factors_ = np.asfortranarray(good)
    with pytest.raises(ModelStateError, match="not C-contiguous"):
        m.predict(df)
    m.partial_fit(df)  # training copies the factors into the layout the kernels want
    assert m.item_factors_.flags.c_contiguous
    m._state.optimizer["P_s1"] = np.zeros((1, 1), np.float32)
    m.set_params(optimizer="adagrad")
    m._state.optimizer_name = "adagrad"
    with pytest.raises(ModelStateError, match="optimizer state"):
        m.partial_fit(df)


SET_PARAMS = st.sampled_from(
    [
        {"optimizer": o} for o in OPTIMIZERS
    ] + [
        {"batch_size": b} for b in (1, 3, 64, 10**6)
    ] + [
        {"learning_rate": r} for r in (0.01, 1e3, -1.0, float("nan"))
    ] + [
        {"n_factors": 6}, {"n_factors": 0}, {"dtype": "float64"}, {"dtype": "int8"},
        {"reg": 1e30}, {"reg": -1.0}, {"biases": "fixed"}, {"n_epochs": 1},
        {"lr_schedule": "plateau"}, {"init_std": 1e20},
    ]
)  # fmt: skip
STEPS = st.lists(
    st.one_of(
        st.just(("fit", None)),
        st.just(("partial_fit", None)),
        st.just(("predict", None)),
        st.tuples(st.just("set_params"), SET_PARAMS),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_any_call_sequence_works_or_keeps_the_model(steps):
    data = random_ratings(30, 20, 200, seed=3)
    m = MatrixFactorization(n_factors=4, n_epochs=2, random_state=0, verbose=0)
    for op, arg in steps:
        before = fitted_state(m)
        try:
            if op == "set_params":
                m.set_params(**arg)
            elif op == "predict":
                if before["fitted"]:
                    assert np.isfinite(m.predict(data)).all()
            else:
                getattr(m, op)(data)
        except ALLOWED:
            assert_same_state(fitted_state(m), before)


CONCURRENT = """
import threading, numpy as np
from fastmf import MatrixFactorization
from tests.conftest import random_ratings
df = random_ratings(60, 40, 900)
models = [MatrixFactorization(n_factors=4, n_epochs=3, random_state=0, verbose=0, batch_size=b)
          for b in (1, 16)]
for m in models:
    m.fit(df)
def work(m):
    for _ in range(5):
        m.partial_fit(df)
        m.predict(df)
        m.recommend(int(df.user.iloc[0]), n=5)
threads = [threading.Thread(target=work, args=(m,)) for m in models + models]
[t.start() for t in threads]
[t.join() for t in threads]
import numba
print("layer", numba.threading_layer(), [m.n_epochs_done_ for m in models])
"""


def test_threads_never_enter_parallel_kernels_together_on_any_layer():
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", CONCURRENT], env=env, cwd=root, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "layer workqueue [13, 13]" in out.stdout

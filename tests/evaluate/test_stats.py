"""fastmf._stats: RMSE and MAE against plain python, and the checks of their inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf import _stats

finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=50))
def test_rmse_and_mae_match_plain_python(pairs: list[tuple[float, float]]) -> None:
    t = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    want_rmse = math.sqrt(sum((b - a) ** 2 for a, b in pairs) / len(pairs))
    want_mae = sum(abs(b - a) for a, b in pairs) / len(pairs)
    assert _stats.rmse(t, p) == pytest.approx(want_rmse, rel=1e-9, abs=1e-9)
    assert _stats.mae(t, p) == pytest.approx(want_mae, rel=1e-9, abs=1e-9)
    assert _stats.rmse(t, p) >= _stats.mae(t, p) - 1e-9  # the mean square bounds the mean


def test_rmse_is_the_root_mean_square_of_the_residuals() -> None:
    rng = np.random.default_rng(0)
    t, p = rng.normal(size=100), rng.normal(size=100)
    assert _stats.rmse(t, p) == _stats.root_mean_square(p - t)
    assert _stats.root_mean_square(np.array([3.0, -4.0])) == pytest.approx(math.sqrt(12.5))


def test_the_metrics_module_uses_these() -> None:
    from fastmf.evaluate import metrics

    assert metrics.rmse is _stats.rmse and metrics.mae is _stats.mae


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="y_true has 2 values but y_pred has 3"):
        _stats.rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="y_true is empty"):
        _stats.mae([], [])
    with pytest.raises(ValueError, match=r"y_pred has 1 NaN or infinite values \(first at row 1\)"):
        _stats.rmse([1.0, 2.0], [1.0, np.inf])
    with pytest.raises(TypeError, match="y_true must be numeric"):
        _stats.rmse(["a"], [1.0])
    with pytest.raises(ValueError, match="must be 1-dimensional"):
        _stats.as_finite_vector(np.zeros((2, 2)), "values")

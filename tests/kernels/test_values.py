"""Sums of rating values: ``numpy_sum`` is numpy's float64 sum of float32 values, bit for bit,
and ``block_sums`` numpy's sum, min and max of each block."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf._kernels import values as sm
from fastmf.data.blocks import block_mean, layout_mean_and_scale, slices


def _spread_values(n: int, seed: int, spread: float) -> np.ndarray:
    """float32 values over many exponents and both signs: sums that round at every step."""
    rng = np.random.default_rng(seed)
    signs = np.where(rng.random(n) < 0.3, -1.0, 1.0)
    return (signs * np.exp(rng.normal(0.0, spread, n))).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 40_000),
    seed=st.integers(0, 2**31),
    spread=st.sampled_from([0.1, 3.0, 8.0]),
    lo_share=st.floats(0.0, 0.5),
)
def test_numpy_sum_is_numpys_float64_sum_bit_for_bit(n, seed, spread, lo_share):
    values = _spread_values(n, seed, spread)
    lo = int(n * lo_share)
    assert sm.numpy_sum(values, lo, n) == np.sum(values[lo:], dtype=np.float64)


def test_numpy_sum_across_numpys_buffer_and_block_edges():
    values = _spread_values(3 * sm.NUMPY_BUFFER + 17, 4, 6.0)
    for n in (0, 1, 7, 8, 9, 127, 128, 129, 255, 8191, 8192, 8193, 16_384, len(values)):
        assert sm.numpy_sum(values, 0, n) == np.sum(values[:n], dtype=np.float64), n


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5000), seed=st.integers(0, 2**31), n_cuts=st.integers(0, 8))
def test_block_sums_are_each_blocks_numpy_sum_min_and_max(n, seed, n_cuts):
    values = _spread_values(n, seed, 5.0)
    rng = np.random.default_rng(seed)
    values[rng.random(n) < 0.05] = 0.0
    values[rng.random(n) < 0.05] = -0.0
    offsets = np.concatenate([[0], np.sort(rng.integers(0, n + 1, n_cuts)), [n]]).astype(np.int64)
    sums, lows, highs = sm.block_sums(values, values.view(np.int32), offsets)
    for b in range(len(offsets) - 1):
        block = values[offsets[b] : offsets[b + 1]]
        assert sums[b] == np.sum(block, dtype=np.float64)
        if block.size:  # -0.0 and 0.0 are equal, as numpy's min compares them
            assert sm.ordered_keys(lows[b]) == block.min()
            assert sm.ordered_keys(highs[b]) == block.max()
        else:
            assert lows[b] > highs[b]


@pytest.mark.parametrize("kernels", [False, True])
def test_the_layouts_mean_is_block_means_and_its_scale_the_ratings_range(kernels, monkeypatch):
    if kernels:  # the path of a million ratings and more: one pass of block_sums
        monkeypatch.setattr("fastmf.data.blocks.SERIAL_BELOW", 0)
    values = (np.random.default_rng(1).integers(1, 11, 50_000) / 2.0).astype(np.float32)
    values[77] = 0.3
    offsets = np.array([0, 100, 100, 20_000, 49_999, 50_000], dtype=np.int64)
    mean, scale = layout_mean_and_scale(values, offsets)
    assert mean == block_mean(slices(values, values, values, offsets), len(values))
    assert scale == (float(values.min()), float(values.max()))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3000),
    seed=st.integers(0, 2**31),
    n_bad=st.integers(0, 3),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_nonfinite_values_are_counted_as_numpy_finds_them(n, seed, n_bad, dtype):
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1e30, n).astype(dtype)
    for bad in rng.choice([np.nan, np.inf, -np.inf], n_bad):
        values[rng.integers(0, n)] = bad
    assert sm.count_nonfinite(values) == int((~np.isfinite(values)).sum())


@pytest.mark.parametrize("kernels", [False, True])
def test_all_finite_finds_a_nan_or_an_infinity(kernels, monkeypatch):
    from fastmf import _validation

    if kernels:  # the path of a million values and more: one pass of count_nonfinite
        monkeypatch.setattr(_validation, "SERIAL_BELOW", 0)
    values = np.linspace(-3.0, 3.0, 1001).astype(np.float32)
    assert _validation.all_finite(values)
    assert _validation.all_finite(values.reshape(7, 143))
    for bad in (np.nan, np.inf, -np.inf):
        spoiled = values.copy()
        spoiled[500] = bad
        assert not _validation.all_finite(spoiled)

"""Min/max decimation keeps a curve's shape: bounded, ends kept, bucket extremes kept, NaN/inf."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nbtrack._decimate import decimate

_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-1e6, 1e6),
)


@st.composite
def curves(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    n = draw(st.integers(0, 400))
    values = draw(hnp.arrays(np.float64, n, elements=_VALUES))
    # Steps: increasing, with irregular gaps (epochs, resumed runs, folded curves).
    gaps = draw(hnp.arrays(np.float64, n, elements=st.sampled_from([1.0, 1.0, 2.0, 50.0])))
    steps = np.cumsum(gaps) - 1.0
    max_points = draw(st.integers(4, 120))
    return steps, values, max_points


def _ranked(values: np.ndarray) -> np.ndarray:
    """The order the decimator promises: NaN ranks with +inf, above every finite value, so it is
    a bucket's maximum and only the minimum of a bucket with nothing lower."""
    return np.where(np.isnan(values), np.inf, values)


def _kept_positions(steps: np.ndarray, kept_steps: np.ndarray) -> np.ndarray:
    # Steps are strictly increasing in these tests, so a kept step identifies its input index.
    positions = np.searchsorted(steps, kept_steps)
    assert np.array_equal(steps[positions], kept_steps)
    return positions


@settings(max_examples=300, deadline=None)
@given(curves())
def test_decimated_curve_is_bounded_ordered_and_keeps_its_ends(
    curve: tuple[np.ndarray, np.ndarray, int],
) -> None:
    steps, values, max_points = curve
    out_steps, out_values = decimate(steps, values, max_points)

    assert out_steps.dtype == np.float64
    assert out_values.dtype == np.float64
    assert len(out_steps) == len(out_values) <= max(max_points, len(values))
    assert len(out_steps) <= max_points or len(values) <= max_points
    assert np.all(np.diff(out_steps) > 0)
    if len(values) <= max_points:
        assert np.array_equal(out_steps, steps)
        assert np.array_equal(out_values, values, equal_nan=True)
        return
    assert out_steps[0] == steps[0]
    assert out_steps[-1] == steps[-1]
    # Every kept point is an input point, value and all.
    positions = _kept_positions(steps, out_steps)
    assert np.array_equal(values[positions], out_values, equal_nan=True)


@settings(max_examples=300, deadline=None)
@given(curves())
def test_every_bucket_keeps_its_minimum_and_maximum(
    curve: tuple[np.ndarray, np.ndarray, int],
) -> None:
    steps, values, max_points = curve
    if len(values) <= max_points:
        return
    out_steps, _ = decimate(steps, values, max_points)
    kept = set(_kept_positions(steps, out_steps).tolist())
    rank = _ranked(values)

    interior = len(values) - 2
    width = math.ceil(interior / ((max_points - 2) // 2))
    for start in range(1, len(values) - 1, width):
        bucket = np.arange(start, min(start + width, len(values) - 1))
        bucket_kept = [i for i in bucket if i in kept]
        assert 1 <= len(bucket_kept) <= 2
        # The kept points reach the bucket's extremes (ties: any of the equal points will do).
        assert max(rank[i] for i in bucket_kept) == rank[bucket].max()
        assert min(rank[i] for i in bucket_kept) == rank[bucket].min()


@settings(max_examples=300, deadline=None)
@given(curves())
def test_global_extremes_and_non_finite_values_survive(
    curve: tuple[np.ndarray, np.ndarray, int],
) -> None:
    steps, values, max_points = curve
    _, out_values = decimate(steps, values, max_points)
    if len(values) == 0:
        assert len(out_values) == 0
        return
    finite_in, finite_out = values[np.isfinite(values)], out_values[np.isfinite(out_values)]
    if np.isnan(values).any():
        assert np.isnan(out_values).any()
    if np.isneginf(values).any():
        assert np.isneginf(out_values).any()
    if np.isposinf(values).any():
        # A NaN in the same bucket outranks +inf; either way a divergence is visible.
        assert (np.isposinf(out_values) | np.isnan(out_values)).any()
    if not np.isfinite(values).all():
        return
    assert finite_out.max() == finite_in.max()
    assert finite_out.min() == finite_in.min()


def test_spike_between_regular_samples_is_kept() -> None:
    steps = np.arange(100_000, dtype=np.float64)
    values = np.linspace(2.0, 0.1, len(steps))
    values[77_777] = 50.0
    values[33_333] = np.nan
    out_steps, out_values = decimate(steps, values, 500)

    assert len(out_values) <= 500
    assert 77_777.0 in out_steps
    assert np.nanmax(out_values) == 50.0
    assert np.isnan(out_values).sum() == 1
    assert out_steps[np.isnan(out_values)][0] == 33_333.0


def test_small_input_is_returned_as_is() -> None:
    steps = np.arange(10, dtype=np.float64)
    values = np.ones(10)
    out_steps, out_values = decimate(steps, values, 10)
    assert out_steps is steps
    assert out_values is values


def test_lists_are_accepted() -> None:
    out_steps, out_values = decimate([0, 1, 2, 3, 4, 5], [5.0, 1.0, 3.0, 9.0, 2.0, 4.0], 4)
    assert out_steps.tolist() == [0.0, 1.0, 3.0, 5.0]
    assert out_values.tolist() == [5.0, 1.0, 9.0, 4.0]


@pytest.mark.parametrize("max_points", [-1, 0, 3])
def test_too_small_a_budget_is_refused(max_points: int) -> None:
    with pytest.raises(ValueError, match="at least 4"):
        decimate([0.0], [1.0], max_points)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="equal length"):
        decimate([0.0, 1.0], [1.0], 10)

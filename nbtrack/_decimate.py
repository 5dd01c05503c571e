"""Thin a curve to a bounded number of points without changing what a plot of it shows.

A line chart can only draw a couple of points per pixel column, so a 200k-point loss curve is
mostly wasted bytes and redraw time. Keeping every k-th point would be cheap but lies: a loss
spike or a NaN between two kept points disappears. Instead the points are cut into buckets of
consecutive indices and each bucket keeps its lowest and its highest point, in their original
order, so every extreme stays where it was. Non-finite values count as extremes (NaN and +inf
as the highest, -inf as the lowest) so that a divergence is always visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]
    IntArray = npt.NDArray[np.intp]

__all__ = ["decimate", "kept_indices"]


def decimate(
    steps: npt.ArrayLike, values: npt.ArrayLike, max_points: int
) -> tuple[FloatArray, FloatArray]:
    """At most ``max_points`` of the points ``(steps[i], values[i])``, chosen to keep the shape.

    The first and the last point are always kept. The ``m = n - 2`` points between them are
    split into consecutive buckets of ``ceil(m / ((max_points - 2) // 2))`` points (the last
    bucket may be shorter); each bucket keeps its minimum and its maximum (one point when they
    coincide), in their original order. For that choice NaN
    and +inf rank above every finite value and -inf below, so non-finite points survive as the
    extremes of their bucket. Points must come in step order; the output keeps that order.

    Input that already fits is returned unchanged (as float64 arrays, without a copy when it
    already is one). Raises ``ValueError`` when ``max_points < 4`` or the lengths differ.
    """
    if max_points < 4:
        msg = f"max_points must be at least 4 (first, last and one bucket), got {max_points!r}"
        raise ValueError(msg)
    xs = np.asarray(steps, dtype=np.float64)
    ys = np.asarray(values, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        msg = f"steps and values must be 1-D and of equal length, got {xs.shape} and {ys.shape}"
        raise ValueError(msg)
    if len(ys) <= max_points:
        return xs, ys
    keep = kept_indices(ys, max_points)
    return xs[keep], ys[keep]


def kept_indices(values: npt.ArrayLike, max_points: int) -> IntArray:
    """The indices ``decimate`` keeps of ``values`` (all of them when they fit), in order.

    For thinning several columns of the same points together (steps, values and times).
    Raises ``ValueError`` when ``max_points < 4``.
    """
    if max_points < 4:
        msg = f"max_points must be at least 4 (first, last and one bucket), got {max_points!r}"
        raise ValueError(msg)
    ys = np.asarray(values, dtype=np.float64)
    if len(ys) <= max_points:
        return np.arange(len(ys), dtype=np.intp)
    return _kept_indices(ys, (max_points - 2) // 2)


def _kept_indices(ys: FloatArray, n_buckets: int) -> IntArray:
    n = len(ys)
    interior = ys[1:-1]
    m = len(interior)
    # Equal-width buckets of `width` points, the last one possibly shorter. Since
    # n > max_points >= 2 * n_buckets + 2, width >= 2 and the bucket count never exceeds
    # n_buckets. Full buckets are a reshaped view: no copy of the data on the fast path.
    width = -(-m // n_buckets)
    full = m // width
    body = interior[: full * width].reshape(full, width)

    # argmax already ranks NaN highest (it returns the first NaN). For the minimum, NaN must
    # not win, so it is swapped for +inf, which only happens on the (rare) curves that have one.
    lows_src = body
    has_nan = bool(np.isnan(interior).any())
    if has_nan:
        lows_src = np.where(np.isnan(body), np.inf, body)
    offsets = np.arange(full, dtype=np.intp) * width
    lows = lows_src.argmin(axis=1) + offsets
    highs = body.argmax(axis=1) + offsets

    if full * width < m:
        tail = interior[full * width :]
        tail_low = np.where(np.isnan(tail), np.inf, tail) if has_nan else tail
        start = full * width
        lows = np.append(lows, start + int(tail_low.argmin()))
        highs = np.append(highs, start + int(tail.argmax()))

    first = np.minimum(lows, highs)
    second = np.maximum(lows, highs)
    pairs = np.stack([first, second], axis=1).ravel()
    # A bucket whose minimum and maximum are the same point (a flat stretch) keeps it once.
    distinct = np.ones(len(pairs), dtype=bool)
    distinct[1::2] = second != first
    kept = pairs[distinct] + 1  # interior index -> index into ys
    return np.concatenate(([0], kept, [n - 1])).astype(np.intp, copy=False)

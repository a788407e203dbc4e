"""The torch kernel of ``gaussdraw::draw_gaussians``: the CPU path.

A data loader draws one sample at a time, often a handful of boxes, so what a call costs
before any pixel is drawn matters as much as the cost per pixel. The kernel therefore does
the per-box bookkeeping (windows clipped to the map, validity, planes, sigmas) on NumPy
views of the input tensors or on Python integers (no copies; a NumPy operation on a few
elements costs a fraction of a torch operation's dispatch), and draws in two ways:

- windows of more than ``LARGE`` pixels a side, and every box of a call of at most ``FEW``:
  the Gaussian of a radius is the same at the same offsets from every center, so each box
  max-merges a view of its radius's stamp (the outer product of the row and column profiles)
  into its window's strided slice of the heatmap: one max per pixel (mmdet's own way, one box
  at a time, without building an index per pixel). Stamps of radii up to ``CACHED_RADIUS``
  are kept across calls.
- smaller windows of larger calls: one scatter-max into the heatmap per group of boxes of one
  window size, vectorized over pixels. Boxes are grouped by their window's side rounded up
  (powers of two up to 16, multiples of 16 above); a call whose windows are few and small
  draws all of them as one group. Columns and rows past a window repeat its last one, which
  max-merges to the same result.

Values follow the Triton kernel's arithmetic: sigma = (2r + 1) / factor and
c = -1 / (2 sigma^2) in the compute dtype (float32, float64 for float64 heatmaps), a
pixel's value exp(dy^2 c) * exp(dx^2 c), set to 0 below the compute dtype's epsilon,
times ``k_scale``; 16-bit heatmaps get that float32 value rounded once. Other devices
draw through a CPU copy (``backend="torch"`` there is a reference path: it waits for
the device).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

LARGE = 16  # window side above which a box draws into its slice of the heatmap
FEW = 32  # calls with at most this many boxes (padding included) draw each one into its slice
ONE_GROUP_PIXELS = 8192  # small windows of a call draw as one group while boxes * side^2 stays below this
CACHED_RADIUS = 64  # radii whose whole stamp is kept across calls
STAMP_CACHE_PIXELS = 1 << 20  # at most this many values kept (4 MiB in float32); past it the cache starts over
_STAMPS: dict = {}
_STAMP_PIXELS = 0
_LIMIT = 2**62  # centers and radii are clamped here, so that cx +- r cannot overflow int64 (as in the Triton kernel)


def draw_gaussians_torch(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale):
    """Max-merge the Gaussians of a (B, Tmax) grid of boxes into (N, H, W) ``heatmap`` (the
    op's arguments, see :mod:`gaussdraw.ops.draw_gaussians`); one sample's boxes may also come
    as they are, (T, 2) ``centers`` and (T,) ``radii`` and ``index``, with ``counts`` None."""
    if heatmap.device.type != "cpu":
        host = heatmap.cpu()
        draw_gaussians_torch(host, *(t.cpu() if t is not None else None for t in (centers, radii, index, counts)),
                             planes_per_sample, sigma_factor, k_scale)
        heatmap.copy_(host)
        return
    if radii.numel() == 0 or heatmap.numel() == 0:
        return
    work = heatmap if heatmap.is_contiguous() else heatmap.contiguous()
    compute = np.float64 if heatmap.dtype == torch.float64 else np.float32
    value = _Values(_EPSILON[compute], compute(k_scale))
    if radii.numel() <= FEW:
        boxes = _few_drawing_boxes(heatmap.shape, centers, radii, index, counts, planes_per_sample)
        if boxes:
            _draw_slices(work, boxes, _coefficients([box[1] for box in boxes], sigma_factor, compute), value)
        if work is not heatmap:
            heatmap.copy_(work)
        return
    plane, radius, center, lo, hi = _drawing_boxes(heatmap.shape, centers, radii, index, counts, planes_per_sample)
    if radius.shape[0] == 0:
        return
    coefficient = _coefficients(radius, sigma_factor, compute)
    side = (hi - lo).max(1) + 1

    large = side > LARGE
    if large.any():
        _draw_windows(work, *(a[large] for a in (plane, radius, center, lo, hi, coefficient)), value)
        small = ~large
        plane, center, lo, hi, coefficient, side = (a[small] for a in (plane, center, lo, hi, coefficient, side))
    if side.shape[0]:
        longest = int(side.max())
        if side.shape[0] * longest * longest <= ONE_GROUP_PIXELS:
            _draw_group(work, plane, center, lo, hi, coefficient, longest, value)
        else:
            rounded = np.where(side <= 16, 1 << np.ceil(np.log2(side)).astype(np.int64), (side + 15) // 16 * 16)
            for size in np.unique(rounded).tolist():
                group = rounded == size
                _draw_group(work, plane[group], center[group], lo[group], hi[group], coefficient[group], size, value)
    if work is not heatmap:
        heatmap.copy_(work)


def _as_numpy(tensor: torch.Tensor) -> np.ndarray:
    """An int64 NumPy array of an integer CPU tensor (a view where the dtype allows)."""
    return tensor.numpy().astype(np.int64, copy=False)


def _drawing_boxes(shape, centers, radii, index, counts, planes_per_sample):
    """(plane (n,), radius (n,), center (n, 2), lo (n, 2), hi (n, 2)) int64 of the boxes that draw
    at least one pixel: valid, with a window [lo, hi] (x, y) that meets the map, clipped to it."""
    num_planes, height, width = shape
    num_samples, per_sample = radii.shape if radii.dim() == 2 else (1, radii.shape[0])
    center = np.minimum(np.maximum(_as_numpy(centers).reshape(-1, 2), -_LIMIT), _LIMIT)
    radius = _as_numpy(radii).reshape(-1)
    window = np.minimum(np.maximum(radius, -1), _LIMIT)[:, None]  # a negative radius leaves an empty window
    lo = np.maximum(center - window, 0)
    hi = np.minimum(center + window, (width - 1, height - 1))
    drawing = (hi >= lo).all(1)
    sample = np.arange(num_samples).repeat(per_sample) if num_samples > 1 else 0
    if index is None:
        plane = sample
    else:
        label = _as_numpy(index).reshape(-1)
        drawing &= (label >= 0) & (label < (planes_per_sample or num_planes))
        plane = sample * planes_per_sample + label
    if counts is not None:
        drawing &= (np.arange(per_sample) < _as_numpy(counts)[:, None]).reshape(-1)
    drawing &= plane < num_planes
    if type(plane) is int:
        plane = np.full(radius.shape, plane)
    if drawing.all():
        return plane, radius, center, lo, hi
    return plane[drawing], radius[drawing], center[drawing], lo[drawing], hi[drawing]


class _Values:
    """Drawn values from the row and column profiles: their outer product, zero below ``epsilon``
    (only computed where a window's smallest value, at its far corner, is below it), times ``scale``."""

    __slots__ = ("epsilon", "scale")

    def __init__(self, epsilon, scale):
        self.epsilon, self.scale = epsilon, scale

    def outer(self, column: np.ndarray, row: np.ndarray) -> np.ndarray:
        """(..., h, w) values of (..., h) column and (..., w) row profiles."""
        values = column[..., :, None] * row[..., None, :]
        if column.ndim == 1:  # one window: NumPy scalars
            needs_zeroing = min(column[0], column[-1]) * min(row[0], row[-1]) < self.epsilon
        else:
            needs_zeroing = (_smallest(column) * _smallest(row) < self.epsilon).any()
        return self.finish(values, needs_zeroing)

    def finish(self, values, needs_zeroing: bool):
        """In place, ``values`` (an array or a tensor) being an outer product of profiles, whose
        smallest product is below epsilon when ``needs_zeroing``."""
        if needs_zeroing:
            values[values < self.epsilon] = 0
        if self.scale != 1:
            values *= float(self.scale)
        return values


def _smallest(profile: np.ndarray) -> np.ndarray:
    """The smallest value of each profile (last axis). A profile falls away from its center and
    its window holds the center or lies on one side of it, so the smallest value is at one end
    (past a window's end its last value repeats). With it, the smallest product of two profiles
    is the product of their smallest values (rounding is monotonic)."""
    return np.minimum(profile[..., 0], profile[..., -1])


_EPSILON = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


def _draw_group(work, plane, center, lo, hi, coefficient, size, value) -> None:
    """Draw boxes with windows of at most ``size`` pixels a side: one (n, size, size) scatter-max."""
    num_planes, height, width = work.shape
    # (n, 2, size) pixel coordinates along x and y; past the window the last one repeats
    at = np.minimum(lo[:, :, None] + np.arange(size), hi[:, :, None])
    offset = (at - center[:, :, None]).astype(coefficient.dtype)
    profile = np.exp(offset * offset * coefficient[:, None, None])
    values = value.outer(profile[:, 1], profile[:, 0])
    pixel = ((plane * (height * width))[:, None] + at[:, 1] * width)[:, :, None] + at[:, 0, None, :]
    work.view(-1).scatter_reduce_(0, torch.from_numpy(pixel.reshape(-1)),
                                  torch.from_numpy(values.reshape(-1)).to(work.dtype), "amax")


def _draw_slices(work, boxes, coefficient, value) -> None:
    """Draw a few ``boxes`` ((plane, radius, cx, cy, x_lo, y_lo, x_hi, y_hi) each) one at a time, each
    max-merging a view of its stamp into its window's strided slice of the heatmap."""
    target = _merge_target(work)
    for (plane, radius, cx, cy, x_lo, y_lo, x_hi, y_hi), c in zip(boxes, coefficient):
        stamp, x0, y0 = _stamp_for(target, radius, c, value, x_lo - cx, y_lo - cy, x_hi - cx, y_hi - cy)
        _max_into(target, plane, y_lo, x_lo, stamp[y_lo - cy - y0:y_hi - cy - y0 + 1, x_lo - cx - x0:x_hi - cx - x0 + 1])


def _draw_windows(work, plane, radius, center, lo, hi, coefficient, value) -> None:
    """Draw boxes one at a time into their windows' strided slices of the heatmap, each window's
    values a view of a stamp (boxes of one radius have the same values at the same offsets): the
    radius's cached stamp (see :func:`_stamp_for`), or else the outer product of its profiles over
    the offsets its boxes' windows span where that has no more pixels than their windows, or else
    each box's own. A box then costs a few views and one max over its pixels."""
    first, last = lo - center, hi - center  # (n, 2) offsets (x, y) of each window's first and last pixel
    order = np.argsort(radius, kind="stable")
    sorted_radius = radius[order]
    starts = np.flatnonzero(np.r_[True, sorted_radius[1:] != sorted_radius[:-1]])
    span_first = np.minimum.reduceat(first[order], starts)  # (radii, 2)
    span_last = np.maximum.reduceat(last[order], starts)
    window_pixels = np.add.reduceat((last - first + 1).prod(1)[order], starts)
    shared = ((span_last - span_first + 1).prod(1) <= window_pixels) | (sorted_radius[starts] <= CACHED_RADIUS)
    target = _merge_target(work)
    plane, lo, first, last = plane.tolist(), lo.tolist(), first.tolist(), last.tolist()
    ends = np.r_[starts[1:], order.shape[0]].tolist()
    for g, (s, e) in enumerate(zip(starts.tolist(), ends)):
        members = order[s:e].tolist()
        r, c = int(sorted_radius[s]), coefficient[members[0]]
        if shared[g]:
            stamps = [(span_first[g].tolist(), span_last[g].tolist(), members)]
        else:
            stamps = [(first[b], last[b], (b,)) for b in members]
        for (x_first, y_first), (x_last, y_last), boxes in stamps:
            stamp, x0, y0 = _stamp_for(target, r, c, value, x_first, y_first, x_last, y_last)
            for b in boxes:
                (x_lo, y_lo), (dx, dy), (ex, ey) = lo[b], first[b], last[b]
                _max_into(target, plane[b], y_lo, x_lo, stamp[dy - y0:ey - y0 + 1, dx - x0:ex - x0 + 1])


def _merge_target(work):
    """What windows are cut from: a NumPy view of float32 and float64 heatmaps (NumPy's views and
    ufuncs cost a third of torch's per call), the tensor itself for 16-bit ones."""
    return work.numpy() if work.dtype in (torch.float32, torch.float64) else work


def _stamp(target, x_first, y_first, x_last, y_last, coefficient, value):
    """Values at offsets [y_first, y_last] x [x_first, x_last] from a center, in ``target``'s kind
    (a NumPy array in the heatmap's dtype, or a tensor in the 16-bit heatmap's dtype, rounded once)."""
    dx = _offsets(x_first, x_last, coefficient.dtype)
    dy = dx if (y_first, y_last) == (x_first, x_last) else _offsets(y_first, y_last, coefficient.dtype)
    row = np.exp(dx * dx * coefficient)
    values = value.outer(row if dy is dx else np.exp(dy * dy * coefficient), row)
    return values if isinstance(target, np.ndarray) else torch.from_numpy(values).to(target.dtype)


def _stamp_for(target, radius, coefficient, value, x_first, y_first, x_last, y_last):
    """(stamp, x0, y0): values covering offsets [y_first, y_last] x [x_first, x_last] of a box of
    ``radius``, its element [0, 0] at offset (x0, y0). Radii up to ``CACHED_RADIUS`` get their whole
    (2r + 1)^2 window, kept across calls (read only) in ``_STAMPS`` per drawing arithmetic: data
    loaders draw the same radii over and over."""
    if radius > CACHED_RADIUS:
        return _stamp(target, x_first, y_first, x_last, y_last, coefficient, value), x_first, y_first
    key = (radius, coefficient.item(), coefficient.dtype, value.scale.item(), target.dtype)
    stamp = _STAMPS.get(key)
    if stamp is None:
        stamp = _stamp(target, -radius, -radius, radius, radius, coefficient, value)
        if isinstance(stamp, np.ndarray):
            stamp.flags.writeable = False
        global _STAMP_PIXELS
        if _STAMP_PIXELS + stamp.shape[0] ** 2 > STAMP_CACHE_PIXELS:
            _STAMPS.clear()
            _STAMP_PIXELS = 0
        _STAMPS[key] = stamp
        _STAMP_PIXELS += stamp.shape[0] ** 2
    return stamp, -radius, -radius


def _offsets(first: int, last: int, dtype) -> np.ndarray:
    """first, ..., last in ``dtype``, each rounded once (one arange where all are exact in float32)."""
    if -2**24 <= first and last <= 2**24:
        return np.arange(first, last + 1, dtype=dtype)
    return np.arange(first, last + 1).astype(dtype)


def _max_into(target, plane, y_lo, x_lo, values) -> None:
    """target[plane, window] = max(target[plane, window], values), the window at (y_lo, x_lo) of values'
    shape (``target`` and ``values`` both NumPy arrays or both tensors, of one dtype)."""
    height, width = values.shape
    window = target[plane, y_lo:y_lo + height, x_lo:x_lo + width]
    if isinstance(window, np.ndarray):
        np.maximum(window, values, out=window)
    else:
        torch.maximum(window, values, out=window)


def _coefficients(radius, sigma_factor, compute):
    """-1 / (2 sigma^2), sigma = (2r + 1) / factor, in the compute dtype (the Triton kernel's operations):
    an array for an int64 array of radii, a list of NumPy scalars for a short list of them. Overflow
    (an extreme factor) gives -0.0 or -inf, as on the GPU, without a warning."""
    if type(radius) is list:
        return [_coefficient(r, sigma_factor, compute) for r in radius]
    with np.errstate(over="ignore", divide="ignore"):
        sigma = np.asarray(radius, dtype=np.int64).astype(compute)
        sigma *= 2.0  # Python numbers meet the array in its dtype: each step rounds as the kernel's
        sigma += 1.0
        sigma /= sigma_factor
        return -1.0 / (2.0 * sigma * sigma)


@functools.lru_cache(maxsize=4096)
def _coefficient(radius: int, sigma_factor: float, compute):
    """One radius's coefficient (data loaders draw the same few radii over and over)."""
    return _coefficients(np.array([radius]), sigma_factor, compute)[0]


def _few_drawing_boxes(shape, centers, radii, index, counts, planes_per_sample) -> list:
    """:func:`_drawing_boxes` for at most ``FEW`` boxes, as (plane, radius, cx, cy, x_lo, y_lo, x_hi, y_hi)
    tuples: the same rules on Python integers (with the same clamps), cheaper than array operations."""
    num_planes, height, width = shape
    limit = planes_per_sample or num_planes
    centers, radii = centers.tolist(), radii.tolist()
    labels = index.tolist() if index is not None else None
    if centers and type(radii[0]) is int:  # one sample's (T,) boxes
        centers, radii, labels = [centers], [radii], [labels] if labels is not None else None
    counts = counts.tolist() if counts is not None else None
    boxes = []
    for b, sample_radii in enumerate(radii):
        for t, radius in enumerate(sample_radii[: max(counts[b], 0)] if counts is not None else sample_radii):
            plane = b
            if labels is not None:
                label = labels[b][t]
                if not 0 <= label < limit:
                    continue
                plane = b * planes_per_sample + label
            if radius < 0 or plane >= num_planes:
                continue
            cx, cy = (min(max(c, -_LIMIT), _LIMIT) for c in centers[b][t])
            window = min(radius, _LIMIT)
            x_lo, x_hi = max(cx - window, 0), min(cx + window, width - 1)
            y_lo, y_hi = max(cy - window, 0), min(cy + window, height - 1)
            if x_lo <= x_hi and y_lo <= y_hi:
                boxes.append((plane, radius, cx, cy, x_lo, y_lo, x_hi, y_hi))
    return boxes

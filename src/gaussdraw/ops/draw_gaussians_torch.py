"""The torch kernel of ``gaussdraw::draw_gaussians``: the CPU path.

A data loader draws one sample at a time, often a handful of boxes, so what a call costs
before any pixel is drawn matters as much as the cost per pixel. The kernel therefore does
the per-box bookkeeping (windows clipped to the map, validity, planes, sigmas) on NumPy
views of the input tensors (no copies; a NumPy operation on a few elements costs a
fraction of a torch operation's dispatch), and draws in two ways, both vectorized over
pixels:

- small windows (at most ``LARGE`` pixels a side): one scatter-max into the heatmap per
  group of boxes of one window size. Boxes are grouped by their window's side rounded up
  (powers of two up to 16, multiples of 16 above); a call whose windows are few and small
  draws all of them as one group. Columns and rows past a window repeat its last one,
  which max-merges to the same result.
- large windows: the Gaussian is separable, so each box max-merges the outer product of
  its row and column profiles into the heatmap's strided slice (mmdet's own way, one
  box at a time, without building an index per pixel). The loop's cost per box is a few
  operations against its (2r + 1)^2 pixels.

Values follow the Triton kernel's arithmetic: sigma = (2r + 1) / factor and
c = -1 / (2 sigma^2) in the compute dtype (float32, float64 for float64 heatmaps), a
pixel's value exp(dy^2 c) * exp(dx^2 c), set to 0 below the compute dtype's epsilon,
times ``k_scale``; 16-bit heatmaps get that float32 value rounded once. Other devices
draw through a CPU copy (``backend="torch"`` there is a reference path: it waits for
the device).
"""

from __future__ import annotations

import numpy as np
import torch

LARGE = 64  # window side above which a box draws into its slice of the heatmap
FEW = 2  # calls with at most this many boxes (padding included) draw each one into its slice
ONE_GROUP_PIXELS = 8192  # small windows of a call draw as one group while boxes * side^2 stays below this
_LIMIT = 2**62  # centers and radii are clamped here, so that cx +- r cannot overflow int64 (as in the Triton kernel)


def draw_gaussians_torch(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale):
    """Max-merge the Gaussians of a (B, Tmax) grid of boxes into (N, H, W) ``heatmap`` (the
    op's arguments, see :mod:`gaussdraw.ops.draw_gaussians`)."""
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
        boxes = np.column_stack([plane, radius, center, lo, hi])[large].tolist()
        _draw_slices(work, boxes, coefficient[large], value)
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
    num_samples, per_sample = radii.shape
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
    """Draw ``boxes`` ((plane, radius, cx, cy, x_lo, y_lo, x_hi, y_hi) each) one at a time: the
    outer product of each one's profiles, max-merged into its window's strided slice of the heatmap.
    Many boxes get their profiles from one vectorized pass; each box then costs a few views and two
    torch operations over its pixels (the product into a reused buffer, the max into the heatmap)."""
    if len(boxes) <= FEW:  # fewer operations in all: each box's own profiles
        for (plane, _, cx, cy, x_lo, y_lo, x_hi, y_hi), c in zip(boxes, coefficient):
            dx, dy = _offsets(x_lo - cx, x_hi - cx, c.dtype), _offsets(y_lo - cy, y_hi - cy, c.dtype)
            _max_into(work, plane, y_lo, x_lo, torch.from_numpy(value.outer(np.exp(dy * dy * c), np.exp(dx * dx * c))))
        return
    rows = np.array(boxes, dtype=np.int64)
    plane, center, lo, hi = rows[:, 0].tolist(), rows[:, 2:4], rows[:, 4:6], rows[:, 6:8]
    extent = hi - lo + 1  # (n, 2) window width and height
    offset = (np.minimum(lo[:, :, None] + np.arange(int(extent.max())), hi[:, :, None]) - center[:, :, None])
    offset = offset.astype(coefficient.dtype)  # each offset rounded once
    profile = np.exp(offset * offset * coefficient[:, None, None])  # (n, 2, longest): x, then y
    low = _smallest(profile)  # (n, 2)
    needs_zeroing = (low[:, 0] * low[:, 1] < value.epsilon).tolist()
    profiles = torch.from_numpy(profile)
    buffer = torch.empty(int(extent.prod(1).max()), dtype=profiles.dtype)
    for b, ((width, height), (x_lo, y_lo), zeroing) in enumerate(zip(extent.tolist(), lo.tolist(), needs_zeroing)):
        values = buffer[: height * width].view(height, width)
        value.finish(torch.outer(profiles[b, 1, :height], profiles[b, 0, :width], out=values), zeroing)
        _max_into(work, plane[b], y_lo, x_lo, values)


def _offsets(first: int, last: int, dtype) -> np.ndarray:
    """first, ..., last in ``dtype``, each rounded once (one arange where all are exact in float32)."""
    if -2**24 <= first and last <= 2**24:
        return np.arange(first, last + 1, dtype=dtype)
    return np.arange(first, last + 1).astype(dtype)


def _max_into(work, plane, y_lo, x_lo, values) -> None:
    """work[plane, window] = max(work[plane, window], values), the window at (y_lo, x_lo) of values' shape."""
    height, width = values.shape
    if work.dtype in (torch.float32, torch.float64):  # a NumPy view of the window is cheaper than torch indexing
        window = torch.from_numpy(work.numpy()[plane, y_lo:y_lo + height, x_lo:x_lo + width])
    else:
        window = work[plane, y_lo:y_lo + height, x_lo:x_lo + width]
    torch.maximum(window, values if values.dtype == work.dtype else values.to(work.dtype), out=window)


def _coefficients(radius, sigma_factor, compute) -> np.ndarray:
    """-1 / (2 sigma^2), sigma = (2r + 1) / factor, in the compute dtype (the Triton kernel's operations),
    for an int64 array or a short list of radii."""
    if type(radius) is list and max(radius) < 2**53:  # NumPy scalars: fewer operations for a few boxes
        factor, two, one, minus_one = compute(sigma_factor), compute(2.0), compute(1.0), compute(-1.0)
        sigmas = [(two * compute(r) + one) / factor for r in radius]  # r < 2**53: exact as a double first
        return np.array([minus_one / (two * sigma * sigma) for sigma in sigmas], dtype=compute)
    sigma = np.asarray(radius, dtype=np.int64).astype(compute)
    sigma *= 2.0  # Python numbers meet the array in its dtype: each step rounds as the kernel's
    sigma += 1.0
    sigma /= sigma_factor
    return -1.0 / (2.0 * sigma * sigma)


def _few_drawing_boxes(shape, centers, radii, index, counts, planes_per_sample) -> list:
    """:func:`_drawing_boxes` for at most ``FEW`` boxes, as (plane, radius, cx, cy, x_lo, y_lo, x_hi, y_hi)
    tuples: the same rules on Python integers (with the same clamps), cheaper than array operations."""
    num_planes, height, width = shape
    limit = planes_per_sample or num_planes
    centers, radii = centers.tolist(), radii.tolist()
    labels = index.tolist() if index is not None else None
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

"""The torch implementation of ``gaussdraw::keypoint_heatmaps`` (:mod:`.keypoint_heatmaps`): the CPU path.

One instance a sample (mmpose's top-down case): each map the outer product of a column and a row of
per-axis factors exp(-dy²/2σ²) exp(-dx²/2σ²) (within 1.5 float32 ulps of the exp of the sum; DARK's
factors below 2^-63, values below 1.1e-19, are 0), written in one pass into uninitialised memory, after
the per-keypoint bookkeeping (~150 torch operations on (B, N, K, 2) and (B, K, 2, window) tensors).
Else MSRA/UDP windows are scattered into a zeroed map, by max where a sample has several instances,
and DARK draws every instance at every pixel, a max over instances. Non-finite keypoints (refused by
the public function's value check) draw nothing.
"""

from __future__ import annotations

import math

import numpy as np
import torch

METHODS = ("msra", "udp", "dark")
_BIG = 2.0**40  # as the kernel's BIG and CENTRE_LIMIT
_CENTRE_LIMIT = 2**24


def _sigma_and_denominator(sigma_tensor, sigma: float):
    """(σ as float64, broadcastable to (B, N, K), or a Python float; -2σ² in float32, the same)."""
    if sigma_tensor is None:
        return sigma, -float(np.float32(2.0 * (sigma * sigma)))  # rounded to nearest, as torch's
    s = sigma_tensor.double()
    s = s[:, :, None] if s.dim() == 2 else s[None, None, :]
    return s, (-2.0 * (s * s)).float()


def _axis_geometry(coordinate: torch.Tensor, radius, size: torch.Tensor, method: str):
    """(window start, end (clamped to [0, size]), integer centre, float32 sub-pixel offset, reaches
    the map) of every keypoint on both axes at once (``coordinate`` (B, N, K, 2), ``size`` (2,)
    float64 (W, H), ``radius`` a float or broadcastable to (B, N, K, 1)): the kernel's
    ``_rounded_axis``."""
    if method == "dark":
        radius_d = torch.as_tensor(radius, dtype=coordinate.dtype, device=coordinate.device)
        start = coordinate - radius_d
        end = (coordinate + radius_d) + 1
        reaches = (start < size) & (end >= 0)
        zero = torch.zeros((), dtype=torch.float64, device=coordinate.device)
        return zero, size, zero, coordinate.float(), reaches
    shifted = (coordinate + 0.5).double()  # the sum rounded in the keypoints' dtype
    mu = shifted.nan_to_num(nan=-_BIG).clamp(-_BIG, _BIG).trunc()
    start, end = (mu - radius).trunc(), (mu + radius + 1.0).trunc()
    reaches = (start < size) & (end >= 0)
    centre_index = math.floor((2 * radius + 1) / 2) if isinstance(radius, float) else torch.floor(
        (2.0 * radius + 1.0) * 0.5)
    centre = (start + centre_index).clamp(-_CENTRE_LIMIT, _CENTRE_LIMIT)
    offset = (coordinate.double() - mu).float() if method == "udp" else torch.zeros((), device=mu.device)
    return torch.minimum(start.clamp(min=0), size), torch.minimum(end.clamp(min=0), size), centre, offset, reaches


def keypoint_geometry(keypoints, visible, counts, sigma_tensor, sigma, height, width, method):
    """Per keypoint (B, N, K): both axes' :func:`_axis_geometry` ((B, N, K, 2) tensors; x and y:
    :func:`_split_axes`), whether it draws, its weight, and -2σ² (float32)."""
    sigma, negative_denominator = _sigma_and_denominator(sigma_tensor, sigma)
    radius = sigma * 3.0 if isinstance(sigma, float) else (sigma * 3.0).unsqueeze(-1)
    sizes = torch.arange(2, dtype=torch.float64, device=keypoints.device).mul_(height - width).add_(width)  # (W, H)
    both = _axis_geometry(keypoints, radius, sizes, method)
    num_instances = keypoints.shape[1]
    in_use = (torch.arange(num_instances, device=keypoints.device) < counts[:, None])[:, :, None]
    shown = ~(visible < 0.5)
    reaches = both[4].all(-1)
    weights = torch.where(in_use & ~(shown & ~reaches), visible.float(), 0.0)
    drawn = in_use & shown & reaches
    return both, drawn, weights, negative_denominator


def _split_axes(both_axes):
    """(x axis, y axis): views of :func:`_axis_geometry`'s tensors."""
    return ([t[..., axis] if t.dim() else t for t in both_axes] for axis in (0, 1))


def _squared_offsets(axis, drawn, size: int, extra_dims: int):
    """(B, N, K, size) squared float32 distance of each pixel along one axis, +inf outside the window
    or where the keypoint does not draw; viewed with ``extra_dims`` trailing singleton dims."""
    lo, hi, centre, offset, _ = (t.unsqueeze(-1) if isinstance(t, torch.Tensor) and t.dim() else t for t in axis)
    pixels = torch.arange(size, device=drawn.device)
    distance = (pixels - centre).float() - offset
    inside = (pixels >= lo) & (pixels < hi) & drawn.unsqueeze(-1)
    squared = torch.where(inside, distance * distance, float("inf"))
    return squared.view(*squared.shape, *(1,) * extra_dims)


def keypoint_heatmaps_torch(keypoints, visible, counts, sigma_tensor, sigma, height, width, method):
    """(B, K, H, W), (B, N, K): one instance a sample: outer products of per-axis factors
    (:func:`_outer_product_maps`; MSRA/UDP where σ keeps every window factor above
    :data:`_FACTOR_FLOOR`); else MSRA/UDP windows written into a zeroed map where they are
    smaller than the map (:func:`_scatter_windows`); else every instance at every pixel, then the
    max over instances."""
    both_axes, drawn, weights, negative_denominator = keypoint_geometry(
        keypoints, visible, counts, sigma_tensor, sigma, height, width, method)
    num_samples, num_instances, num_keypoints = visible.shape
    if num_instances == 0:
        return keypoints.new_zeros((num_samples, num_keypoints, height, width), dtype=torch.float32), weights
    if isinstance(negative_denominator, torch.Tensor):
        negative_denominator = negative_denominator[..., None, None]
    window = _window_length(sigma_tensor, sigma, keypoints.device) if method != "dark" else None
    if num_instances == 1 and _separable(method, sigma_tensor, sigma, counts, window):
        return _outer_product_maps(both_axes, drawn, negative_denominator, height, width, window), weights
    x_axis, y_axis = _split_axes(both_axes)
    if window is not None and window * window * 4 <= height * width:
        flush = sigma_tensor is not None or (3.0 * sigma + 2.0) ** 2 / (2.0 * sigma * sigma) > 80.0
        heat = _scatter_windows(x_axis, y_axis, drawn, negative_denominator, window, height, width, flush)
        return heat, weights
    dx2 = _squared_offsets(x_axis, drawn, width, 0).unsqueeze(-2)  # (B, N, K, 1, W)
    dy2 = _squared_offsets(y_axis, drawn, height, 1)  # (B, N, K, H, 1)
    if num_instances == 1:
        return _whole_maps_one_instance(dx2[:, 0], dy2[:, 0], negative_denominator, height, width), weights
    values = _exp_flushed((dx2 + dy2).div_(negative_denominator))
    return values.amax(1), weights


_FACTOR_FLOOR = 2.0**-63  # a product of two float32 factors at least this is normal: no subnormal arithmetic
_SEPARABLE_ARGUMENT = 43.0  # below -ln(_FACTOR_FLOOR) = 43.67: no window factor is flushed


def _separable(method: str, sigma_tensor, sigma: float, counts, window: int | None) -> bool:
    """Whether :func:`_outer_product_maps` gives the values: always for DARK; for MSRA/UDP where
    no window pixel's per-axis factor falls below :data:`_FACTOR_FLOOR` (its distance to the
    centre is at most 3σ + 3: the window's 3σ + 1.5, the UDP shift's 1.5), so that the drawn
    pixels are exactly mmpose's; σ per instance or keypoint only on the CPU (``window`` is None
    elsewhere): its smallest in use."""
    if method == "dark":
        return True
    if window is None:
        return False
    if sigma_tensor is not None:  # per keypoint (K,), or per instance (B, 1): padding past counts
        used = sigma_tensor if sigma_tensor.dim() == 1 else sigma_tensor[:, 0][counts > 0]
        sigma = float(used.min()) if used.numel() else 1.0
    return sigma > 0 and (3.0 * sigma + 3.0) ** 2 / (2.0 * sigma * sigma) < _SEPARABLE_ARGUMENT


def _axis_factors(both_axes, drawn, length: int, negative_denominator, window: int | None) -> torch.Tensor:
    """(B, K, 2, ``length``) float32 exp(-d² / 2σ²) of each pixel's distance d from the keypoint's
    centre (one instance: n = 0) along x (``[:, :, 0, :W]``) and y (``[:, :, 1, :H]``), 0 outside
    its window and where it does not draw. MSRA/UDP (``window``: the longest window side): on the
    window's pixels only, scattered into zeros; DARK (``window`` None): on every pixel, 0 below
    :data:`_FACTOR_FLOOR` (values below 1.1e-19, which DARK's far pixels hold). Every step is a
    float32 operation on (B, K, 2, window) or (B, K, 2, length): no masks of that size."""
    drawn = drawn[:, 0].unsqueeze(-1)  # (B, K, 1)
    if isinstance(negative_denominator, torch.Tensor):  # (B or 1, 1 or N, K or 1, 1, 1); σ 0 pads past counts
        negative_denominator = torch.where(negative_denominator[:, 0] < 0, negative_denominator[:, 0], -1.0)
    if window is None:  # DARK: a keypoint that does not draw is infinitely far, its factors 0
        centre = torch.where(drawn, both_axes[3][:, 0], math.inf)
        arguments = torch.sub(torch.arange(length, device=drawn.device, dtype=torch.float32), centre.unsqueeze(-1))
        arguments = arguments.mul_(arguments).div_(negative_denominator).clamp_(min=_FLUSH_ARGUMENT).exp_()
        return torch.nn.functional.threshold_(arguments, _FACTOR_FLOOR, 0.0)
    lo, hi, centre, offset = (t[:, 0] if t.dim() else t for t in both_axes[:4])
    first = torch.where(drawn, lo - centre, 0.0).float()  # the window's first pixel, from the centre
    pixels_on_map = torch.where(drawn, hi - lo, 0.0).float()  # 0: draws nothing
    window = min(window, length)  # the window's pixels on the map
    steps = torch.arange(window, device=drawn.device, dtype=torch.float32)
    distance = torch.add(first.unsqueeze(-1), steps)  # (B, K, 2, window): integers, exact
    if offset.dim():  # UDP
        distance.sub_(torch.where(drawn, offset, 0.0).unsqueeze(-1))
    values = distance.mul_(distance).div_(negative_denominator).exp_()
    values.mul_(torch.sub(pixels_on_map.unsqueeze(-1), steps).clamp_(0.0, 1.0))  # 0 past the window's end
    pixels = torch.add(torch.where(drawn, lo, 0.0).long().unsqueeze(-1), steps.long())
    factors = values.new_zeros(*values.shape[:3], length + window)
    return factors.scatter_(-1, pixels, values)


def _outer_product_maps(both_axes, drawn, negative_denominator, height: int, width: int,
                        window: int | None) -> torch.Tensor:
    """(B, K, H, W) float32 maps of one instance a sample, each the outer product of its column
    and row factors (:func:`_axis_factors`: exp(a + b) as exp(a) exp(b), within 1.5 float32 ulps
    of it): one pass writing every pixel once, into uninitialised memory. No product is
    subnormal (both factors >= 2^-63), which some CPUs take a slow path for."""
    factors = _axis_factors(both_axes, drawn, max(height, width), negative_denominator, window)
    num_samples, num_keypoints = factors.shape[:2]
    heat = _uninitialised(num_samples * num_keypoints * height * width, drawn.device)
    heat = heat.view(num_samples, num_keypoints, height, width)
    columns, rows = factors[:, :, 1, :height, None], factors[:, :, 0, None, :width]
    return torch.mul(columns, rows, out=heat)


def _uninitialised(numel: int, device: torch.device) -> torch.Tensor:
    """(numel,) float32, uninitialised. Large ones on the CPU from NumPy's allocator, which asks
    the OS for huge pages (madvise): each first touch of a fresh page is a page fault, and 4 KiB
    ones make filling WholeBody's 235 MB maps 3-9x slower."""
    if device.type == "cpu" and numel * 4 >= _CALLOC_BYTES and not torch.compiler.is_compiling():
        return torch.from_numpy(np.empty(numel, dtype=np.float32))
    return torch.empty(numel, device=device)


def _whole_maps_one_instance(dx2, dy2, negative_denominator, height: int, width: int) -> torch.Tensor:
    """(B, K, H, W) float32 Gaussians of one instance a sample over whole maps (dx2 (B, K, 1, W),
    dy2 (B, K, H, 1)), computed in place in the output: five passes, no temporary. (Running them
    a cache-sized run of planes at a time gains 5-10% on an idle CPU but multiplies the parallel
    regions, which cost a scheduler quantum each when another process holds a core.)"""
    if isinstance(negative_denominator, torch.Tensor):  # (B or 1, 1, K or 1, 1, 1)
        negative_denominator = negative_denominator[:, 0]
    heat = torch.add(dx2, dy2)
    return _exp_flushed(heat.div_(negative_denominator))


_FLUSH_BELOW = -87.0  # float32's exp is normal from here up
_FLUSH_ARGUMENT = float(torch.tensor(_FLUSH_BELOW).nextafter(torch.tensor(-math.inf)))  # the float32 below
_FLUSH_THRESHOLD = float(torch.tensor(math.exp((_FLUSH_BELOW + _FLUSH_ARGUMENT) / 2)))  # between their exps


def _exp_flushed(arguments: torch.Tensor) -> torch.Tensor:
    """exp of float32 ``arguments`` in place, 0 where it is below float32's normal range (< -87):
    torch's CPU exp takes a slow path (10-25x) for such arguments, which DARK's whole maps are full
    of; the values it gives there differ from 0 by less than 1.7e-38. Three passes: arguments below
    -87 clamped to the float32 just below it, whose exp (and only theirs) the threshold zeroes."""
    arguments.clamp_(min=_FLUSH_ARGUMENT).exp_()
    return torch.nn.functional.threshold_(arguments, _FLUSH_THRESHOLD, 0.0)


def _window_length(sigma_tensor, sigma, device) -> int | None:
    """The longest MSRA/UDP window side for the largest σ: floor(2r) + 2 >= ceil(2r + 1) >=
    trunc(mu + r + 1) - trunc(mu - r), r = 3σ; None where finding it would sync a GPU."""
    if sigma_tensor is None:
        return math.floor(2 * (sigma * 3.0)) + 2
    if device.type != "cpu" or sigma_tensor.numel() == 0:
        return None
    return math.floor(2 * (float(sigma_tensor.double().max().clamp(max=1e6)) * 3.0)) + 2


def _window_axis(axis, drawn, window: int, stride: int, base, outside: int):
    """(B, N, K, window) squared float32 offsets (0 past the window or where the keypoint does not
    draw) and flat offsets into the map (pixel * ``stride`` + ``base``; ``outside`` there) of one
    axis of each keypoint's window."""
    lo, hi, centre, offset, _ = axis
    pixels = lo.unsqueeze(-1) + torch.arange(window, device=lo.device, dtype=lo.dtype)  # (B, N, K, window)
    distance = (pixels - centre.unsqueeze(-1)).float().sub_(offset.unsqueeze(-1) if offset.dim() else offset)
    inside = (pixels < hi.unsqueeze(-1)).logical_and_(drawn.unsqueeze(-1))
    squared = distance.mul_(distance).masked_fill_(~inside, 0.0)
    flat = pixels.long().mul_(stride).add_(base).masked_fill_(~inside, outside)
    return squared, flat


_CALLOC_BYTES = 32 << 20  # glibc maps allocations this large afresh: torch's zero fill faults in every page


def _zeroed(numel: int, device: torch.device) -> torch.Tensor:
    """(numel,) float32 zeros. Large ones on the CPU from NumPy's zeroed allocation (calloc): the
    OS hands out zero pages as they are first touched, so that pages no window writes are never
    filled here (3x faster for WholeBody's 235 MB maps)."""
    if device.type == "cpu" and numel * 4 >= _CALLOC_BYTES and not torch.compiler.is_compiling():
        return torch.from_numpy(np.zeros(numel, dtype=np.float32))
    return torch.zeros(numel, device=device)


def _scatter_windows(x_axis, y_axis, drawn, negative_denominator, window: int, height: int, width: int,
                     flush: bool = True):
    """Each keypoint's Gaussian on its window x window square, written into a zeroed (B, K, H, W)
    map: one assignment (one instance a sample: windows never share a pixel) or a scatter-max;
    pixels past a window, and windows that do not draw, go to one spare element past the map."""
    num_samples, num_instances, num_keypoints = drawn.shape
    total = num_samples * num_keypoints * height * width
    heat = _zeroed(total + 1, drawn.device)
    planes = torch.arange(0, total, height * width, device=drawn.device).view(num_samples, 1, num_keypoints, 1)
    dx2, columns = _window_axis(x_axis, drawn, window, 1, 0, total)
    dy2, rows = _window_axis(y_axis, drawn, window, width, planes, total)
    index = (rows.unsqueeze(-1) + columns.unsqueeze(-2)).clamp_(max=total).view(-1)  # (B*N*K*w*w,)
    arguments = (dy2.unsqueeze(-1) + dx2.unsqueeze(-2)).div_(negative_denominator)  # (B, N, K, w, w)
    values = (_exp_flushed(arguments) if flush else arguments.exp_()).view(-1)
    if num_instances == 1:
        heat.scatter_(0, index, values)
    else:
        heat.scatter_reduce_(0, index, values, "amax")
    return heat[:total].view(num_samples, num_keypoints, height, width)

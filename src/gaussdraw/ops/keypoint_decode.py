"""The keypoint-decode op: mmpose 1.3.2's ``get_heatmap_maximum`` and one of its refinements,
for every keypoint of a (B, K, H, W) heatmap batch at once.

- maximum: the first maximum in row-major order; keypoints whose maximum is <= 0 are (-1, -1)
  and are not refined;
- ``REFINE_SHIFT``: ``refine_keypoints``, a quarter pixel toward the larger neighbour;
- ``REFINE_DARK``: ``refine_keypoints_dark``: the map blurred as mmpose does (zero-padded by
  (ksize - 1) / 2, then OpenCV's separable Gaussian, whose reflect-101 border never reaches the
  map), rescaled to the map's maximum, clamped at 1e-10, log, then a Newton step from the
  5-point derivatives (interior peaks, 1 < x < W - 2 and 1 < y < H - 2; none where the
  Hessian's determinant is 0);
- ``REFINE_DARK_UDP``: ``refine_keypoints_dark_udp``: the same blur and rescale, clipped to
  [1e-3, 50], log, a 3 x 3 edge-replicated stencil, Newton step with Hessian + eps * I.

Implementations:

- torch: vectorized over B x K: ``argmax`` of the flattened maps, the blur as two products with
  banded matrices, the stencils as gathers (float32; float64 for float64 maps);
- Triton (:mod:`.kernels.keypoint_decode`): the maximum pass reads each map once (a few maps a
  program) and writes the scores and the locations, shifted for ``REFINE_SHIFT``; the DARK step
  comes from a small window around each peak (a vertical blur a window row at a time in registers,
  then one reduction a stencil pixel), in a second launch of a few keypoints a program (the default:
  the maximum pass keeps its registers for streaming) or in the same programs (``fused``;
  :class:`DecodeLaunchShape`).
  The rescale needs the maximum of the whole blurred map only where a clamp bites at a stencil
  pixel (a blurred value <= 1e-10, or for UDP < 1e-3, or a maximum > 50); those keypoints' maps are
  blurred whole (slow, exact, rare for real heatmaps).

Registers decide (benchmarks/NOTES.md, "DARK decode at the read floor"): the programs resident
while the maps stream. The step costs the maximum pass 64 registers a thread on sm_90 (DARK; 56
without a step), where the previous (REGION, REGION, 8) window products and 16 x 64 whole-map tiles
took 112: half the programs resident.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import torch

from ..dispatch import Implementations
from ._constants import device_constant
from ._triton import cdiv, check_device, next_power_of_2

REFINE_NONE, REFINE_SHIFT, REFINE_DARK, REFINE_DARK_UDP = 0, 1, 2, 3
REFINE_MODES = {None: REFINE_NONE, "shift": REFINE_SHIFT, "dark": REFINE_DARK, "dark_udp": REFINE_DARK_UDP}
UDP_EPS = 2.0**-23  # np.finfo(np.float32).eps, added to the Hessian's diagonal

_OPENCV_TABLE = {  # getGaussianKernel(ksize, 0) for small sizes: fixed tables (OpenCV 5.x has 1..9)
    1: (1.0,), 3: (0.25, 0.5, 0.25), 5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
    9: tuple(v / 256 for v in (4, 13, 30, 51, 60, 51, 30, 13, 4)),
}


@cache
def _weights_cpu(ksize: int) -> torch.Tensor:
    if ksize in _OPENCV_TABLE:
        return torch.tensor(_OPENCV_TABLE[ksize], dtype=torch.float32)
    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8  # OpenCV's sigma for sigma=0
    offsets = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    raw = torch.exp(-offsets * offsets / (2 * sigma * sigma))
    return (raw / raw.sum()).float()  # normalised in float64, then float32, as OpenCV


def blur_weights(ksize: int, device: torch.device) -> torch.Tensor:
    """OpenCV's float32 ``getGaussianKernel(ksize, 0)`` on ``device`` (made once per device, copied
    without a sync: later calls can be captured in a CUDA graph)."""
    return device_constant(tuple(_weights_cpu(ksize).tolist()), torch.float32, device)


# ----------------------------------------------------------------------------
# torch
# ----------------------------------------------------------------------------


def _band(size: int, weights: torch.Tensor) -> torch.Tensor:
    """(size, size) matrix M with M[c, x] = weights[c - x + radius] (0 off the band): ``rows @ M`` blurs
    each row with zeros beyond its ends."""
    radius = weights.shape[0] // 2
    positions = torch.arange(size, device=weights.device)
    tap = positions[:, None] - positions[None, :] + radius
    inside = (tap >= 0) & (tap < weights.shape[0])
    return torch.where(inside, weights[tap.clamp(0, weights.shape[0] - 1)], torch.zeros((), dtype=weights.dtype,
                                                                                         device=weights.device))


def _blurred_torch(maps: torch.Tensor, ksize: int, work: torch.dtype) -> torch.Tensor:
    """(N, H, W) maps -> mmpose's blur before the rescale, in ``work`` (the maps rounded to float32
    first): two products with banded matrices (on a CPU far faster than a one-channel convolution;
    on a GPU in float64, out of reach of TF32 settings)."""
    work = torch.float64 if maps.device.type == "cuda" else work
    weights = blur_weights(ksize, maps.device).to(work)
    height, width = maps.shape[-2:]
    planes = maps.float().to(work)
    return _band(height, weights).transpose(0, 1) @ (planes @ _band(width, weights))


def _gather(maps: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """maps[n, y[n], x[n]] for (N, H, W) maps and (N,) coordinates (clamped into the map)."""
    height, width = maps.shape[-2:]
    flat = y.clamp(0, height - 1) * width + x.clamp(0, width - 1)
    return maps.reshape(maps.shape[0], -1).gather(1, flat.unsqueeze(1)).squeeze(1)


def _shift_torch(maps, x, y, valid):
    height, width = maps.shape[-2:]
    with_x = valid & (x > 1) & (x < width - 1) & (y > 0)
    with_y = valid & (y > 1) & (y < height - 1) & (x > 0)
    step_x = torch.sign(_gather(maps, y, x + 1).double() - _gather(maps, y, x - 1).double()) * with_x
    step_y = torch.sign(_gather(maps, y + 1, x).double() - _gather(maps, y - 1, x).double()) * with_y
    return torch.stack([step_x, step_y], -1).float() * 0.25


DARK_STENCIL = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (0, 2), (0, -2), (2, 0), (-2, 0), (1, 1), (-1, 1), (1, -1),
                (-1, -1))
UDP_STENCIL = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def _stencil_offsets(stencil: tuple, device: torch.device):
    """(dy, dx) int64 tensors of ``stencil`` on ``device``, made once per device (as :func:`blur_weights`)."""
    return device_constant(stencil, torch.int64, device).unbind(1)


def _log_stencil(maps, maximum, ksize, low, high, work, y, x, stencil):
    """``at(dy, dx)``: per map, the log of the blurred map rescaled to the map's maximum and clipped to
    [low, high] (NaN propagates) at pixel (y + dy, x + dx) clamped into the map, for (dy, dx) in
    ``stencil``. The whole map is blurred for its maximum; the rescale, clip and log touch only the
    stencil's pixels (one gather, one log)."""
    blurred = _blurred_torch(maps, ksize, work)
    height, width = maps.shape[-2:]
    scale = maximum.to(blurred.dtype) / blurred.amax(dim=(1, 2))
    dy, dx = _stencil_offsets(stencil, maps.device)
    flat = (y[:, None] + dy).clamp(0, height - 1) * width + (x[:, None] + dx).clamp(0, width - 1)
    scaled = blurred.reshape(blurred.shape[0], -1).gather(1, flat) * scale[:, None]
    logs = torch.log(scaled.clamp(min=low) if high is None else scaled.clamp(min=low, max=high))
    column = {offset: i for i, offset in enumerate(stencil)}
    return lambda dy, dx: logs[:, column[(dy, dx)]]


def _dark_torch(at, x, y, valid, height, width):
    dx, dy = 0.5 * (at(0, 1) - at(0, -1)), 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    dyy = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    det = dxx * dyy - dxy * dxy
    inside = valid & (x > 1) & (x < width - 2) & (y > 1) & (y < height - 2) & (det != 0)
    offset = torch.stack([-(dyy * dx - dxy * dy) / det, -(dxx * dy - dxy * dx) / det], -1)
    return torch.where(inside.unsqueeze(-1), offset, torch.zeros_like(offset)).float()


def _dark_udp_torch(at, valid):
    """The UDP step; ``at`` clamps the stencil into the map (edge replication)."""
    center = at(0, 0)
    dx, dy = 0.5 * (at(0, 1) - at(0, -1)), 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2 * center + at(0, -1) + UDP_EPS
    dyy = at(1, 0) - 2 * center + at(-1, 0) + UDP_EPS
    # mmpose's sum as differences of differences: exactly 0 along an axis of one pixel
    dxy = 0.5 * ((at(1, 1) - at(1, 0)) - (at(0, 1) - center) + (at(-1, -1) - at(0, -1)) - (at(-1, 0) - center))
    det = dxx * dyy - dxy * dxy
    offset = torch.stack([-(dyy * dx - dxy * dy) / det, -(dxx * dy - dxy * dx) / det], -1)
    return torch.where(valid.unsqueeze(-1), offset, torch.zeros_like(offset)).float()


def _first_maximum(rows: torch.Tensor) -> torch.Tensor:
    """(N,) int64 position of each row's first maximum: ``argmax`` (NumPy's on the CPU, several times
    faster than torch's there; both take the first of equal maxima)."""
    if rows.device.type == "cpu":
        return torch.from_numpy(rows.detach().numpy().argmax(axis=1).astype("int64"))
    return rows.argmax(dim=1)


def keypoint_decode_torch(heatmaps: torch.Tensor, refine: int, blur_kernel_size: int):
    """(B, K, H, W) -> (keypoints (B, K, 2) float32, scores (B, K) in the heatmaps' dtype)."""
    batch, joints, height, width = heatmaps.shape
    maps = heatmaps.reshape(batch * joints, height, width)
    if maps.numel() == 0:
        return (heatmaps.new_zeros((batch, joints, 2), dtype=torch.float32) - 1, heatmaps.new_zeros((batch, joints)))
    flat = _first_maximum(maps.reshape(batch * joints, -1))
    scores = maps.reshape(batch * joints, -1).gather(1, flat.unsqueeze(1)).squeeze(1)
    x, y = flat % width, flat // width
    valid = scores > 0
    keypoints = torch.stack([x, y], -1).float()
    work = torch.float64 if heatmaps.dtype == torch.float64 else torch.float32
    if refine == REFINE_SHIFT:
        keypoints = keypoints + _shift_torch(maps, x, y, valid)
    elif refine == REFINE_DARK:
        at = _log_stencil(maps, scores, blur_kernel_size, 1e-10, None, work, y, x, DARK_STENCIL)
        keypoints = keypoints + _dark_torch(at, x, y, valid, height, width)
    elif refine == REFINE_DARK_UDP:
        keypoints = keypoints + _dark_udp_torch(_log_stencil(maps, scores, blur_kernel_size, 1e-3, 50.0, work, y, x,
                                                             UDP_STENCIL), valid)
    keypoints = torch.where(valid.unsqueeze(-1), keypoints, torch.full_like(keypoints, -1.0))
    return keypoints.reshape(batch, joints, 2), scores.reshape(batch, joints)


# ----------------------------------------------------------------------------
# Triton
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DecodeLaunchShape:
    """The Triton path's launch shape. Maximum pass: ``maps`` maps a program (a power of 2), searched in
    chunks of ``block`` pixels (at most the map's next power of 2) with ``warps`` warps. DARK step:
    ``fused`` in the maximum pass's programs, else its own launch of ``step_maps`` keypoints a program
    (a power of 2) with ``step_warps`` warps. benchmarks/keypoint_decode_profile.py sweeps them (the
    defaults: the H200 sweep's best, benchmarks/NOTES.md)."""

    maps: int = 1
    block: int = 4096
    warps: int = 4
    fused: bool = False
    step_maps: int = 16
    step_warps: int = 4


DEFAULT_SHAPE = DecodeLaunchShape()


def _tile_width(width: int, warps: int) -> int:
    """Columns of the whole-map blur's 16-row tiles: two pixels a thread (the rare path; wider tiles
    cost every program registers: 112 a thread on sm_90 with 16 x 64 tiles at 4 warps, 64 with 16 x 16)."""
    return min(next_power_of_2(width), 4 * warps)


def keypoint_decode_triton(heatmaps: torch.Tensor, refine: int, blur_kernel_size: int, *,
                           shape: DecodeLaunchShape = DEFAULT_SHAPE):
    """As :func:`keypoint_decode_torch`: one launch, and for DARK / DARK-UDP a second one unless
    ``shape.fused`` (module docstring)."""
    check_device(heatmaps.device)
    from .kernels.keypoint_decode import keypoint_maximum_kernel, keypoint_step_kernel
    from .launch import launch

    heatmaps = heatmaps.contiguous()
    batch, joints, height, width = heatmaps.shape
    keypoints = torch.empty((batch, joints, 2), dtype=torch.float32, device=heatmaps.device)
    scores = torch.empty((batch, joints), dtype=heatmaps.dtype, device=heatmaps.device)
    maps = batch * joints
    if maps == 0:
        return keypoints, scores
    common = dict(heat_ptr=heatmaps, weights_ptr=blur_weights(blur_kernel_size, heatmaps.device),
                  keypoints_ptr=keypoints, scores_ptr=scores, maps=maps, height=height, width=width,
                  size=height * width, udp_eps=UDP_EPS, KSIZE=blur_kernel_size,
                  REGION=next_power_of_2(blur_kernel_size + 4))
    stepping = refine >= REFINE_DARK and not shape.fused
    launch(keypoint_maximum_kernel, (cdiv(maps, shape.maps),), num_warps=shape.warps, **common,
           REFINE=REFINE_NONE if stepping else refine, MAPS=shape.maps, TILE_W=_tile_width(width, shape.warps),
           BLOCK=min(shape.block, next_power_of_2(height * width)))
    if stepping:
        launch(keypoint_step_kernel, (cdiv(maps, shape.step_maps),), num_warps=shape.step_warps, **common,
               REFINE=refine, MAPS=shape.step_maps, TILE_W=_tile_width(width, shape.step_warps))
    return keypoints, scores


@torch.library.custom_op("gaussdraw::keypoint_decode", mutates_args=())
def keypoint_decode_op(heatmaps: torch.Tensor, refine: int, blur_kernel_size: int,
                       use_triton: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The op as torch.compile and the dispatcher see it: the Triton kernel or the torch
    implementation, as ``use_triton`` says (:mod:`gaussdraw.dispatch`)."""
    return KEYPOINT_DECODE.pick(use_triton)(heatmaps, refine, blur_kernel_size)


@keypoint_decode_op.register_fake
def _keypoint_decode_fake(heatmaps, refine, blur_kernel_size, use_triton):
    batch, joints = heatmaps.shape[:2]
    return (heatmaps.new_empty((batch, joints, 2), dtype=torch.float32), heatmaps.new_empty((batch, joints)))


KEYPOINT_DECODE = Implementations(triton=keypoint_decode_triton, torch=keypoint_decode_torch,
                                  registered=keypoint_decode_op)

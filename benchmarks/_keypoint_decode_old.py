"""The previous keypoint-decode kernel (one program a map, the DARK step after the argmax in the same
program, 112 registers a thread on sm_90 against 56 for the plain argmax), kept for
benchmarks/keypoint_decode_profile.py to time against (H200: 91.1 µs DARK on WholeBody B=64)."""
# ruff: noqa
import torch

from gaussdraw.ops._triton import next_power_of_2
from gaussdraw.ops.keypoint_decode import UDP_EPS, blur_weights
from gaussdraw.ops.launch import launch

import triton
import triton.language as tl

DARK_LOW = tl.constexpr(1e-10)  # refine_keypoints_dark's clamp
UDP_LOW = tl.constexpr(1e-3)  # refine_keypoints_dark_udp's clip
UDP_HIGH = tl.constexpr(50.0)


@triton.jit
def _first_maximum(base, size, BLOCK: tl.constexpr):
    """(value in the map's dtype, flat position) of the first maximum of ``size`` pixels at ``base``."""
    lanes = tl.arange(0, BLOCK)
    best = tl.load(base + lanes, mask=lanes < size, other=float("-inf"))
    best_at = lanes
    for start in range(BLOCK, size, BLOCK):
        at = start + lanes
        values = tl.load(base + at, mask=at < size, other=float("-inf"))
        better = values > best
        best = tl.where(better, values, best)
        best_at = tl.where(better, at, best_at)
    maximum = tl.max(best, axis=0)
    return maximum, tl.min(tl.where(best == maximum, best_at, size), axis=0)


@triton.jit
def _blurred_window(base, weights_ptr, x, y, height, width, KSIZE: tl.constexpr, REGION: tl.constexpr):
    """(8, 8) float32: the blur (before the rescale) at map pixel (y - 2 + i, x - 2 + j), i, j < 5."""
    radius = KSIZE // 2
    region = tl.arange(0, REGION)
    rows = (y - 2 - radius + region)[:, None]
    cols = (x - 2 - radius + region)[None, :]
    window = tl.load(base + rows * width + cols, mask=(rows >= 0) & (rows < height) & (cols >= 0) & (cols < width),
                     other=0.0).to(tl.float32)
    tap = region[:, None] - tl.arange(0, 8)[None, :]  # banded (REGION, 8): weight of window pixel c for output j
    band = tl.load(weights_ptr + tap, mask=(tap >= 0) & (tap < KSIZE) & (tl.arange(0, 8)[None, :] < 5), other=0.0)
    along_rows = tl.sum(window[:, :, None] * band[None, :, :], axis=1)  # (REGION, 8)
    return tl.sum(band[:, :, None] * along_rows[:, None, :], axis=0)  # (8, 8)


@triton.jit
def _blurred_maximum(base, weights_ptr, height, width, KSIZE: tl.constexpr, TILE_W: tl.constexpr):
    """The maximum of the whole blurred map (before the rescale): tiles of 16 x TILE_W, direct sums."""
    radius = KSIZE // 2
    rows0 = tl.arange(0, 16)[:, None]
    cols0 = tl.arange(0, TILE_W)[None, :]
    best = tl.full((16, TILE_W), float("-inf"), tl.float32)
    for top in range(0, height, 16):
        for left in range(0, width, TILE_W):
            rows, cols = top + rows0, left + cols0
            total = tl.zeros((16, TILE_W), tl.float32)
            for i in range(KSIZE):
                along_row = tl.zeros((16, TILE_W), tl.float32)
                r = rows + i - radius
                for j in range(KSIZE):
                    c = cols + j - radius
                    pixels = tl.load(base + r * width + c, mask=(r >= 0) & (r < height) & (c >= 0) & (c < width),
                                     other=0.0).to(tl.float32)
                    along_row += tl.load(weights_ptr + j) * pixels
                total += tl.load(weights_ptr + i) * along_row
            best = tl.maximum(best, tl.where((rows < height) & (cols < width), total, float("-inf")))
    return tl.max(tl.max(best, axis=1), axis=0)


@triton.jit
def _at(dy, dx):
    """(8, 8) float32 indicator of window pixel (2 + dy, 2 + dx)."""
    return ((tl.arange(0, 8)[:, None] == 2 + dy) & (tl.arange(0, 8)[None, :] == 2 + dx)).to(tl.float32)


@triton.jit
def _weighted(logs, weights):
    """The sum of ``weights`` * ``logs`` over the (8, 8) window (pixels of weight 0 left out)."""
    return tl.sum(tl.sum(tl.where(weights != 0, logs * weights, 0.0), axis=1), axis=0)


@triton.jit
def _dark_step(logs):
    """(offset x, offset y) of refine_keypoints_dark; zeros where the Hessian's determinant is 0.
    Each derivative is one weighted sum over the window (five reductions, not a pick per pixel)."""
    dx = _weighted(logs, 0.5 * (_at(0, 1) - _at(0, -1)))
    dy = _weighted(logs, 0.5 * (_at(1, 0) - _at(-1, 0)))
    dxx = _weighted(logs, 0.25 * (_at(0, 2) - 2 * _at(0, 0) + _at(0, -2)))
    dxy = _weighted(logs, 0.25 * (_at(1, 1) - _at(-1, 1) - _at(1, -1) + _at(-1, -1)))
    dyy = _weighted(logs, 0.25 * (_at(2, 0) - 2 * _at(0, 0) + _at(-2, 0)))
    det = dxx * dyy - dxy * dxy
    singular = det == 0
    det = tl.where(singular, 1.0, det)
    return (tl.where(singular, 0.0, -(dyy * dx - dxy * dy) / det),
            tl.where(singular, 0.0, -(dxx * dy - dxy * dx) / det))


@triton.jit
def _udp_step(logs, x, y, height, width, udp_eps):
    """(offset x, offset y) of refine_keypoints_dark_udp: a 3 x 3 stencil, edge-replicated (the
    neighbours' offsets clamped into the map; along an axis of one pixel the weights cancel exactly)."""
    left = tl.maximum(x - 1, 0) - x
    right = tl.minimum(x + 1, width - 1) - x
    up = tl.maximum(y - 1, 0) - y
    down = tl.minimum(y + 1, height - 1) - y
    dx = _weighted(logs, 0.5 * (_at(0, right) - _at(0, left)))
    dy = _weighted(logs, 0.5 * (_at(down, 0) - _at(up, 0)))
    dxx = _weighted(logs, _at(0, right) - 2 * _at(0, 0) + _at(0, left)) + udp_eps
    dyy = _weighted(logs, _at(down, 0) - 2 * _at(0, 0) + _at(up, 0)) + udp_eps
    # mmpose's cross term: (x+1, y+1) - (x+1) - (y+1) + 2 (x, y) - (x-1) - (y-1) + (x-1, y-1)
    dxy = _weighted(logs, 0.5 * ((_at(down, right) - _at(down, 0)) - (_at(0, right) - _at(0, 0))
                                 + (_at(up, left) - _at(0, left)) - (_at(up, 0) - _at(0, 0))))
    det = dxx * dyy - dxy * dxy
    return -(dyy * dx - dxy * dy) / det, -(dxx * dy - dxy * dx) / det


@triton.jit
def _scale_cancels(blurred, stencil, maximum, x, y, height, width, low, high):
    """Whether the step is the same for every rescale s = maximum / (blurred map's maximum), as when
    s = 1: no clamp bites at the stencil's pixels (their blurred values above ``low``, with s >= 1, and
    the maximum, the largest rescaled value, below ``high``), or it bites at every pixel (the maximum
    below ``low``, with a positive blurred value in the window). Margins of 1e-4 cover float32 sums."""
    dy = tl.arange(0, 8)[:, None] - 2
    dx = tl.arange(0, 8)[None, :] - 2
    in_map = (tl.abs(dy) <= 2) & (tl.abs(dx) <= 2) & (y + dy >= 0) & (y + dy < height) & (x + dx >= 0) & \
        (x + dx < width)
    stencil_min = tl.min(tl.min(tl.where(stencil & in_map, blurred, float("inf")), axis=1), axis=0)
    window_max = tl.max(tl.max(tl.where(in_map, blurred, float("-inf")), axis=1), axis=0)
    no_clamp = (stencil_min > low * 1.0001) & (maximum < high * 0.9999)
    all_clamped = (window_max > 0) & (maximum < low * 0.9999)
    return no_clamp | all_clamped


@triton.jit
def keypoint_decode_kernel(heat_ptr, weights_ptr, keypoints_ptr, scores_ptr, height, width, udp_eps,
                           REFINE: tl.constexpr, KSIZE: tl.constexpr, REGION: tl.constexpr, BLOCK: tl.constexpr,
                           TILE_W: tl.constexpr):
    plane = tl.program_id(0).to(tl.int64)
    base = heat_ptr + plane * height * width
    maximum, flat = _first_maximum(base, height * width, BLOCK)
    tl.store(scores_ptr + plane, maximum)
    x, y = flat % width, flat // width
    valid = maximum > 0
    offset_x = 0.0
    offset_y = 0.0
    if REFINE == 1:  # shift: a quarter pixel toward the larger neighbour, mmpose's bounds
        left = tl.load(base + flat - 1, mask=valid & (x > 0), other=0.0)
        right = tl.load(base + flat + 1, mask=valid & (x < width - 1), other=0.0)
        up = tl.load(base + flat - width, mask=valid & (y > 0), other=0.0)
        down = tl.load(base + flat + width, mask=valid & (y < height - 1), other=0.0)
        step_x = tl.where(right > left, 0.25, tl.where(right < left, -0.25, 0.0))
        step_y = tl.where(down > up, 0.25, tl.where(down < up, -0.25, 0.0))
        offset_x = tl.where((x > 1) & (x < width - 1) & (y > 0), step_x, 0.0)
        offset_y = tl.where((y > 1) & (y < height - 1) & (x > 0), step_y, 0.0)
    if REFINE >= 2:  # DARK (2) and DARK-UDP (3)
        blurred = _blurred_window(base, weights_ptr, x, y, height, width, KSIZE, REGION)
        dy = tl.arange(0, 8)[:, None] - 2
        dx = tl.arange(0, 8)[None, :] - 2
        if REFINE == 2:
            stencil = (tl.abs(dy) + tl.abs(dx)) <= 2
            refining = valid & (x > 1) & (x < width - 2) & (y > 1) & (y < height - 2)
            low = DARK_LOW
            high = float("inf")
        else:
            stencil = (tl.abs(dy) <= 1) & (tl.abs(dx) <= 1)
            refining = valid
            low = UDP_LOW
            high = UDP_HIGH
        exact = _scale_cancels(blurred, stencil, maximum.to(tl.float32), x, y, height, width, low, high)
        scale = tl.zeros_like(maximum.to(tl.float32)) + 1.0  # where no clamp bites, the rescale cancels
        if refining & ~exact:
            scale = maximum.to(tl.float32) / _blurred_maximum(base, weights_ptr, height, width, KSIZE, TILE_W)
        scaled = blurred * scale
        logs = tl.log(tl.where(scaled < low, low, tl.where(scaled > high, high, scaled)))
        if REFINE == 2:
            step_x, step_y = _dark_step(logs)
        else:
            step_x, step_y = _udp_step(logs, x, y, height, width, udp_eps)
        offset_x = tl.where(refining, step_x, 0.0)
        offset_y = tl.where(refining, step_y, 0.0)
    keypoint_x = tl.where(valid, x.to(tl.float32) + offset_x, -1.0)
    keypoint_y = tl.where(valid, y.to(tl.float32) + offset_y, -1.0)
    tl.store(keypoints_ptr + plane * 2, keypoint_x)
    tl.store(keypoints_ptr + plane * 2 + 1, keypoint_y)


def old_keypoint_decode_triton(heatmaps, refine, blur_kernel_size, block=2048, warps=4):
    """The previous host function: one launch, one program a map."""
    heatmaps = heatmaps.contiguous()
    batch, joints, height, width = heatmaps.shape
    keypoints = torch.empty((batch, joints, 2), dtype=torch.float32, device=heatmaps.device)
    scores = torch.empty((batch, joints), dtype=heatmaps.dtype, device=heatmaps.device)
    launch(keypoint_decode_kernel, (batch * joints,), num_warps=warps,
           heat_ptr=heatmaps, weights_ptr=blur_weights(blur_kernel_size, heatmaps.device), keypoints_ptr=keypoints,
           scores_ptr=scores, height=height, width=width, udp_eps=UDP_EPS, REFINE=refine, KSIZE=blur_kernel_size,
           REGION=next_power_of_2(blur_kernel_size + 4), BLOCK=min(block, next_power_of_2(height * width)),
           TILE_W=min(64, next_power_of_2(width)))
    return keypoints, scores

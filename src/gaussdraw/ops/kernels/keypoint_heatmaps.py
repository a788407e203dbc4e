"""Triton kernel of :mod:`gaussdraw.ops.keypoint_heatmaps`: mmpose's keypoint heatmap encoding.

One program = BLOCK consecutive pixels (row-major) of one heatmap plane (sample b, keypoint k):
it loops over the sample's instances, works out each one's window, centre and σ from its
keypoint (scalars, in float64 and the keypoints' dtype, as mmpose rounds), and keeps the max
over instances of the float32 Gaussian at each of its pixels. The map's size is constexpr
(one compile per heatmap size): a pixel's row and column come from a division by a constant,
and the plane's stores are vectorised. Only a tile whose rows meet an instance's window (any
drawn instance for DARK) evaluates that instance's Gaussian; others store zeros. The
Gaussian is exp2(d² * (-log2(e) / 2σ²)): one multiply and one ex2 a pixel, as Triton's exp is
ex2 of x * log2(e) after the division (on a GPU, both within a couple of float32 ulps of
mmpose's exp(-d² / 2σ²)). Every output pixel is written once (no zero fill, no atomics); the
program of tile 0 also writes the plane's keypoint weights.
Compiled without fused multiply-adds, so that dx * dx + dy * dy rounds as NumPy's does.
"""

from __future__ import annotations

import triton
import triton.language as tl

MSRA, UDP, DARK = 0, 1, 2  # METHOD
SCALAR_SIGMA, SIGMA_PER_INSTANCE, SIGMA_PER_KEYPOINT = 0, 1, 2  # SIGMA_MODE
BIG = tl.constexpr(2.0**40)  # rounded centres are clamped to +-BIG (NaN: -BIG), far outside any map
CENTRE_LIMIT = tl.constexpr(2**24)  # window centres are clamped to +-CENTRE_LIMIT (int32 pixel offsets)
HALF_LOG2_E = tl.constexpr(0.7213475204444817)  # log2(e) / 2
# The inputs' alignments are not specialized on (their loads are scalar): a repeated call's new inputs,
# views at any offset, reuse the compiled kernel (gaussdraw.ops.launch.Relaunch); the outputs are fresh.
INPUT_POINTERS = ["keypoints_ptr", "visible_ptr", "counts_ptr", "sigma_ptr"]


@triton.jit
def _round_to(value, dtype: tl.constexpr):
    """``value`` (float64) rounded to ``dtype`` and back: one operation done in ``dtype``."""
    return value.to(dtype).to(tl.float64)


@triton.jit
def _rounded_axis(coordinate, radius, size, METHOD: tl.constexpr):
    """One axis of a keypoint (float64 holding a value of the keypoints' dtype): (window start,
    window end, both clamped to [0, size]; integer centre; sub-pixel offset of the Gaussian's
    centre from it (float32); whether the 3σ square reaches the map on this axis)."""
    if METHOD == 2:  # DARK: the unrounded centre; bounds in the keypoints' dtype
        value = coordinate.to(tl.float64)
        radius_d = _round_to(radius, coordinate.dtype)
        start = _round_to(value - radius_d, coordinate.dtype)
        end = _round_to(_round_to(value + radius_d, coordinate.dtype) + 1.0, coordinate.dtype)
        reaches = (start < size) & (end >= 0.0)
        return 0, size, 0, coordinate.to(tl.float32), reaches
    else:  # MSRA, UDP: centre (kp + 0.5) truncated; float bounds truncated toward zero
        shifted = _round_to(coordinate.to(tl.float64) + 0.5, coordinate.dtype)
        shifted = tl.where(shifted == shifted, shifted, -BIG)
        mu = tl.minimum(tl.maximum(shifted, -BIG), BIG).to(tl.int64).to(tl.float64)
        start = (mu - radius).to(tl.int64)
        end = (mu + radius + 1.0).to(tl.int64)
        reaches = (start < size) & (end >= 0)
        centre = start + ((2.0 * radius + 1.0) * 0.5).to(tl.int64)
        centre = tl.minimum(tl.maximum(centre, -CENTRE_LIMIT), CENTRE_LIMIT).to(tl.int32)
        offset = (coordinate.to(tl.float64) - mu).to(tl.float32) if METHOD == 1 else 0.0
        lo = tl.minimum(tl.maximum(start, 0), size).to(tl.int32)
        hi = tl.minimum(tl.maximum(end, 0), size).to(tl.int32)
        return lo, hi, centre, offset, reaches


@triton.jit(do_not_specialize_on_alignment=INPUT_POINTERS)
def keypoint_heatmaps_kernel(
    heat_ptr, weights_ptr, keypoints_ptr, visible_ptr, counts_ptr, sigma_ptr, sigma_bits,
    num_keypoints, num_instances,
    stride_kb, stride_kn, stride_kk, stride_kc, stride_vb, stride_vn, stride_vk, stride_cb,
    stride_sb, stride_sn, stride_sk,
    HEIGHT: tl.constexpr, WIDTH: tl.constexpr, METHOD: tl.constexpr, SIGMA_MODE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    plane = tl.program_id(0)  # b * K + k
    tile = tl.program_id(1)  # BLOCK consecutive pixels of the plane (row-major)
    b = plane // num_keypoints
    k = plane - b * num_keypoints
    count = tl.load(counts_ptr + b * stride_cb).to(tl.int32)
    count = tl.minimum(tl.maximum(count, 0), num_instances)
    first = tile * BLOCK
    o_pixel = first + tl.arange(0, BLOCK)
    first_row = first // WIDTH
    last_row = (first + BLOCK - 1) // WIDTH
    b_heat = tl.zeros([BLOCK], dtype=tl.float32)
    p_kp = keypoints_ptr + b * stride_kb + k * stride_kk  # instance 0's, advanced by n below
    p_visible = visible_ptr + b * stride_vb + k * stride_vk
    p_sigma = sigma_ptr + b * stride_sb + k * stride_sk  # per instance: + n * stride_sn
    p_weight = weights_ptr + b * num_instances * num_keypoints + k
    if SIGMA_MODE == 0:
        sigma = sigma_bits.to(tl.int64).to(tl.float64, bitcast=True)
    elif SIGMA_MODE == 2:
        sigma = tl.load(p_sigma).to(tl.float64)
    for n in range(0, count):
        x = tl.load(p_kp)
        y = tl.load(p_kp + stride_kc)
        flag = tl.load(p_visible)
        shown = ~(flag < 0.5)
        if SIGMA_MODE == 1:
            sigma = tl.load(p_sigma).to(tl.float64)
            p_sigma += stride_sn
        radius = sigma * 3.0
        x_lo, x_hi, x_centre, x_offset, x_reaches = _rounded_axis(x, radius, WIDTH, METHOD)
        y_lo, y_hi, y_centre, y_offset, y_reaches = _rounded_axis(y, radius, HEIGHT, METHOD)
        drawn = shown & x_reaches & y_reaches
        # exp(d2 / -2σ²) as exp2(d2 * scale): one multiply and ex2 a pixel, as Triton's exp
        # (ex2 of x * log2 e) after a division (rcp-based, like the multiply within 2 ulps)
        variance = sigma * sigma
        scale = ((variance * 0.0 - HALF_LOG2_E) / variance).to(tl.float32)  # -log2(e) / 2σ², in float64
        if drawn & (y_lo <= last_row) & (y_hi > first_row):  # the tile meets the window's rows
            o_y = o_pixel // WIDTH
            o_x = o_pixel - o_y * WIDTH
            b_dx = (o_x - x_centre).to(tl.float32) - x_offset
            b_dy = (o_y - y_centre).to(tl.float32) - y_offset
            b_value = tl.exp2((b_dx * b_dx + b_dy * b_dy) * scale)
            if METHOD != 2:  # MSRA, UDP: 0 outside the window
                inside = (o_x >= x_lo) & (o_x < x_hi) & (o_y >= y_lo) & (o_y < y_hi)
                b_value = tl.where(inside, b_value, 0.0)
            b_heat = tl.maximum(b_heat, b_value)
        if tile == 0:
            weight = tl.where(shown & ~(x_reaches & y_reaches), 0.0, flag.to(tl.float32))
            tl.store(p_weight, weight)
        p_kp += stride_kn
        p_visible += stride_vn
        p_weight += num_keypoints
    if tile == 0:
        for n in range(count, num_instances):
            tl.store(p_weight, 0.0)
            p_weight += num_keypoints
    p_heat = heat_ptr + plane.to(tl.int64) * (HEIGHT * WIDTH) + o_pixel
    if (HEIGHT * WIDTH) % BLOCK == 0:
        tl.store(p_heat, b_heat)
    else:
        tl.store(p_heat, b_heat, mask=o_pixel < HEIGHT * WIDTH)

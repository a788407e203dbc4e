"""``@triton.jit`` helpers shared by several kernels.

- per-box arithmetic of the target-assignment kernels (:mod:`gaussdraw.ops._box_math` says how it
  rounds: float32 operations in the references' order, ``div_rn``, ``sqrt_rn``, kernels compiled
  without fused multiply-adds);
- the int32 order of float32 scores (:mod:`gaussdraw.ops._sort_keys` makes the same keys in torch);
- mmdet's local maximum at a set of pixels (the local-maximum and peaks kernels).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _probe():
    pass


INTERPRETED = type(_probe).__name__ == "InterpretedFunction"  # TRITON_INTERPRET=1 when the kernels were made


# ----------------------------------------------------------------------------
# per-box arithmetic (target assignment)
# ----------------------------------------------------------------------------


@triton.jit
def sample_block(blocks_per_sample, BLOCK: tl.constexpr):
    """(sample b, as int64; positions t, (BLOCK,)) of this program when each program takes BLOCK
    consecutive boxes of one sample (``blocks_per_sample`` programs a sample)."""
    pid = tl.program_id(0)
    b = (pid // blocks_per_sample).to(tl.int64)
    t = (pid % blocks_per_sample) * BLOCK + tl.arange(0, BLOCK)
    return b, t


@triton.jit
def is_finite(x):
    return x - x == 0.0  # inf - inf and NaN - NaN are NaN


@triton.jit
def cornernet_radius(height, width, one_minus, one_plus, minus_two_o, o_minus_one, sixteen_o):
    """mmdet3d 1.x ``gaussian_radius((height, width), o)`` (the original CornerNet formula)."""
    b1 = height + width
    c1 = tl.div_rn(width * height * one_minus, one_plus)
    r1 = (b1 + tl.sqrt_rn(b1 * b1 - 4.0 * c1)) * 0.5
    b2 = 2.0 * (height + width)
    c2 = one_minus * width * height
    r2 = (b2 + tl.sqrt_rn(b2 * b2 - 16.0 * c2)) * 0.5
    b3 = minus_two_o * (height + width)
    c3 = o_minus_one * width * height
    r3 = (b3 + tl.sqrt_rn(b3 * b3 - sixteen_o * c3)) * 0.5
    return tl.minimum(tl.minimum(r1, r2), r3)


@triton.jit
def mmdet_radius(height, width, one_minus, one_plus, minus_two_o, o_minus_one, sixteen_o, eight_o):
    """mmdet 3.x ``gaussian_radius((height, width), o)`` (the corrected formula)."""
    b1 = height + width
    c1 = tl.div_rn(width * height * one_minus, one_plus)
    r1 = (b1 - tl.sqrt_rn(b1 * b1 - 4.0 * c1)) * 0.5
    b2 = 2.0 * (height + width)
    c2 = one_minus * width * height
    r2 = (b2 - tl.sqrt_rn(b2 * b2 - 16.0 * c2)) * 0.125
    b3 = minus_two_o * (height + width)
    c3 = o_minus_one * width * height
    r3 = tl.div_rn(b3 + tl.sqrt_rn(b3 * b3 - sixteen_o * c3), eight_o)
    return tl.minimum(tl.minimum(r1, r2), r3)


@triton.jit
def truncated_radius(radius, valid, least):
    """max(least, int(radius)) as int32 where ``valid`` (radius finite and >= 0 there), else -1."""
    r = tl.minimum(tl.where(valid, radius, 0.0), 1073741824.0).to(tl.int32)  # MAX_RADIUS
    return tl.where(valid, tl.maximum(r, least), -1)


# ----------------------------------------------------------------------------
# ordering keys (peaks, circle NMS)
# ----------------------------------------------------------------------------


@triton.jit
def ordered_bits(values):
    """The int32 ``order`` of float32 ``values`` (as :func:`gaussdraw.ops._sort_keys.score_keys` makes it)."""
    values = tl.where(values == 0.0, 0.0, values)
    values = tl.where(values != values, float("nan"), values)
    bits = values.to(tl.int32, bitcast=True)
    return tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


# ----------------------------------------------------------------------------
# local maximum (local-maximum and peaks kernels)
# ----------------------------------------------------------------------------


@triton.jit
def suppressed_values(heat_ptr, base, y, x, inside, height, width, KERNEL: tl.constexpr):
    """``heat * (window max == heat)`` in float32 at pixels (y, x) (tensors of any one shape) of the
    plane starting at ``base``, where ``inside``; the window clipped to the map."""
    heat = tl.load(heat_ptr + base + y * width + x, mask=inside, other=0.0).to(tl.float32)
    window_max = tl.full(heat.shape, float("-inf"), tl.float32)
    pad: tl.constexpr = (KERNEL - 1) // 2
    for dy in tl.static_range(KERNEL):
        for dx in tl.static_range(KERNEL):
            ny = y + (dy - pad)
            nx = x + (dx - pad)
            reach = inside & (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
            near = tl.load(heat_ptr + base + ny * width + nx, mask=reach, other=float("-inf")).to(tl.float32)
            window_max = tl.maximum(window_max, near, propagate_nan=tl.PropagateNan.ALL)
    return heat * (window_max == heat).to(tl.float32)

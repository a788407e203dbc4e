"""Per-box arithmetic shared by the target-assignment kernels, written to round as the
references do (see :mod:`gaussdraw.radius`): float32 operations in the references'
order, correctly rounded division and square root (``div_rn``, ``sqrt_rn``), and
kernels compiled without fused multiply-adds (``enable_fp_fusion=False``).

The constants come from :func:`radius_constants`, rounded to float32 at launch as the
references round a Python number that multiplies a float32 tensor.
"""

from __future__ import annotations

from ._triton import jit, tl

# Radii are clamped here before the cast to int32. A Gaussian of this radius is 1.0
# (in float32) over any map up to 2**15 pixels wide, as every larger one is, so the
# clamp changes no drawn value.
MAX_RADIUS = 2**30


def radius_constants(min_overlap: float) -> tuple[float, float, float, float, float, float]:
    """(1 - o, 1 + o, -2 o, o - 1, 16 o, 8 o) for ``min_overlap`` o, as the formulas use them."""
    o = float(min_overlap)
    return 1 - o, 1 + o, -2 * o, o - 1, 16 * o, 8 * o


@jit
def is_finite(x):
    return x - x == 0.0  # inf - inf and NaN - NaN are NaN


@jit
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


@jit
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


@jit
def truncated_radius(radius, valid, least):
    """max(least, int(radius)) as int32 where ``valid`` (radius finite and >= 0 there), else -1."""
    r = tl.minimum(tl.where(valid, radius, 0.0), 1073741824.0).to(tl.int32)  # MAX_RADIUS
    return tl.where(valid, tl.maximum(r, least), -1)

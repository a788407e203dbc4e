"""Per-box arithmetic shared by the target-assignment kernels, written to round as the
references do (see :mod:`gaussdraw.radius`): float32 operations in the references'
order, correctly rounded division and square root (``div_rn``, ``sqrt_rn``), and
kernels compiled without fused multiply-adds (``enable_fp_fusion=False``). The
``@triton.jit`` functions are in :mod:`gaussdraw.ops.kernels.common`.

The constants come from :func:`radius_constants`, rounded to float32 at launch as the
references round a Python number that multiplies a float32 tensor.
"""

from __future__ import annotations

# Radii are clamped here before the cast to int32. A Gaussian of this radius is 1.0
# (in float32) over any map up to 2**15 pixels wide, as every larger one is, so the
# clamp changes no drawn value.
MAX_RADIUS = 2**30

# the kernels' names of radius_constants' values
RADIUS_CONSTANTS = ("one_minus", "one_plus", "minus_two_o", "o_minus_one", "sixteen_o", "eight_o")


def radius_constants(min_overlap: float) -> tuple[float, float, float, float, float, float]:
    """(1 - o, 1 + o, -2 o, o - 1, 16 o, 8 o) for ``min_overlap`` o, as the formulas use them."""
    o = float(min_overlap)
    return 1 - o, 1 + o, -2 * o, o - 1, 16 * o, 8 * o


def radius_arguments(min_overlap: float, count: int = 6) -> dict:
    """The first ``count`` of :func:`radius_constants` by the kernels' parameter names."""
    return dict(zip(RADIUS_CONSTANTS[:count], radius_constants(min_overlap)[:count]))

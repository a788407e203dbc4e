"""The local-maximum kernel: one program per tile of a plane (see :mod:`gaussdraw.ops.local_maximum`)."""

from __future__ import annotations

import triton
import triton.language as tl

from .common import suppressed_values


@triton.jit
def local_maximum_kernel(heat_ptr, out_ptr, height, width, tiles_w, KERNEL: tl.constexpr,
                         BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    plane = tl.program_id(1).to(tl.int64)
    tile = tl.program_id(0)
    y = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    x = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    base = plane * height * width
    inside = (y < height) & (x < width)
    values = suppressed_values(heat_ptr, base, y, x, inside, height, width, KERNEL)
    tl.store(out_ptr + base + y * width + x, values.to(out_ptr.dtype.element_ty), mask=inside)

"""The local-maximum op: mmdet's ``get_local_maximum`` in one pass over the heatmap.

``heat * (max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2) == heat)``: a pixel
keeps its value where it equals the max of its kernel x kernel window (clipped to the map, as
max-pooling's -inf padding does; plateaus keep every pixel), else it becomes ``heat * 0`` (0,
or NaN for NaN and infinite pixels, as the product gives). A NaN in a window makes its max NaN,
as max-pooling does.

- Triton: one program per tile of a plane; the window's neighbours come from the cache, so the
  heatmap is read once from memory and the result written once.
- torch: mmdet's composition (CPU, and the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..dispatch import Implementations
from ._triton import Launcher, check_device, jit, tl, triton

BLOCK_H, BLOCK_W = 16, 64


@jit
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


@jit
def _local_maximum_kernel(heat_ptr, out_ptr, height, width, tiles_w, KERNEL: tl.constexpr,
                          BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    plane = tl.program_id(1).to(tl.int64)
    tile = tl.program_id(0)
    y = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    x = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    base = plane * height * width
    inside = (y < height) & (x < width)
    values = suppressed_values(heat_ptr, base, y, x, inside, height, width, KERNEL)
    tl.store(out_ptr + base + y * width + x, values.to(out_ptr.dtype.element_ty), mask=inside)


_launch = Launcher(_local_maximum_kernel)


def local_maximum_triton(heat: torch.Tensor, kernel: int) -> torch.Tensor:
    """(B, C, H, W) -> the same shape and dtype (module docstring)."""
    check_device(heat.device)
    heat = heat.contiguous()
    out = torch.empty_like(heat)
    height, width = heat.shape[-2:]
    planes = heat.numel() // max(height * width, 1)
    if heat.numel() == 0:
        return out
    tiles_w = triton.cdiv(width, BLOCK_W)
    grid = (triton.cdiv(height, BLOCK_H) * tiles_w, planes)
    _launch(grid, (heat, out, height, width, tiles_w), dict(KERNEL=kernel, BLOCK_H=BLOCK_H, BLOCK_W=BLOCK_W),
            num_warps=4)
    return out


def local_maximum_torch(heat: torch.Tensor, kernel: int) -> torch.Tensor:
    """mmdet's composition, in the heatmap's dtype (computed in float32 for 16-bit heatmaps)."""
    work = heat if heat.dtype in (torch.float32, torch.float64) else heat.float()
    window_max = F.max_pool2d(work, kernel, stride=1, padding=(kernel - 1) // 2)
    return (work * (window_max == work).to(work.dtype)).to(heat.dtype)


@torch.library.custom_op("gaussdraw::local_maximum", mutates_args=())
def local_maximum_op(heat: torch.Tensor, kernel: int, use_triton: bool) -> torch.Tensor:
    """The op as torch.compile and the dispatcher see it: the Triton kernel or mmdet's composition,
    as ``use_triton`` says (:mod:`gaussdraw.dispatch`)."""
    return LOCAL_MAXIMUM.pick(use_triton)(heat, kernel)


@local_maximum_op.register_fake
def _local_maximum_fake(heat, kernel, use_triton):
    return torch.empty_like(heat)


LOCAL_MAXIMUM = Implementations(triton=local_maximum_triton, torch=local_maximum_torch, registered=local_maximum_op)

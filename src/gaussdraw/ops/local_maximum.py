"""The local-maximum op: mmdet's ``get_local_maximum`` in one pass over the heatmap.

``heat * (max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2) == heat)``: a pixel
keeps its value where it equals the max of its kernel x kernel window (clipped to the map, as
max-pooling's -inf padding does; plateaus keep every pixel), else it becomes ``heat * 0`` (0,
or NaN for NaN and infinite pixels, as the product gives). A NaN in a window makes its max NaN,
as max-pooling does.

- Triton (:mod:`.kernels.local_maximum`): one program per tile of a plane; the window's neighbours
  come from the cache, so the heatmap is read once from memory and the result written once.
- torch: mmdet's composition (CPU, and the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..dispatch import Implementations
from ._triton import cdiv, check_device


def local_maximum_triton(heat: torch.Tensor, kernel: int, *, block_h: int = 16, block_w: int = 64,
                         warps: int = 4) -> torch.Tensor:
    """(B, C, H, W) -> the same shape and dtype (module docstring); tiles of ``block_h`` x ``block_w``."""
    check_device(heat.device)
    from .kernels.local_maximum import local_maximum_kernel
    from .launch import launch

    heat = heat.contiguous()
    out = torch.empty_like(heat)
    height, width = heat.shape[-2:]
    planes = heat.numel() // max(height * width, 1)
    if heat.numel() == 0:
        return out
    tiles_w = cdiv(width, block_w)
    launch(local_maximum_kernel, (cdiv(height, block_h) * tiles_w, planes), num_warps=warps,
           heat_ptr=heat, out_ptr=out, height=height, width=width, tiles_w=tiles_w,
           KERNEL=kernel, BLOCK_H=block_h, BLOCK_W=block_w)
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

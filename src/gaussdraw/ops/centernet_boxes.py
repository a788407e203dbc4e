"""The CenterNet box op: mmdet's ``_decode_heatmap`` box arithmetic at the peaks, in one pass.

At each peak (flat pixel index y * W + x) of sample b: (w, h) from ``wh`` and (dx, dy) from ``offset``
there; box = ((x + dx - w / 2) * ratio_x, (y + dy - h / 2) * ratio_y, (x + dx + w / 2) * ratio_x,
(y + dy + h / 2) * ratio_y), ratio_x = img_w / W and ratio_y = img_h / H.

- Triton (:mod:`.kernels.centernet_boxes`): float32 maps; one program per block of peaks, gathering
  and computing in registers: the boxes are written once, nothing else is.
- torch: mmdet's expressions (and its dtype promotion: y is an int64 plus the offset's dtype).
"""

from __future__ import annotations

import torch

from ..dispatch import Implementations
from ._triton import cdiv, check_device


def centernet_boxes_torch(wh: torch.Tensor, offset: torch.Tensor, indices: torch.Tensor, width: int,
                          ratio_x: float, ratio_y: float) -> torch.Tensor:
    """(B, k, 4) boxes from (B, 2, H, W) ``wh`` / ``offset`` at (B, k) ``indices``, as mmdet computes them."""
    index = indices.unsqueeze(1).expand(-1, 2, -1)
    size = wh.flatten(2).gather(2, index)
    shift = offset.flatten(2).gather(2, index)
    xs = (indices % width).int().float() + shift[:, 0]
    ys = indices // width + shift[:, 1]
    return torch.stack([(xs - size[:, 0] / 2) * ratio_x, (ys - size[:, 1] / 2) * ratio_y,
                        (xs + size[:, 0] / 2) * ratio_x, (ys + size[:, 1] / 2) * ratio_y], dim=2)


def centernet_boxes_triton(wh: torch.Tensor, offset: torch.Tensor, indices: torch.Tensor, width: int,
                           ratio_x: float, ratio_y: float, *, block: int = 128, warps: int = 4) -> torch.Tensor:
    """As :func:`centernet_boxes_torch` for float32 maps; one program per ``block`` peaks of a sample."""
    check_device(wh.device)
    from .kernels.centernet_boxes import centernet_boxes_kernel
    from .launch import launch

    batch, k = indices.shape
    out = torch.empty(batch, k, 4, dtype=torch.float32, device=wh.device)
    if out.numel() == 0:
        return out
    wh, offset, indices = wh.contiguous(), offset.contiguous(), indices.contiguous()
    launch(centernet_boxes_kernel, (cdiv(k, block), batch), num_warps=warps, wh_ptr=wh, offset_ptr=offset,
           indices_ptr=indices, out_ptr=out, k=k, plane=wh.shape[2] * wh.shape[3], width=width,
           ratio_x=ratio_x, ratio_y=ratio_y, BLOCK=block)
    return out


@torch.library.custom_op("gaussdraw::centernet_boxes", mutates_args=())
def centernet_boxes_op(wh: torch.Tensor, offset: torch.Tensor, indices: torch.Tensor, width: int, ratio_x: float,
                       ratio_y: float, use_triton: bool) -> torch.Tensor:
    """The op as torch.compile and the dispatcher see it (float32 maps): the Triton kernel or mmdet's
    expressions, as ``use_triton`` says (:mod:`gaussdraw.dispatch`)."""
    return CENTERNET_BOXES.pick(use_triton)(wh, offset, indices, width, ratio_x, ratio_y)


@centernet_boxes_op.register_fake
def _centernet_boxes_fake(wh, offset, indices, width, ratio_x, ratio_y, use_triton):
    return wh.new_empty(indices.shape[0], indices.shape[1], 4)


CENTERNET_BOXES = Implementations(triton=centernet_boxes_triton, torch=centernet_boxes_torch,
                                  registered=centernet_boxes_op)

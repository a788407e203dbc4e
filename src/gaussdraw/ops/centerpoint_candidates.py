"""The CenterPoint candidates op: ``CenterPointBBoxCoder.decode``'s boxes at the peaks of every task,
whether each passes the score threshold and the post-center range, and its label over all tasks.

Inputs (S = B * T problems, sample-major, K peaks each): ``gathered`` (S, R, K) the regression channels
(reg x, y, height, dim x3, rot sin, cos[, vel x2]) at the peaks; ``dims`` (S, 3, K) the box sizes (exp of
the dim channels with ``norm_bbox``); ``yaw`` (S, K) atan2(sin, cos); ``scores`` (S, K) the sigmoid peak
scores; ``xs``, ``ys``, ``labels`` (S, K) int64 the peaks' pixels and classes; ``offsets`` (T,) int64
each task's first label; ``bounds`` (6,) float32 [x0, y0, z0, x1, y1, z1] on the device, or (0,) for no
range; ``threshold``: NaN for none.
Outputs: boxes (S, K, 9 or 7), valid (S, K) bool, labels (S, K) int64.

- Triton (:mod:`.kernels.centerpoint_candidates`): float32 maps; one program per block of candidates,
  mmdet3d's float32 operations in its order (fused multiply-adds off).
- torch: mmdet3d's expressions (any float dtype).
"""

from __future__ import annotations

import math

import torch

from ..dispatch import Implementations
from ._triton import cdiv, check_device


def centerpoint_candidates_torch(gathered, dims, yaw, scores, xs, ys, labels, offsets, out_size_factor: float,
                                 voxel_x: float, voxel_y: float, origin_x: float, origin_y: float,
                                 bounds: torch.Tensor, threshold: float):
    """mmdet3d's expressions (module docstring)."""
    x = (xs.float() + gathered[:, 0]) * out_size_factor * voxel_x + origin_x
    y = (ys.float() + gathered[:, 1]) * out_size_factor * voxel_y + origin_y
    columns = [x.unsqueeze(1), y.unsqueeze(1), gathered[:, 2:3], dims, yaw.unsqueeze(1), gathered[:, 8:10]]
    boxes = torch.cat(columns, 1).transpose(1, 2).contiguous()
    valid = torch.ones_like(scores, dtype=torch.bool)
    if bounds.numel():
        valid = (boxes[..., :3] >= bounds[:3]).all(-1) & (boxes[..., :3] <= bounds[3:]).all(-1)
    if not math.isnan(threshold):
        valid = valid & (scores > threshold)
    tasks = offsets.shape[0]
    global_labels = (labels.view(-1, tasks, labels.shape[1]) + offsets.view(1, tasks, 1)).view_as(labels)
    return boxes, valid, global_labels


def centerpoint_candidates_triton(gathered, dims, yaw, scores, xs, ys, labels, offsets, out_size_factor: float,
                                  voxel_x: float, voxel_y: float, origin_x: float, origin_y: float,
                                  bounds: torch.Tensor, threshold: float, *, block: int = 128):
    """As :func:`centerpoint_candidates_torch`, float32 regressions, one launch."""
    check_device(gathered.device)
    from .kernels.centerpoint_candidates import centerpoint_candidates_kernel
    from .launch import launch

    problems, channels, k = gathered.shape
    columns = 9 if channels == 10 else 7
    boxes = gathered.new_empty(problems, k, columns)
    valid = torch.empty(problems, k, dtype=torch.bool, device=gathered.device)
    out_labels = torch.empty_like(labels)
    if boxes.numel() == 0:
        return boxes, valid, out_labels
    inputs = [t.contiguous() for t in (gathered, dims, yaw, scores, xs, ys, labels, offsets)]
    launch(centerpoint_candidates_kernel, (cdiv(k, block), problems), num_warps=4,
           compile_options={"enable_fp_fusion": False}, gathered_ptr=inputs[0], dims_ptr=inputs[1],
           yaw_ptr=inputs[2], scores_ptr=inputs[3], xs_ptr=inputs[4], ys_ptr=inputs[5], labels_ptr=inputs[6],
           offsets_ptr=inputs[7], boxes_ptr=boxes, valid_ptr=valid.view(torch.int8), out_labels_ptr=out_labels,
           k=k, channels=channels, tasks=offsets.shape[0], out_size_factor=float(out_size_factor),
           voxel_x=voxel_x, voxel_y=voxel_y, origin_x=origin_x, origin_y=origin_y,
           bounds_ptr=bounds if bounds.numel() else offsets, threshold=0.0 if math.isnan(threshold) else threshold,
           HAS_RANGE=bounds.numel() > 0,
           HAS_THRESHOLD=not math.isnan(threshold), COLUMNS=columns, BLOCK=block)
    return boxes, valid, out_labels


@torch.library.custom_op("gaussdraw::centerpoint_candidates", mutates_args=())
def centerpoint_candidates_op(gathered: torch.Tensor, dims: torch.Tensor, yaw: torch.Tensor, scores: torch.Tensor,
                              xs: torch.Tensor, ys: torch.Tensor, labels: torch.Tensor, offsets: torch.Tensor,
                              out_size_factor: float, voxel_x: float, voxel_y: float, origin_x: float,
                              origin_y: float, bounds: torch.Tensor, threshold: float,
                              use_triton: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The op as torch.compile and the dispatcher see it: the Triton kernel or mmdet3d's expressions, as
    ``use_triton`` says (:mod:`gaussdraw.dispatch`)."""
    return CENTERPOINT_CANDIDATES.pick(use_triton)(gathered, dims, yaw, scores, xs, ys, labels, offsets,
                                                   out_size_factor, voxel_x, voxel_y, origin_x, origin_y, bounds,
                                                   threshold)


@centerpoint_candidates_op.register_fake
def _centerpoint_candidates_fake(gathered, dims, yaw, scores, xs, ys, labels, offsets, *args):
    problems, channels, k = gathered.shape
    return (gathered.new_empty(problems, k, 9 if channels == 10 else 7),
            scores.new_empty(problems, k, dtype=torch.bool), labels.new_empty(problems, k))


CENTERPOINT_CANDIDATES = Implementations(triton=centerpoint_candidates_triton, torch=centerpoint_candidates_torch,
                                         registered=centerpoint_candidates_op)

"""The CenterPoint merge op: each sample's kept boxes of every task, task by task, at the front of
its rows; z moved to the box bottom (z - dz / 2), the rest padded.

Inputs (S = B * T problems, sample-major): ``boxes`` (S, K, C), ``scores`` (S, K) and ``labels`` (S, K)
int64 the candidates in their compacted order; ``kept`` (S, P) int64 the kept candidates in keep order, padded with -1;
``kept_counts`` (S,) int64. Outputs: boxes (B, T * P, C), scores (B, T * P), labels (B, T * P) int64,
padded with 0 / 0 / -1, and counts (B,) int64.

- Triton (:mod:`.kernels.centerpoint_merge`): one program per (task, sample), everything in one pass.
- torch: gathers, cumulative sums and a scatter of each output (a permutation of its rows).
"""

from __future__ import annotations

import torch

from ..dispatch import Implementations
from ._triton import check_device, next_power_of_2


def centerpoint_merge_torch(boxes, scores, labels, kept, kept_counts, tasks: int):
    """The merge as torch gathers and scatters (module docstring)."""
    batch, width, columns = kept.shape[0] // tasks, kept.shape[1], boxes.shape[2]
    at = kept.clamp(min=0)
    picked = boxes.gather(1, at.unsqueeze(2).expand(-1, -1, columns))
    picked = torch.cat([picked[..., :2], picked[..., 2:3] - picked[..., 5:6] * 0.5, picked[..., 3:]], -1)
    picked_scores = scores.gather(1, at)
    picked_labels = labels.gather(1, at)
    counts = kept_counts.view(batch, tasks)
    starts = torch.cumsum(counts, 1) - counts  # (B, T): each task's first row in its sample
    totals = counts.sum(1)
    total = tasks * width
    valid = (torch.arange(width, device=kept.device) < counts.unsqueeze(2)).view(batch, total)
    # a permutation of the rows: kept boxes to [0, count), the unused slots, in order, to [count, T * P)
    unused_rank = torch.cumsum(~valid, 1) - 1
    target = torch.where(valid, (starts.unsqueeze(2) + torch.arange(width, device=kept.device)).view(batch, total),
                         totals.unsqueeze(1) + unused_rank)
    picked = torch.where(valid.unsqueeze(2), picked.view(batch, total, columns), 0)
    picked_scores = torch.where(valid, picked_scores.view(batch, total), 0)
    picked_labels = torch.where(valid, picked_labels.view(batch, total), -1)
    out_boxes = torch.empty_like(picked).scatter_(1, target.unsqueeze(2).expand(-1, -1, columns), picked)
    out_scores = torch.empty_like(picked_scores).scatter_(1, target, picked_scores)
    out_labels = torch.empty_like(picked_labels).scatter_(1, target, picked_labels)
    return out_boxes, out_scores, out_labels, totals


MERGE_RELAUNCHED = ("boxes_ptr", "scores_ptr", "labels_ptr", "kept_ptr", "kept_counts_ptr", "out_boxes_ptr",
                    "out_scores_ptr", "out_labels_ptr", "out_counts_ptr")  # every tensor: the leading parameters


def centerpoint_merge_triton(boxes, scores, labels, kept, kept_counts, tasks: int, *, block: int = 64,
                             bind: bool = False):
    """The merge in one launch (module docstring). ``bind``: the outputs and the direct launch's
    :class:`~gaussdraw.ops.launch.Relaunch` (:data:`MERGE_RELAUNCHED`, contiguous tensors of the same
    layout), or None where the launch was not direct."""
    check_device(boxes.device)
    from .kernels.centerpoint_merge import centerpoint_merge_kernel
    from .launch import launch

    batch, width, columns = kept.shape[0] // tasks, kept.shape[1], boxes.shape[2]
    out_boxes = boxes.new_empty(batch, tasks * width, columns)
    out_scores = scores.new_empty(batch, tasks * width)
    out_labels = labels.new_empty(batch, tasks * width)
    out_counts = torch.empty(batch, dtype=torch.int64, device=boxes.device)
    if batch == 0:
        return (out_boxes, out_scores, out_labels, out_counts, *((None,) if bind else ()))
    boxes, scores, labels, kept, kept_counts = (t.contiguous() for t in (boxes, scores, labels, kept, kept_counts))
    relaunch = launch(centerpoint_merge_kernel, (tasks, batch), num_warps=2,
                      compile_options={"enable_fp_fusion": False}, relaunch=MERGE_RELAUNCHED if bind else (),
                      boxes_ptr=boxes, scores_ptr=scores, labels_ptr=labels, kept_ptr=kept,
                      kept_counts_ptr=kept_counts, out_boxes_ptr=out_boxes, out_scores_ptr=out_scores,
                      out_labels_ptr=out_labels, out_counts_ptr=out_counts, candidates=boxes.shape[1],
                      kept_width=width, TASKS=tasks, BLOCK_T=max(next_power_of_2(tasks), 2), COLUMNS=columns,
                      BLOCK_C=next_power_of_2(columns), BLOCK_P=block)
    return (out_boxes, out_scores, out_labels, out_counts, *((relaunch,) if bind else ()))


@torch.library.custom_op("gaussdraw::centerpoint_merge", mutates_args=())
def centerpoint_merge_op(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, kept: torch.Tensor, kept_counts: torch.Tensor, tasks: int,
                         use_triton: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The op as torch.compile and the dispatcher see it: the Triton kernel or the torch gathers, as
    ``use_triton`` says (:mod:`gaussdraw.dispatch`)."""
    return CENTERPOINT_MERGE.pick(use_triton)(boxes, scores, labels, kept, kept_counts, tasks)


@centerpoint_merge_op.register_fake
def _centerpoint_merge_fake(boxes, scores, labels, kept, kept_counts, tasks, use_triton):
    batch, rows = kept.shape[0] // tasks, tasks * kept.shape[1]
    return (boxes.new_empty(batch, rows, boxes.shape[2]), scores.new_empty(batch, rows), labels.new_empty(batch, rows),
            kept_counts.new_empty(batch))


CENTERPOINT_MERGE = Implementations(triton=centerpoint_merge_triton, torch=centerpoint_merge_torch,
                                    registered=centerpoint_merge_op)

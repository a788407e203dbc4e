"""The circle-NMS op: mmdet3d's greedy circle NMS for a batch of samples, in blocks.

mmdet3d (``circle_nms`` in ``models/layers/box3d_nms.py``, numba on the CPU) visits boxes by
descending score and keeps a box unless a kept box lies within the threshold: squared center
distance ``dx*dx + dy*dy <= thresh`` in float32. Then it keeps the first ``post_max_size``.

Both kernels here take each sample's boxes and their order (:func:`sorted_candidates`) and
walk them in blocks of ``BLOCK``. A block's candidates first meet every box kept so far (one
(kept x block) distance tile); the ones left then decide among themselves, all at once, by
rounds: a candidate with a kept predecessor within reach is suppressed, one with no undecided
or kept predecessor within reach is kept. Each round decides at least the first undecided
candidate, so the rounds end; on real detections a handful do. The kept ones of the block are
appended in order, and the walk stops once ``post_max_size`` boxes are kept. The result is the
greedy one, box for box.

- Triton (:mod:`.kernels.circle_nms`): one program per sample, the whole walk in the kernel (no
  host loop, no sync), compiled without fused multiply-adds (the distance rounds as mmdet3d's
  float32 does). Up to :data:`SORTED_LONGEST` candidates a sample, one launch does it all
  (:func:`circle_nms_sorted_triton`: each program sorts its sample's keys in registers, then walks
  them; any float dtype and strides); beyond, a key kernel, ``torch.sort`` and the walk.
- torch (CPU, and the reference): the same blocks, a Python loop over blocks and rounds.

Outputs: ``kept`` (S, P) int64 indices into each sample's own boxes in keeping order, padded with
-1, and ``counts`` (S,) int64, where P = ``post_max_size`` (at most the longest sample).
"""

from __future__ import annotations

import numpy as np
import torch

from ._sort_keys import score_keys
from ._nms_op import nms_implementations
from ._triton import check_device, interpreting

BLOCK = 128  # candidates decided together


def float32_threshold(thresh: float) -> float:
    """The largest float32 t with t <= ``thresh``: for a float32 distance d, d <= thresh (compared
    in double, as mmdet3d compares) exactly when d <= t (compared in float32)."""
    t = np.float32(thresh)
    if float(t) > thresh:
        t = np.nextafter(t, np.float32(-np.inf))
    return float(t)


def sorted_candidates(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(S, N) int64: each sample's box indices by descending score (compared in float32, as
    mmdet3d compares CenterHead's float32 boxes); among equal scores the later box first (the
    order of mmdet3d's ``argsort()[::-1]`` with a stable argsort). Entries past ``counts`` come
    last. One sort of distinct int64 keys (:mod:`._sort_keys`)."""
    position = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    keys = score_keys(scores, position).masked_fill(position >= counts.unsqueeze(1), torch.iinfo(torch.int64).min)
    return torch.sort(keys, dim=1, descending=True).indices


# ----------------------------------------------------------------------------
# Triton launch (the kernels: kernels/circle_nms.py)
# ----------------------------------------------------------------------------


def sorted_candidates_triton(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """:func:`sorted_candidates` with its keys from one kernel (then one sort)."""
    check_device(scores.device)
    num_samples, longest = scores.shape
    keys = torch.empty((num_samples, longest), dtype=torch.int64, device=scores.device)
    if keys.numel():
        from .kernels.circle_nms import order_keys_kernel
        from .launch import launch

        block = 1024
        launch(order_keys_kernel, (num_samples, -(-longest // block)), num_warps=4, scores_ptr=scores,
               counts_ptr=counts, keys_ptr=keys, longest=longest, stride_s=scores.stride(0), BLOCK=block)
    return torch.sort(keys, dim=1, descending=True).indices


def circle_nms_triton(centers, order, counts, thresholds, post_max_size: int):
    """(kept (S, P) int64, counts (S,) int64) of (S, N, 2) float32 contiguous ``centers`` visited in
    :func:`sorted_candidates`' ``order``; ``thresholds`` (S,) float32 (see :func:`float32_threshold`)."""
    check_device(centers.device)
    num_samples, longest = order.shape
    kept = torch.empty((num_samples, post_max_size), dtype=torch.int64, device=centers.device)
    kept_counts = torch.empty(num_samples, dtype=torch.int64, device=centers.device)
    if num_samples == 0 or post_max_size == 0:
        return kept, kept_counts.zero_()
    from .kernels.circle_nms import circle_nms_kernel
    from .launch import launch

    kept_xy = torch.empty((num_samples, post_max_size, 2), dtype=torch.float32, device=centers.device)
    launch(circle_nms_kernel, (num_samples,), num_warps=4, compile_options={"enable_fp_fusion": False},
           centers_ptr=centers, order_ptr=order, counts_ptr=counts, thresh_ptr=thresholds, kept_ptr=kept,
           kept_xy_ptr=kept_xy, kept_count_ptr=kept_counts, longest=longest, post_max_size=post_max_size,
           BLOCK=BLOCK)
    return kept, kept_counts


SORTED_LONGEST = 4096  # the longest padded length that one program sorts in registers (keys hold 16 bits of it)
# the sorted walk's arguments that a relaunch (gaussdraw.decode.nms) takes anew, its leading parameters
SORTED_RELAUNCHED = ("kept_ptr", "kept_count_ptr", "scores_ptr", "centers_ptr", "counts_ptr")


def sorted_walk_fits(longest: int) -> bool:
    """Whether :func:`circle_nms_sorted_triton` takes samples of padded length ``longest``."""
    return longest <= SORTED_LONGEST


def sorted_walk_warps(longest: int) -> int:
    """The sorted walk's warps per program for samples of padded length ``longest``."""
    return 4 if longest <= 1024 else 8 if longest <= 2048 else 16


def circle_nms_sorted_triton(scores, centers, counts, thresholds, post_max_size: int, bind: bool = False,
                             num_warps: int | None = None):
    """(kept, counts, relaunch): :func:`circle_nms_triton` of :func:`sorted_candidates`' order, in one
    launch (each program sorts its sample's keys in registers, then walks them): (S, N) float
    ``scores`` and (S, N, 2) float ``centers`` of any strides, N at most :data:`SORTED_LONGEST`.
    ``bind``: return the direct launch's :class:`~gaussdraw.ops.launch.Relaunch` (None where the
    launch was not direct), to repeat with new ``SORTED_RELAUNCHED`` tensors of the same layout;
    ``num_warps``: default :func:`sorted_walk_warps` (the benchmark tries others)."""
    check_device(centers.device)
    num_samples, longest = scores.shape
    kept = torch.empty((num_samples, post_max_size), dtype=torch.int64, device=centers.device)
    kept_counts = torch.empty(num_samples, dtype=torch.int64, device=centers.device)
    if num_samples == 0 or post_max_size == 0:
        return kept, kept_counts.zero_(), None
    from .kernels.circle_nms import sorted_walk_kernel
    from .launch import launch

    sort = max(16, 1 << (longest - 1).bit_length())
    relaunch = launch(
        sorted_walk_kernel, (num_samples,), num_warps=num_warps or sorted_walk_warps(longest),
        compile_options={"enable_fp_fusion": False}, relaunch=SORTED_RELAUNCHED if bind else (),
        kept_ptr=kept, kept_count_ptr=kept_counts, scores_ptr=scores, centers_ptr=centers, counts_ptr=counts,
        thresh_ptr=thresholds, longest=longest, post_max_size=post_max_size, score_stride_s=scores.stride(0),
        score_stride_n=scores.stride(1), center_stride_s=centers.stride(0), center_stride_n=centers.stride(1),
        center_stride_c=centers.stride(2), SORT=sort, SORT_DIMS=sort.bit_length() - 1, BLOCK=min(BLOCK, sort),
        NATIVE_SORT=not interpreting())
    return kept, kept_counts, relaunch


# ----------------------------------------------------------------------------
# torch implementation (CPU; the same blocks and rounds)
# ----------------------------------------------------------------------------


def circle_nms_torch(centers, order, counts, thresholds, post_max_size: int):
    """The torch twin of :func:`circle_nms_triton` (same arguments and outputs)."""
    num_samples, longest = order.shape
    kept = torch.full((num_samples, post_max_size), -1, dtype=torch.int64, device=centers.device)
    kept_counts = torch.zeros(num_samples, dtype=torch.int64, device=centers.device)
    earlier = torch.ones(BLOCK, BLOCK, dtype=torch.bool, device=centers.device).triu(1)
    xy = torch.gather(centers, 1, order.unsqueeze(2).expand(num_samples, longest, 2))
    xs, ys = xy[..., 0], xy[..., 1]
    for sample, (n, thresh) in enumerate(zip(counts.tolist(), thresholds.tolist())):
        n = min(max(n, 0), longest)
        thresh = torch.tensor(thresh, dtype=torch.float32)
        kept_x, kept_y = xs.new_empty(0), ys.new_empty(0)
        chosen = []
        for start in range(0, n, BLOCK):  # a loop over blocks of boxes, each decided at once
            if kept_x.shape[0] >= post_max_size:
                break
            x, y = xs[sample, start:min(start + BLOCK, n)], ys[sample, start:min(start + BLOCK, n)]
            size = x.shape[0]
            dx, dy = kept_x[:, None] - x[None, :], kept_y[:, None] - y[None, :]
            alive = ~((dx * dx + dy * dy) <= thresh).any(0)
            dx, dy = x[:, None] - x[None, :], y[:, None] - y[None, :]
            reach = ((dx * dx + dy * dy) <= thresh) & earlier[:size, :size]
            undecided, block_kept = alive, torch.zeros_like(alive)
            while bool(undecided.any()):
                by_kept = (reach & block_kept[:, None]).any(0)
                by_undecided = (reach & undecided[:, None]).any(0)
                block_kept = block_kept | (undecided & ~by_kept & ~by_undecided)
                undecided = undecided & ~by_kept & by_undecided  # still waiting on an undecided one
            picked = block_kept.nonzero().squeeze(1)
            chosen.append(order[sample, start + picked])
            kept_x, kept_y = torch.cat([kept_x, x[picked]]), torch.cat([kept_y, y[picked]])
        chosen = torch.cat(chosen)[:post_max_size] if chosen else order.new_empty(0)
        kept[sample, : chosen.shape[0]] = chosen
        kept_counts[sample] = chosen.shape[0]
    return kept, kept_counts


# ----------------------------------------------------------------------------
# torch.library registration
# ----------------------------------------------------------------------------


CIRCLE_NMS = nms_implementations("circle_nms", triton=circle_nms_triton, torch_impl=circle_nms_torch)
circle_nms_op = CIRCLE_NMS.registered

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

- Triton: one program per sample, the whole walk in the kernel (no host loop, no sync),
  compiled without fused multiply-adds (the distance rounds as mmdet3d's float32 does).
- torch (CPU, and the reference): the same blocks, a Python loop over blocks and rounds.

Outputs: ``kept`` (S, P) int64 indices into each sample's own boxes in keeping order, padded with
-1, and ``counts`` (S,) int64, where P = ``post_max_size`` (at most the longest sample).
"""

from __future__ import annotations

import numpy as np
import torch

from ..dispatch import Implementations
from ._sort_keys import ordered_bits, score_keys
from ._triton import Launcher, check_device, jit, tl

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
# Triton kernels
# ----------------------------------------------------------------------------


@jit
def _order_keys_kernel(scores_ptr, counts_ptr, keys_ptr, longest, stride_s, BLOCK: tl.constexpr):
    """:func:`sorted_candidates`' keys (:func:`._sort_keys.score_keys` of the scores and positions,
    the padding lowest) in one pass."""
    sample = tl.program_id(0).to(tl.int64)
    position = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = position < longest
    score = tl.load(scores_ptr + sample * stride_s + position, mask=inside, other=0.0).to(tl.float32)
    key = (ordered_bits(score).to(tl.int64) << 32) | position.to(tl.int64)
    key = tl.where(position < tl.load(counts_ptr + sample), key, -9223372036854775807 - 1)
    tl.store(keys_ptr + sample * longest + position, key, mask=inside)


_launch_keys = Launcher(_order_keys_kernel)


def sorted_candidates_triton(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """:func:`sorted_candidates` with its keys from one kernel (then one sort)."""
    num_samples, longest = scores.shape
    keys = torch.empty((num_samples, longest), dtype=torch.int64, device=scores.device)
    if keys.numel():
        block = 1024
        _launch_keys((num_samples, -(-longest // block)), (scores, counts, keys, longest, scores.stride(0)),
                     dict(BLOCK=block), num_warps=4)
    return torch.sort(keys, dim=1, descending=True).indices


@jit
def _circle_nms_kernel(
    centers_ptr, order_ptr, counts_ptr, thresh_ptr, kept_ptr, kept_xy_ptr, kept_count_ptr,
    longest, post_max_size,
    BLOCK: tl.constexpr,
):
    sample = tl.program_id(0).to(tl.int64)
    n = tl.load(counts_ptr + sample).to(tl.int32)
    n = tl.minimum(tl.maximum(n, 0), longest)
    thresh = tl.load(thresh_ptr + sample)
    lanes = tl.arange(0, BLOCK)
    row = sample * longest
    kept_row = sample * post_max_size
    earlier = lanes[:, None] < lanes[None, :]  # [i, j]: i comes before j
    count = n * 0
    start = n * 0
    while (start < n) & (count < post_max_size):
        at = start + lanes
        valid = at < n
        box = tl.load(order_ptr + row + at, mask=valid, other=0)
        x = tl.load(centers_ptr + 2 * (row + box), mask=valid, other=0.0)
        y = tl.load(centers_ptr + 2 * (row + box) + 1, mask=valid, other=0.0)
        alive = valid
        # against every box kept so far
        for first in range(0, count, BLOCK):
            k = first + lanes
            k_valid = k < count
            kx = tl.load(kept_xy_ptr + 2 * (kept_row + k), mask=k_valid, other=0.0)
            ky = tl.load(kept_xy_ptr + 2 * (kept_row + k) + 1, mask=k_valid, other=0.0)
            dx = kx[:, None] - x[None, :]
            dy = ky[:, None] - y[None, :]
            near = ((dx * dx + dy * dy) <= thresh) & k_valid[:, None]
            alive = alive & (tl.max(near.to(tl.int32), axis=0) == 0)
        # among the block's own candidates, by rounds
        dx = x[:, None] - x[None, :]
        dy = y[:, None] - y[None, :]
        reach = ((dx * dx + dy * dy) <= thresh) & earlier
        undecided = alive.to(tl.int32)
        kept = tl.zeros((BLOCK,), dtype=tl.int32)
        while tl.max(undecided, axis=0) > 0:
            by_kept = tl.max((reach & (kept[:, None] > 0)).to(tl.int32), axis=0)
            by_undecided = tl.max((reach & (undecided[:, None] > 0)).to(tl.int32), axis=0)
            newly_kept = undecided * (1 - by_kept) * (1 - by_undecided)
            suppressed = undecided * by_kept
            kept = kept + newly_kept
            undecided = undecided - newly_kept - suppressed
        rank = count + tl.cumsum(kept, axis=0) - kept  # exclusive: where each kept box goes
        store = (kept > 0) & (rank < post_max_size)
        tl.store(kept_ptr + kept_row + rank, box, mask=store)
        tl.store(kept_xy_ptr + 2 * (kept_row + rank), x, mask=store)
        tl.store(kept_xy_ptr + 2 * (kept_row + rank) + 1, y, mask=store)
        count = count + tl.sum(kept, axis=0)
        start = start + BLOCK
    count = tl.minimum(count, post_max_size)
    tl.store(kept_count_ptr + sample, count.to(tl.int64))
    for first in range(count, post_max_size, BLOCK):  # the rest of the row: -1
        tl.store(kept_ptr + kept_row + first + lanes, -1, mask=first + lanes < post_max_size)


_launch = Launcher(_circle_nms_kernel)


def circle_nms_triton(centers, order, counts, thresholds, post_max_size: int):
    """(kept (S, P) int64, counts (S,) int64) of (S, N, 2) float32 contiguous ``centers`` visited in
    :func:`sorted_candidates`' ``order``; ``thresholds`` (S,) float32 (see :func:`float32_threshold`)."""
    check_device(centers.device)
    num_samples, longest = order.shape
    kept = torch.empty((num_samples, post_max_size), dtype=torch.int64, device=centers.device)
    kept_counts = torch.empty(num_samples, dtype=torch.int64, device=centers.device)
    if num_samples == 0 or post_max_size == 0:
        return kept, kept_counts.zero_()
    kept_xy = torch.empty((num_samples, post_max_size, 2), dtype=torch.float32, device=centers.device)
    _launch((num_samples,), (centers, order, counts, thresholds, kept, kept_xy, kept_counts, longest, post_max_size),
            dict(BLOCK=BLOCK), num_warps=4, specialization=(counts.dtype,), options={"enable_fp_fusion": False})
    return kept, kept_counts


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


@torch.library.custom_op("gaussdraw::circle_nms", mutates_args=())
def circle_nms_op(centers: torch.Tensor, order: torch.Tensor, counts: torch.Tensor, thresholds: torch.Tensor,
                  post_max_size: int, use_triton: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The op as torch.compile and the dispatcher see it: the Triton kernel or the torch loop, as
    ``use_triton`` says (:mod:`gaussdraw.dispatch`)."""
    return CIRCLE_NMS.pick(use_triton)(centers, order, counts, thresholds, post_max_size)


@circle_nms_op.register_fake
def _circle_nms_fake(centers, order, counts, thresholds, post_max_size, use_triton):
    num_samples = order.shape[0]
    return (order.new_empty((num_samples, post_max_size)), order.new_empty((num_samples,)))


CIRCLE_NMS = Implementations(triton=circle_nms_triton, torch=circle_nms_torch, registered=circle_nms_op)

"""The circle-NMS op: mmdet3d's greedy circle NMS for a batch of samples, in blocks.

mmdet3d (``circle_nms`` in ``models/layers/box3d_nms.py``, numba on the CPU) visits boxes by
descending score and keeps a box unless a kept box lies within the threshold: squared center
distance ``dx*dx + dy*dy <= thresh`` in float32. Then it keeps the first ``post_max_size``.

Both kernels here take each sample's candidates already sorted (:func:`sorted_candidates`) and
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

from ._triton import Launcher, check_device, jit, tl

BLOCK = 128  # candidates decided together


def float32_threshold(thresh: float) -> float:
    """The largest float32 t with t <= ``thresh``: for a float32 distance d, d <= thresh (compared
    in double, as mmdet3d compares) exactly when d <= t (compared in float32)."""
    t = np.float32(thresh)
    if float(t) > thresh:
        t = np.nextafter(t, np.float32(-np.inf))
    return float(t)


def sorted_candidates(centers: torch.Tensor, scores: torch.Tensor, counts: torch.Tensor):
    """(x, y) float32 (S, N) each and original indices (S, N) int64 of every sample's boxes by
    descending score; among equal scores the later box first (the order of mmdet3d's
    ``argsort()[::-1]`` with a stable argsort). Entries past ``counts`` come last (they are
    never read)."""
    num_samples, longest = scores.shape
    position = torch.arange(longest, device=scores.device)
    padding = position >= counts.unsqueeze(1)
    key = scores.float().masked_fill(padding, float("-inf"))
    # ascending and stable, then reversed: descending, equal scores by descending index
    order = torch.sort(key, dim=1, stable=True).indices.flip(1)
    # padding sorts among the lowest scores; move it behind every real box
    order = torch.gather(order, 1, torch.sort(torch.gather(padding, 1, order).to(torch.uint8), dim=1,
                                              stable=True).indices)
    xy = torch.gather(centers.float(), 1, order.unsqueeze(2).expand(num_samples, longest, 2))
    return xy[..., 0].contiguous(), xy[..., 1].contiguous(), order


# ----------------------------------------------------------------------------
# Triton kernel
# ----------------------------------------------------------------------------


@jit
def _circle_nms_kernel(
    xs_ptr, ys_ptr, order_ptr, counts_ptr, thresh_ptr, kept_ptr, kept_xy_ptr, kept_count_ptr,
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
        x = tl.load(xs_ptr + row + at, mask=valid, other=0.0)
        y = tl.load(ys_ptr + row + at, mask=valid, other=0.0)
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
        index = tl.load(order_ptr + row + at, mask=store, other=0)
        tl.store(kept_ptr + kept_row + rank, index, mask=store)
        tl.store(kept_xy_ptr + 2 * (kept_row + rank), x, mask=store)
        tl.store(kept_xy_ptr + 2 * (kept_row + rank) + 1, y, mask=store)
        count = count + tl.sum(kept, axis=0)
        start = start + BLOCK
    tl.store(kept_count_ptr + sample, tl.minimum(count, post_max_size).to(tl.int64))


_launch = Launcher(_circle_nms_kernel)


def circle_nms_triton(xs, ys, order, counts, thresholds, post_max_size: int):
    """(kept (S, P) int64, counts (S,) int64) from :func:`sorted_candidates`' outputs; ``thresholds``
    (S,) float32 (see :func:`float32_threshold`)."""
    check_device(xs.device)
    num_samples, longest = xs.shape
    kept = torch.full((num_samples, post_max_size), -1, dtype=torch.int64, device=xs.device)
    kept_counts = torch.zeros(num_samples, dtype=torch.int64, device=xs.device)
    if num_samples == 0 or post_max_size == 0:
        return kept, kept_counts
    kept_xy = torch.empty((num_samples, post_max_size, 2), dtype=torch.float32, device=xs.device)
    _launch((num_samples,), (xs, ys, order, counts, thresholds, kept, kept_xy, kept_counts, longest, post_max_size),
            dict(BLOCK=BLOCK), num_warps=4, specialization=(counts.dtype,), options={"enable_fp_fusion": False})
    return kept, kept_counts


# ----------------------------------------------------------------------------
# torch implementation (CPU; the same blocks and rounds)
# ----------------------------------------------------------------------------


def circle_nms_torch(xs, ys, order, counts, thresholds, post_max_size: int):
    """The torch twin of :func:`circle_nms_triton` (same arguments and outputs)."""
    num_samples, longest = xs.shape
    kept = torch.full((num_samples, post_max_size), -1, dtype=torch.int64, device=xs.device)
    kept_counts = torch.zeros(num_samples, dtype=torch.int64, device=xs.device)
    earlier = torch.ones(BLOCK, BLOCK, dtype=torch.bool, device=xs.device).triu(1)
    for sample, (n, thresh) in enumerate(zip(counts.tolist(), thresholds.tolist())):
        n = min(max(n, 0), longest)
        thresh = torch.tensor(thresh, dtype=torch.float32)
        kept_x, kept_y = xs.new_empty(0), ys.new_empty(0)
        chosen = []
        for start in range(0, n, BLOCK):  # a loop over blocks of boxes, each decided at once
            if sum(len(c) for c in chosen) >= post_max_size:
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
def circle_nms_op(xs: torch.Tensor, ys: torch.Tensor, order: torch.Tensor, counts: torch.Tensor,
                  thresholds: torch.Tensor, post_max_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The op as torch.compile and the dispatcher see it: Triton by default, torch on CPU."""
    return circle_nms_triton(xs, ys, order, counts, thresholds, post_max_size)


@circle_nms_op.register_kernel("cpu")
def _circle_nms_cpu(xs, ys, order, counts, thresholds, post_max_size):
    return circle_nms_torch(xs, ys, order, counts, thresholds, post_max_size)


@circle_nms_op.register_fake
def _circle_nms_fake(xs, ys, order, counts, thresholds, post_max_size):
    num_samples = xs.shape[0]
    return (xs.new_empty((num_samples, post_max_size), dtype=torch.int64),
            xs.new_empty((num_samples,), dtype=torch.int64))

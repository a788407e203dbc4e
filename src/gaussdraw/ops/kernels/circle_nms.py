"""The circle-NMS kernels: the candidates' order keys, and the greedy walk in blocks (one program
per sample); see :mod:`gaussdraw.ops.circle_nms`."""

from __future__ import annotations

import triton
import triton.language as tl

from .common import ordered_bits


@triton.jit
def order_keys_kernel(scores_ptr, counts_ptr, keys_ptr, longest, stride_s, BLOCK: tl.constexpr):
    """:func:`gaussdraw.ops.circle_nms.sorted_candidates`' keys (:func:`gaussdraw.ops._sort_keys.score_keys`
    of the scores and positions, the padding lowest) in one pass."""
    sample = tl.program_id(0).to(tl.int64)
    position = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = position < longest
    score = tl.load(scores_ptr + sample * stride_s + position, mask=inside, other=0.0).to(tl.float32)
    key = (ordered_bits(score).to(tl.int64) << 32) | position.to(tl.int64)
    key = tl.where(position < tl.load(counts_ptr + sample), key, -9223372036854775807 - 1)
    tl.store(keys_ptr + sample * longest + position, key, mask=inside)


@triton.jit
def circle_nms_kernel(
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

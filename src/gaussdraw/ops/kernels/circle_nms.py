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
def near_any(kx, ky, k_valid, x, y, thresh):
    """[BLOCK] bool: whether each candidate ``(x, y)`` lies within squared distance ``thresh`` of any
    valid kept center ``(kx, ky)`` (``k_valid`` masks the kept lanes)."""
    dx = kx[:, None] - x[None, :]
    dy = ky[:, None] - y[None, :]
    near = ((dx * dx + dy * dy) <= thresh) & k_valid[:, None]
    return tl.max(near.to(tl.int32), axis=0) > 0


@triton.jit
def kept_in_block(x, y, alive, earlier, thresh, BLOCK: tl.constexpr):
    """[BLOCK] int32, 1 where a candidate is kept: the greedy walk among one block's own candidates (in
    order, ``alive`` ones only; ``earlier[i, j]``: i comes before j), decided by rounds: a candidate is
    kept once no earlier kept or undecided one reaches it, suppressed once a kept one does."""
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
    return kept


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
            alive = alive & ~near_any(kx, ky, k_valid, x, y, thresh)
        kept = kept_in_block(x, y, alive, earlier, thresh, BLOCK)  # among the block's own candidates
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


@triton.jit
def sort_distinct(x, N_DIMS: tl.constexpr, DESCENDING: tl.constexpr):
    """The 1-d ``x`` of 2**N_DIMS distinct keys, sorted: ``tl.sort``'s bitonic network with each pair's
    partner moved by split and join, where ``tl.sort`` takes an xor reduction that Triton's
    interpreter runs element by element (3.5 s for 512 keys). The kernel runs this one in the
    interpreter and ``tl.sort`` on a GPU: the same order, the keys being distinct."""
    side = tl.arange(0, 2)[None, :, None]
    for stage in tl.static_range(1, N_DIMS + 1):
        if stage == N_DIMS:
            flip = tl.full(x.shape, DESCENDING, tl.int1)
        else:  # directions alternate in runs of 2**stage
            runs: tl.constexpr = [2 ** (N_DIMS - 1 - stage), 2, 2**stage]
            flip = tl.reshape(tl.broadcast_to(side == 1, runs), x.shape)
        for step in tl.static_range(stage):  # pairs 2**(stage - step - 1) apart
            shape: tl.constexpr = [2 ** (step + N_DIMS - stage), 2, 2 ** (stage - step - 1)]
            first, second = tl.split(tl.permute(tl.reshape(x, shape), (0, 2, 1)))
            partner = tl.reshape(tl.permute(tl.join(second, first), (0, 2, 1)), x.shape)
            on_left = tl.reshape(tl.broadcast_to(side == 0, shape), x.shape)
            left_greater = tl.where(on_left, x > partner, partner > x)
            x = tl.where(left_greater != flip, partner, x)  # ascending pairs, descending where flipped
    return x


@triton.jit
def sorted_walk_kernel(
    kept_ptr, kept_count_ptr, scores_ptr, centers_ptr, counts_ptr, thresh_ptr,
    longest, post_max_size, score_stride_s, score_stride_n, center_stride_s, center_stride_n, center_stride_c,
    SORT: tl.constexpr, SORT_DIMS: tl.constexpr, BLOCK: tl.constexpr, NATIVE_SORT: tl.constexpr,
):
    """The whole circle NMS of one sample in one program: its order keys (as :func:`order_keys_kernel`)
    sorted in registers (``SORT`` = 2**SORT_DIMS >= the padded length), then the walk of
    :func:`circle_nms_kernel` over blocks of that order, the kept boxes' centers read back through
    their indices. Scores and centers of any float dtype and strides (read as float32)."""
    sample = tl.program_id(0).to(tl.int64)
    n = tl.load(counts_ptr + sample).to(tl.int32)
    n = tl.minimum(tl.maximum(n, 0), longest)
    thresh = tl.load(thresh_ptr + sample)
    position = tl.arange(0, SORT)
    inside = position < n
    score = tl.load(scores_ptr + sample * score_stride_s + position.to(tl.int64) * score_stride_n, mask=inside,
                    other=0.0).to(tl.float32)
    key = (ordered_bits(score).to(tl.int64) << 16) | position.to(tl.int64)  # distinct, below 2**47 in magnitude
    key = tl.where(inside, key, -4611686018427387904)  # padding last: -2**62
    if NATIVE_SORT:
        key = tl.sort(key, descending=True)
    else:
        key = sort_distinct(key, SORT_DIMS, True)
    keys = tl.reshape(key, (SORT // BLOCK, BLOCK))  # row r: the order's block r
    rows = tl.arange(0, SORT // BLOCK)
    lanes = tl.arange(0, BLOCK)
    centers_row = centers_ptr + sample * center_stride_s
    kept_row = kept_ptr + sample * post_max_size
    earlier = lanes[:, None] < lanes[None, :]  # [i, j]: i comes before j
    count = n * 0
    start = n * 0
    while (start < n) & (count < post_max_size):
        block_key = tl.max(tl.where(rows[:, None] == start // BLOCK, keys, -4611686018427387904), axis=0)
        box = block_key & 0xFFFF
        valid = start + lanes < n
        x = tl.load(centers_row + box * center_stride_n, mask=valid, other=0.0).to(tl.float32)
        y = tl.load(centers_row + box * center_stride_n + center_stride_c, mask=valid, other=0.0).to(tl.float32)
        alive = valid
        # against every box kept so far (their indices stored by earlier blocks)
        for first in range(0, count, BLOCK):
            k_valid = first + lanes < count
            k_box = tl.load(kept_row + first + lanes, mask=k_valid, other=0)
            kx = tl.load(centers_row + k_box * center_stride_n, mask=k_valid, other=0.0).to(tl.float32)
            ky = tl.load(centers_row + k_box * center_stride_n + center_stride_c, mask=k_valid,
                         other=0.0).to(tl.float32)
            alive = alive & ~near_any(kx, ky, k_valid, x, y, thresh)
        kept = kept_in_block(x, y, alive, earlier, thresh, BLOCK)  # among the block's own candidates
        rank = count + tl.cumsum(kept, axis=0) - kept  # exclusive: where each kept box goes
        tl.store(kept_row + rank, box, mask=(kept > 0) & (rank < post_max_size))
        tl.debug_barrier()  # the next block reads these indices back, from other threads
        count = count + tl.sum(kept, axis=0)
        start = start + BLOCK
    count = tl.minimum(count, post_max_size)
    tl.store(kept_count_ptr + sample, count.to(tl.int64))
    for first in range(count, post_max_size, BLOCK):  # the rest of the row: -1
        tl.store(kept_row + first + lanes, -1, mask=first + lanes < post_max_size)

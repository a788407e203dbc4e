"""The top-k peaks of a heatmap on the GPU, without a top-k over every pixel.

A peak's value is mmdet's ``heat * (max_pool(heat) == heat)`` (:func:`.local_maximum.suppressed_values`),
compared as an int32 that sorts as the float does (:mod:`._sort_keys`). Three kernels:

1. tiles: each program computes the values of one tile of a plane and writes their maximum. Per
   sample, the k-th largest tile maximum ``t`` is a lower bound of the k-th largest value (k tiles
   each hold a value >= t), so every peak of the top k is >= t;
2. candidates: the programs of tiles whose maximum reaches t (about k of them per sample) recompute
   their tile's values and append those >= t to their sample's candidate list, as distinct int64 keys
   (value, then ascending index); the other tiles read one number. A realistic heatmap gives a few
   more than k candidates;
3. select: one program per sample keeps the k largest keys of its candidates, sorting them in
   chunks into a running best. Where the candidates overflow their buffer (plateaus: many pixels
   equal at the k-th place), it takes every pixel of the sample instead, recomputed (slower, exact).

Equal values come in ascending index order (the keys are distinct), so the result does not depend
on the order in which tiles appended their candidates.
"""

from __future__ import annotations

import torch

from ._sort_keys import ordered_bits
from ._triton import Launcher, check_device, interpreting, jit, tl, triton
from .local_maximum import suppressed_values

BLOCK_H, BLOCK_W, WARPS = 8, 128, 4  # benchmarks/peaks_profile.py: 8 x 128 tiles the fastest of five shapes
CAPACITY = (16, 8192)  # candidates kept per sample: max(16 k, 8192), at most the sample's pixels
# keys sorted at once by the select kernel (at least 2 * next_power_of_2(k)); small in the interpreter,
# where a sort's cost grows with its width rather than its work
CHUNK = 64 if interpreting() else 512


@jit
def _tile(tile, plane, classes, height, width, tiles_w, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """(y (BLOCK_H, 1), x (1, BLOCK_W), inside, flat index in the sample (BLOCK_H, BLOCK_W)) of a tile:
    rows and columns apart, so that the window's bounds and addresses are per row and per column."""
    y = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    x = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    inside = (y < height) & (x < width)
    flat = (plane % classes) * height * width + y * width + x
    return y, x, inside, flat


@jit
def _tile_max_kernel(heat_ptr, tile_max_ptr, classes, height, width, tiles_w, tiles_per_plane,
                     KERNEL: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    tile = tl.program_id(0)
    plane = tl.program_id(1).to(tl.int64)
    y, x, inside, _ = _tile(tile, plane, classes, height, width, tiles_w, BLOCK_H, BLOCK_W)
    values = suppressed_values(heat_ptr, plane * height * width, y, x, inside, height, width, KERNEL)
    keys = tl.where(inside, ordered_bits(values), -2147483648)
    tl.store(tile_max_ptr + plane * tiles_per_plane + tile, tl.max(tl.max(keys, axis=1), axis=0))


@jit
def _candidates_kernel(heat_ptr, tile_max_ptr, bound_ptr, candidates_ptr, count_ptr, classes, height, width, tiles_w,
                       tiles_per_plane, capacity,
                       KERNEL: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    tile = tl.program_id(0)
    plane = tl.program_id(1).to(tl.int64)
    sample = plane // classes
    bound = tl.load(bound_ptr + sample)
    if tl.load(tile_max_ptr + plane * tiles_per_plane + tile) >= bound:  # else nothing here reaches the top k
        y, x, inside, flat = _tile(tile, plane, classes, height, width, tiles_w, BLOCK_H, BLOCK_W)
        values = suppressed_values(heat_ptr, plane * height * width, y, x, inside, height, width, KERNEL)
        keys = ordered_bits(values)
        chosen = tl.reshape((inside & (keys >= bound)).to(tl.int32), (BLOCK_H * BLOCK_W,))
        start = tl.atomic_add(count_ptr + sample, tl.sum(chosen, axis=0))
        at = start + tl.cumsum(chosen, axis=0) - chosen
        wide = tl.reshape((keys.to(tl.int64) << 32) | (0xFFFFFFFF - flat), (BLOCK_H * BLOCK_W,))
        tl.store(candidates_ptr + sample * capacity + at, wide, mask=(chosen > 0) & (at < capacity))


@jit
def _select_kernel(heat_ptr, candidates_ptr, count_ptr, best_ptr, classes, height, width, capacity,
                   KERNEL: tl.constexpr, KEEP: tl.constexpr, CHUNK: tl.constexpr):
    sample = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, CHUNK)
    is_best = lanes < KEEP
    best_row = best_ptr + sample * KEEP
    tl.store(best_row + lanes, tl.full((CHUNK,), -9223372036854775808, tl.int64), mask=is_best)
    count = tl.load(count_ptr + sample)
    row_len = classes * height * width
    overflow = count > capacity
    total = tl.where(overflow, row_len, count)
    for start in range(0, total, CHUNK - KEEP):
        tl.debug_barrier()
        at = start + lanes - KEEP
        new = ~is_best & (at < total)
        if overflow:  # every pixel of the sample, its value recomputed
            c = at // (height * width)
            pixel = at % (height * width)
            y, x = pixel // width, pixel % width
            base = (sample * classes + c) * height * width
            values = suppressed_values(heat_ptr, base, y, x, new, height, width, KERNEL)
            keys = (ordered_bits(values).to(tl.int64) << 32) | (0xFFFFFFFF - at.to(tl.int64))
        else:
            keys = tl.load(candidates_ptr + sample * capacity + at, mask=new, other=-9223372036854775808)
        keys = tl.where(new, keys, -9223372036854775808)
        keys = tl.where(is_best, tl.load(best_row + lanes, mask=is_best, other=-9223372036854775808), keys)
        keys = tl.sort(keys, descending=True)
        tl.debug_barrier()
        tl.store(best_row + lanes, keys, mask=is_best)


@jit
def _order_kernel(scores_ptr, flat_ptr, out_scores_ptr, labels_ptr, ys_ptr, xs_ptr, indices_ptr, k, plane, width,
                  KEEP: tl.constexpr):
    """One row of top-k results put in order (score, then ascending index) and split into their outputs."""
    row = tl.program_id(0).to(tl.int64) * k
    lanes = tl.arange(0, KEEP)
    valid = lanes < k
    scores = tl.load(scores_ptr + row + lanes, mask=valid, other=0.0).to(tl.float32)
    flat = tl.load(flat_ptr + row + lanes, mask=valid, other=0)
    keys = (ordered_bits(scores).to(tl.int64) << 32) | (0xFFFFFFFF - flat)
    keys = tl.sort(tl.where(valid, keys, -9223372036854775808), descending=True)
    ordered = (keys >> 32).to(tl.int32)
    bits = tl.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered)
    flat = 0xFFFFFFFF - (keys & 0xFFFFFFFF)
    index = flat % plane
    tl.store(out_scores_ptr + row + lanes, bits.to(tl.float32, bitcast=True).to(out_scores_ptr.dtype.element_ty),
             mask=valid)
    tl.store(labels_ptr + row + lanes, flat // plane, mask=valid)
    tl.store(indices_ptr + row + lanes, index, mask=valid)
    tl.store(ys_ptr + row + lanes, index // width, mask=valid)
    tl.store(xs_ptr + row + lanes, index % width, mask=valid)


ORDER_LIMIT = 4096  # the most results one program puts in order


def order_peaks_triton(scores: torch.Tensor, flat: torch.Tensor, plane: int, width: int):
    """(scores, labels, ys, xs, indices), each (B, k), of top-k ``scores`` and their ``flat`` indices
    (c * plane + y * width + x), ordered by score and then ascending index, in one launch; for
    float16/bfloat16/float32 scores and k <= ORDER_LIMIT (None otherwise)."""
    batch, k = scores.shape
    if scores.dtype == torch.float64 or k > ORDER_LIMIT or batch == 0 or k == 0:
        return None
    outputs = [torch.empty_like(scores)] + [torch.empty_like(flat) for _ in range(4)]
    _launch_order((batch,), (scores.contiguous(), flat.contiguous(), *outputs, k, plane, width),
                  dict(KEEP=triton.next_power_of_2(k)), num_warps=4)
    return outputs


_launch_order = Launcher(_order_kernel)
_launch_tiles = Launcher(_tile_max_kernel)
_launch_candidates = Launcher(_candidates_kernel)
_launch_select = Launcher(_select_kernel)


def peak_keys_triton(heat: torch.Tensor, k: int, kernel: int) -> torch.Tensor | None:
    """(B, k) int64 keys of the top-k peaks of (B, C, H, W) ``heat``, best first (decode with
    :func:`._sort_keys.key_scores` and ``0xFFFFFFFF - (key & 0xFFFFFFFF)``); None where a sample has
    fewer tiles than k (the caller takes the plain top-k)."""
    check_device(heat.device)
    heat = heat.contiguous()
    batch, classes, height, width = heat.shape
    tiles_w = triton.cdiv(width, BLOCK_W)
    tiles_per_plane = triton.cdiv(height, BLOCK_H) * tiles_w
    if classes * tiles_per_plane < k or classes * height * width >= 2**31:
        return None
    planes = batch * classes
    tile_max = torch.empty((batch, classes * tiles_per_plane), dtype=torch.int32, device=heat.device)
    grid = (tiles_per_plane, planes)
    shape = dict(KERNEL=kernel, BLOCK_H=BLOCK_H, BLOCK_W=BLOCK_W)
    _launch_tiles(grid, (heat, tile_max, classes, height, width, tiles_w, tiles_per_plane), shape, num_warps=WARPS)
    bound = torch.topk(tile_max, k, dim=1).values[:, -1].contiguous()
    capacity = min(classes * height * width, max(CAPACITY[0] * k, CAPACITY[1]))
    candidates = torch.empty((batch, capacity), dtype=torch.int64, device=heat.device)
    count = torch.zeros(batch, dtype=torch.int32, device=heat.device)
    _launch_candidates(grid, (heat, tile_max, bound, candidates, count, classes, height, width, tiles_w,
                               tiles_per_plane, capacity), shape, num_warps=WARPS)
    keep = triton.next_power_of_2(k)
    best = torch.empty((batch, keep), dtype=torch.int64, device=heat.device)
    _launch_select((batch,), (heat, candidates, count, best, classes, height, width, capacity),
                   dict(KERNEL=kernel, KEEP=keep, CHUNK=max(CHUNK, 2 * keep)), num_warps=8)
    return best[:, :k]

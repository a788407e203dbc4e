"""The peaks kernels: tile maxima, candidates, select (the tile-bound top-k), and the ordering of
top-k results; see :mod:`gaussdraw.ops.peaks`."""

from __future__ import annotations

import triton
import triton.language as tl

from .common import ordered_bits, suppressed_values


@triton.jit
def _tile(tile, plane, classes, height, width, tiles_w, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """(y (BLOCK_H, 1), x (1, BLOCK_W), inside, flat index in the sample (BLOCK_H, BLOCK_W)) of a tile:
    rows and columns apart, so that the window's bounds and addresses are per row and per column."""
    y = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    x = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    inside = (y < height) & (x < width)
    flat = (plane % classes) * height * width + y * width + x
    return y, x, inside, flat


@triton.jit
def tile_max_kernel(heat_ptr, tile_max_ptr, classes, height, width, tiles_w, tiles_per_plane,
                    KERNEL: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    tile = tl.program_id(0)
    plane = tl.program_id(1).to(tl.int64)
    y, x, inside, _ = _tile(tile, plane, classes, height, width, tiles_w, BLOCK_H, BLOCK_W)
    values = suppressed_values(heat_ptr, plane * height * width, y, x, inside, height, width, KERNEL)
    keys = tl.where(inside, ordered_bits(values), -2147483648)
    tl.store(tile_max_ptr + plane * tiles_per_plane + tile, tl.max(tl.max(keys, axis=1), axis=0))


@triton.jit
def candidates_kernel(heat_ptr, tile_max_ptr, bound_ptr, candidates_ptr, count_ptr, classes, height, width, tiles_w,
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


@triton.jit
def select_kernel(heat_ptr, candidates_ptr, count_ptr, best_ptr, classes, height, width, capacity,
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


@triton.jit
def order_kernel(scores_ptr, flat_ptr, out_scores_ptr, labels_ptr, ys_ptr, xs_ptr, indices_ptr, k, plane, width,
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

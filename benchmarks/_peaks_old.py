"""The previous tile-bound peaks path (before the one-pass group maxima), kept for benchmarks/peaks_profile.py
to time against: a 2-d nine-load stencil in both passes, torch.topk of the tile maxima for the bound,
a candidates pass over every tile, a select kernel, the keys decoded by torch ops."""

import torch
import triton
import triton.language as tl

from gaussdraw.ops._sort_keys import LOW, key_scores
from gaussdraw.ops.kernels.common import ordered_bits, suppressed_values
from gaussdraw.ops.launch import launch


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



def old_peaks(heat, k, kernel, block_h=8, block_w=128, warps=4, capacity=(16, 8192), chunk=512, stages=None):
    """The previous path; ``stages``: a dict that receives each stage as a callable (for timing)."""
    batch, classes, height, width = heat.shape
    tiles_w = -(-width // block_w)
    per_plane = -(-height // block_h) * tiles_w
    tile_max = torch.empty((batch, classes * per_plane), dtype=torch.int32, device=heat.device)
    grid = (per_plane, batch * classes)
    tiles = dict(classes=classes, height=height, width=width, tiles_w=tiles_w, tiles_per_plane=per_plane,
                 KERNEL=kernel, BLOCK_H=block_h, BLOCK_W=block_w)
    capacity = min(classes * height * width, max(capacity[0] * k, capacity[1]))
    candidates = torch.empty((batch, capacity), dtype=torch.int64, device=heat.device)
    count = torch.zeros(batch, dtype=torch.int32, device=heat.device)
    keep = triton.next_power_of_2(k)
    best = torch.empty((batch, keep), dtype=torch.int64, device=heat.device)
    bound = torch.empty(batch, dtype=torch.int32, device=heat.device)
    steps = {
        "tile maxima (9-load stencil)": lambda: launch(tile_max_kernel, grid, num_warps=warps, heat_ptr=heat,
                                                       tile_max_ptr=tile_max, **tiles),
        "bound: torch.topk of tile maxima": lambda: bound.copy_(torch.topk(tile_max, k, dim=1).values[:, -1]),
        "candidates (every tile starts; count reset)": lambda: (count.zero_(), launch(
            candidates_kernel, grid, num_warps=warps, heat_ptr=heat, tile_max_ptr=tile_max, bound_ptr=bound,
            candidates_ptr=candidates, count_ptr=count, capacity=capacity, **tiles)),
        "select": lambda: launch(select_kernel, (batch,), num_warps=8, heat_ptr=heat, candidates_ptr=candidates,
                                 count_ptr=count, best_ptr=best, classes=classes, height=height, width=width,
                                 capacity=capacity, KERNEL=kernel, KEEP=keep, CHUNK=max(chunk, 2 * keep)),
        "decode keys (torch ops)": lambda: _decode(best[:, :k], heat.dtype, height, width),
    }
    if stages is not None:
        stages.update(steps)
    results = [step() for step in steps.values()]
    return results[-1]


def _decode(keys, dtype, height, width):
    flat = LOW - (keys & LOW)
    labels, indices = flat // (height * width), flat % (height * width)
    return key_scores(keys, dtype), labels, indices // width, indices % width, indices

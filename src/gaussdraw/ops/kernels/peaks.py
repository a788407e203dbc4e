"""The peaks kernels: group maxima, the bound and its groups, candidates, select (the tile-bound top-k), and the
ordering of top-k results; see :mod:`gaussdraw.ops.peaks`.

The first pass reads four consecutive columns a thread (one 16-byte load) on rows that a warp walks down
(a strip), the 3 x 3 window by rows (:func:`.common.quad_rows`: the horizontal maxima from the four in
registers and two neighbour loads; the rows above and below kept in registers): 1.5 loads a pixel, where
the 2-d stencil (:func:`.common.suppressed_values`, any kernel) makes nine."""

from __future__ import annotations

import triton
import triton.language as tl

from .common import (kth_largest_by_digits, ordered_bits, peak_of_rows, quad_rows, store_peaks, suppressed_values,
                     window_row)

LOWEST = tl.constexpr(-2147483648)  # below every order of a float


@triton.jit
def _append(keys, flat, chosen, candidates_ptr, count_ptr, sample, capacity):
    """Appends the int64 keys of the ``chosen`` pixels (1-d) to the sample's candidates (one atomic, where
    any pixel is chosen)."""
    chosen = chosen.to(tl.int32)
    taken = tl.sum(chosen, axis=0)
    if taken > 0:
        start = tl.atomic_add(count_ptr + sample, taken, sem="relaxed")
        at = start + tl.cumsum(chosen, axis=0) - chosen
        wide = (keys.to(tl.int64) << 32) | (0xFFFFFFFF - flat.to(tl.int64))
        tl.store(candidates_ptr + sample * capacity + at, wide, mask=(chosen > 0) & (at < capacity))


@triton.jit
def group_max_kernel(heat_ptr, group_max_ptr, count_ptr, classes, height, width, tiles_w, groups_h,
                     KERNEL: tl.constexpr, ROWS: tl.constexpr, STRIPS: tl.constexpr, GROUP: tl.constexpr,
                     BLOCK_W: tl.constexpr, SHUFFLE: tl.constexpr):
    """Each program: STRIPS strips of ROWS rows (a warp each, side by side) x BLOCK_W columns of one plane;
    writes the largest peak key of each GROUP rows (a group) at group_max[plane, group row, column tile],
    and sets the sample's candidate count to 0 (its first plane's first program)."""
    tile = tl.program_id(0)
    plane = tl.program_id(1).to(tl.int64)
    tl.store(count_ptr + plane // classes, 0, mask=(tile == 0) & (plane % classes == 0))
    tx = tile % tiles_w
    base = plane * height * width
    out = group_max_ptr + plane * groups_h * tiles_w + tx
    tl.static_assert(KERNEL == 1 or KERNEL == 3, "windows of 1 or 3: launch_shape refuses others")
    y0 = (tile // tiles_w) * (ROWS * STRIPS) + tl.arange(0, STRIPS) * ROWS  # (STRIPS,) first rows
    first = tx * BLOCK_W + 4 * tl.arange(0, BLOCK_W // 4)  # (Q,) a thread's first column
    columns_ok = (first[:, None] + tl.arange(0, 4)[None, :] < width)[None, :, :]
    best = tl.full((STRIPS, BLOCK_W // 4, 4), float("-inf"), tl.float32)  # the order's map once a group
    if KERNEL == 3:
        _, above = quad_rows(heat_ptr, base, y0 - 1, first, height, width, KERNEL, SHUFFLE)
        heat, middle = quad_rows(heat_ptr, base, y0, first, height, width, KERNEL, SHUFFLE)
    for r in tl.static_range(ROWS):
        if KERNEL == 3:
            next_heat, below = quad_rows(heat_ptr, base, y0 + r + 1, first, height, width, KERNEL, SHUFFLE)
            values = peak_of_rows(heat, above, middle, below)
            above, middle, heat = middle, below, next_heat
        else:
            heat, _ = quad_rows(heat_ptr, base, y0 + r, first, height, width, KERNEL, SHUFFLE)
            values = peak_of_rows(heat, heat, heat, heat)
        inside = columns_ok & ((y0 + r) < height)[:, None, None]  # a group has a pixel inside: -inf is no key
        best = tl.maximum(best, tl.where(inside, values, float("-inf")), propagate_nan=tl.PropagateNan.ALL)
        if (r + 1) % GROUP == 0:  # the order is monotone, NaN on top: the order of the max, the max of orders
            group = (y0 + r) // GROUP
            keys = ordered_bits(best)
            tl.store(out + group * tiles_w, tl.max(tl.max(keys, axis=2), axis=1), mask=group < groups_h)
            best = tl.full((STRIPS, BLOCK_W // 4, 4), float("-inf"), tl.float32)


@triton.jit
def bound_kernel(group_max_ptr, bound_ptr, groups_ptr, group_count_ptr, per_sample, k,
                 BLOCK: tl.constexpr, BITS: tl.constexpr):
    """One program a sample: the bound (the k-th largest group maximum: k groups hold a peak >= it, so every
    peak of the top k is >= it; by digits of BITS bits) and the list of the groups whose maximum reaches it."""
    sample = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    valid = lanes < per_sample
    maxima = tl.load(group_max_ptr + sample * per_sample + lanes, mask=valid, other=LOWEST)
    bound = kth_largest_by_digits(maxima, k, BITS)
    reach = (valid & (maxima >= bound)).to(tl.int32)
    tl.store(groups_ptr + sample * per_sample + tl.cumsum(reach, axis=0) - reach, lanes, mask=reach > 0)
    tl.store(group_count_ptr + sample, tl.sum(reach, axis=0))
    tl.store(bound_ptr + sample, bound)


@triton.jit
def candidates_kernel(heat_ptr, bound_ptr, groups_ptr, group_count_ptr, candidates_ptr, count_ptr, classes, height,
                      width, tiles_w, groups_h, per_sample, capacity, programs,
                      KERNEL: tl.constexpr, GROUP: tl.constexpr, BLOCK_W: tl.constexpr):
    """``programs`` programs a sample share its listed groups (every ``programs``-th): each recomputes a group's
    peaks row by row (kernel 3: a 3 x 3 window from three row maxima, :func:`.common.window_row`; kernel 1:
    the row itself) and appends those >= the bound to the sample's candidates, as distinct int64 keys
    (value, then ascending index)."""
    tl.static_assert(KERNEL == 1 or KERNEL == 3, "windows of 1 or 3: launch_shape refuses others")
    sample = tl.program_id(1).to(tl.int64)
    bound = tl.load(bound_ptr + sample)
    listed = tl.load(group_count_ptr + sample)
    plane_groups = groups_h * tiles_w
    for i in range(tl.program_id(0), listed, programs):
        group = tl.load(groups_ptr + sample * per_sample + i)
        c = group // plane_groups
        y0 = (group % plane_groups) // tiles_w * GROUP
        x = (group % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)
        base = (sample * classes + c) * height * width
        flat = c * height * width + x
        if KERNEL == 3:
            _, above = window_row(heat_ptr, base, y0 - 1, x, height, width)
            heat, middle = window_row(heat_ptr, base, y0, x, height, width)
        for r in tl.static_range(GROUP):
            if KERNEL == 3:
                next_heat, below = window_row(heat_ptr, base, y0 + r + 1, x, height, width)
                keys = ordered_bits(peak_of_rows(heat, above, middle, below))
                above, middle, heat = middle, below, next_heat
            else:
                heat, _ = window_row(heat_ptr, base, y0 + r, x, height, width)
                keys = ordered_bits(peak_of_rows(heat, heat, heat, heat))
            chosen = (x < width) & (0 * x + y0 + r < height) & (keys >= bound)
            _append(keys, flat + (y0 + r) * width, chosen, candidates_ptr, count_ptr, sample, capacity)


@triton.jit
def select_kernel(heat_ptr, candidates_ptr, count_ptr, scores_ptr, labels_ptr, ys_ptr, xs_ptr, indices_ptr,
                  classes, height, width, capacity, k,
                  KERNEL: tl.constexpr, KEEP: tl.constexpr, CHUNK: tl.constexpr):
    """One program a sample keeps the k largest keys of its candidates, sorting them in chunks into a
    running best (lanes < KEEP), and writes them out. Where the candidates overflowed their buffer
    (plateaus), it takes every pixel of the sample instead, recomputed (slower, exact)."""
    sample = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, CHUNK)
    is_best = lanes < KEEP
    keys = tl.full((CHUNK,), -9223372036854775808, tl.int64)
    count = tl.load(count_ptr + sample)
    overflow = count > capacity
    total = tl.where(overflow, classes * height * width, count)
    for start in range(0, total, CHUNK - KEEP):
        at = start + lanes - KEEP
        new = ~is_best & (at < total)
        if overflow:  # every pixel of the sample, its value recomputed
            pixel = at % (height * width)
            base = (sample * classes + at // (height * width)) * height * width
            values = suppressed_values(heat_ptr, base, pixel // width, pixel % width, new, height, width, KERNEL)
            loaded = (ordered_bits(values).to(tl.int64) << 32) | (0xFFFFFFFF - at.to(tl.int64))
        else:
            loaded = tl.load(candidates_ptr + sample * capacity + at, mask=new, other=-9223372036854775808)
        keys = tl.where(is_best, keys, tl.where(new, loaded, -9223372036854775808))
        keys = tl.sort(keys, descending=True)
    store_peaks(keys, lanes < k, sample * k, scores_ptr, labels_ptr, ys_ptr, xs_ptr, indices_ptr,
                height * width, width)


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
    store_peaks(keys, valid, row, out_scores_ptr, labels_ptr, ys_ptr, xs_ptr, indices_ptr, plane, width)

"""The earlier four-launch tile-bound peaks path of 2026-12-03 (group maxima by rows, 9 loads a pixel; a bound
kernel with 32 bisection counts; candidates over the listed groups, row by row; measured 90.1 us on the H200), kept
for benchmarks/peaks_profile.py --previous to time against ops/peaks.py's four launches (a first pass of 16-byte
loads, the bound by 2-bit digits, candidates of a group at once). The select kernel is ops/peaks.py's."""

import torch
import triton
import triton.language as tl

from gaussdraw.ops.kernels.common import kth_largest, ordered_bits, peak_of_rows, suppressed_values, window_row
from gaussdraw.ops.kernels.peaks import select_kernel
from gaussdraw.ops.launch import launch

cdiv = triton.cdiv

LOWEST = tl.constexpr(-2147483648)  # below every order of a float


@triton.jit
def _append(keys, flat, chosen, candidates_ptr, count_ptr, sample, capacity):
    """Appends the int64 keys of the ``chosen`` pixels (1-d) to the sample's candidates."""
    chosen = chosen.to(tl.int32)
    taken = tl.sum(chosen, axis=0)
    if taken > 0:
        start = tl.atomic_add(count_ptr + sample, taken)
        at = start + tl.cumsum(chosen, axis=0) - chosen
        wide = (keys.to(tl.int64) << 32) | (0xFFFFFFFF - flat.to(tl.int64))
        tl.store(candidates_ptr + sample * capacity + at, wide, mask=(chosen > 0) & (at < capacity))


@triton.jit
def group_max_kernel(heat_ptr, group_max_ptr, height, width, tiles_w, groups_h,
                     KERNEL: tl.constexpr, ROWS: tl.constexpr, GROUP: tl.constexpr, BLOCK_W: tl.constexpr):
    """Each program: ROWS rows x BLOCK_W columns of one plane; writes the largest peak key of each GROUP
    rows (a group) at group_max[plane, group row, column tile]."""
    tile = tl.program_id(0)
    plane = tl.program_id(1).to(tl.int64)
    tx = tile % tiles_w
    y0 = (tile // tiles_w) * ROWS
    x = tx * BLOCK_W + tl.arange(0, BLOCK_W)
    base = plane * height * width
    out = group_max_ptr + plane * groups_h * tiles_w + tx
    if KERNEL == 3:
        _, above = window_row(heat_ptr, base, y0 - 1, x, height, width)
        heat, middle = window_row(heat_ptr, base, y0, x, height, width)
        best = tl.full((BLOCK_W,), LOWEST, tl.int32)
        for r in tl.static_range(ROWS):
            next_heat, below = window_row(heat_ptr, base, y0 + r + 1, x, height, width)
            keys = ordered_bits(peak_of_rows(heat, above, middle, below))
            best = tl.maximum(best, tl.where((x < width) & (0 * x + y0 + r < height), keys, LOWEST))
            if (r + 1) % GROUP == 0:
                group = (y0 + r) // GROUP
                tl.store(out + group * tiles_w, tl.max(best, axis=0), mask=group < groups_h)
                best = tl.full((BLOCK_W,), LOWEST, tl.int32)
            above, middle, heat = middle, below, next_heat
    else:
        for j in tl.static_range(ROWS // GROUP):
            y = y0 + j * GROUP + tl.arange(0, GROUP)[:, None]
            inside = (y < height) & (x[None, :] < width)
            values = suppressed_values(heat_ptr, base, y, x[None, :], inside, height, width, KERNEL)
            keys = tl.where(inside, ordered_bits(values), LOWEST)
            group = y0 // GROUP + j
            tl.store(out + group * tiles_w, tl.max(tl.max(keys, axis=1), axis=0), mask=group < groups_h)


@triton.jit
def bound_kernel(group_max_ptr, bound_ptr, groups_ptr, group_count_ptr, count_ptr, per_sample, k,
                 BLOCK: tl.constexpr):
    """One program a sample: the bound (the k-th largest group maximum: k groups hold a peak >= it, so
    every peak of the top k is >= it), the list of groups whose maximum reaches it, and the sample's
    candidate count set to 0."""
    sample = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    valid = lanes < per_sample
    maxima = tl.load(group_max_ptr + sample * per_sample + lanes, mask=valid, other=LOWEST)
    bound = kth_largest(maxima, k)
    reach = (valid & (maxima >= bound)).to(tl.int32)
    at = tl.cumsum(reach, axis=0) - reach
    tl.store(groups_ptr + sample * per_sample + at, lanes, mask=reach > 0)
    tl.store(group_count_ptr + sample, tl.sum(reach, axis=0))
    tl.store(bound_ptr + sample, bound)
    tl.store(count_ptr + sample, 0)


@triton.jit
def candidates_kernel(heat_ptr, bound_ptr, groups_ptr, group_count_ptr, candidates_ptr, count_ptr, classes, height,
                      width, tiles_w, groups_h, per_sample, capacity, programs,
                      KERNEL: tl.constexpr, GROUP: tl.constexpr, BLOCK_W: tl.constexpr):
    """``programs`` programs a sample share its listed groups: each recomputes a group's peaks and appends
    those >= the bound to the sample's candidates, as distinct int64 keys (value, then ascending index)."""
    sample = tl.program_id(1).to(tl.int64)
    bound = tl.load(bound_ptr + sample)
    listed = tl.load(group_count_ptr + sample)
    plane_groups = groups_h * tiles_w
    for i in range(tl.program_id(0), listed, programs):
        group = tl.load(groups_ptr + sample * per_sample + i)
        c = group // plane_groups
        tx = group % tiles_w
        y0 = (group % plane_groups) // tiles_w * GROUP
        x = tx * BLOCK_W + tl.arange(0, BLOCK_W)
        base = (sample * classes + c) * height * width
        flat = c * height * width + x
        if KERNEL == 3:
            _, above = window_row(heat_ptr, base, y0 - 1, x, height, width)
            heat, middle = window_row(heat_ptr, base, y0, x, height, width)
            for r in tl.static_range(GROUP):
                next_heat, below = window_row(heat_ptr, base, y0 + r + 1, x, height, width)
                keys = ordered_bits(peak_of_rows(heat, above, middle, below))
                chosen = (x < width) & (0 * x + y0 + r < height) & (keys >= bound)
                _append(keys, flat + (y0 + r) * width, chosen, candidates_ptr, count_ptr, sample, capacity)
                above, middle, heat = middle, below, next_heat
        else:
            y = y0 + tl.arange(0, GROUP)[:, None]
            inside = (y < height) & (x[None, :] < width)
            keys = ordered_bits(suppressed_values(heat_ptr, base, y, x[None, :], inside, height, width, KERNEL))
            chosen = tl.reshape(inside & (keys >= bound), (GROUP * BLOCK_W,))
            _append(tl.reshape(keys, (GROUP * BLOCK_W,)), tl.reshape(flat[None, :] + y * width, (GROUP * BLOCK_W,)),
                    chosen, candidates_ptr, count_ptr, sample, capacity)


def old_peaks(heat, k, kernel, rows=32, group=8, block_w=128, warps=2, capacity=(16, 8192), chunk=512, stages=None):
    """The previous path's outputs (scores, labels, ys, xs, indices); ``stages``: a dict that receives each
    launch as a callable (for timing)."""
    batch, classes, height, width = heat.shape
    tiles_w, groups_h = cdiv(width, block_w), cdiv(height, group)
    per_sample = classes * groups_h * tiles_w
    group_max = torch.empty((batch, per_sample), dtype=torch.int32, device=heat.device)
    bound, group_count, count = (torch.empty(batch, dtype=torch.int32, device=heat.device) for _ in range(3))
    groups = torch.empty((batch, per_sample), dtype=torch.int32, device=heat.device)
    capacity = min(classes * height * width, max(capacity[0] * k, capacity[1]))
    candidates = torch.empty((batch, capacity), dtype=torch.int64, device=heat.device)
    outputs = [torch.empty((batch, k), dtype=heat.dtype, device=heat.device)]
    outputs += [torch.empty((batch, k), dtype=torch.int64, device=heat.device) for _ in range(4)]
    sizes = dict(height=height, width=width, tiles_w=tiles_w, groups_h=groups_h, KERNEL=kernel, GROUP=group,
                 BLOCK_W=block_w)
    programs = min(max(k // 2, 16), 256)
    keep = triton.next_power_of_2(k)
    steps = {
        "group maxima (one pass, by rows)": lambda: launch(
            group_max_kernel, (cdiv(height, rows) * tiles_w, batch * classes), num_warps=warps, heat_ptr=heat,
            group_max_ptr=group_max, ROWS=rows, **sizes),
        "bound + group list": lambda: launch(
            bound_kernel, (batch,), num_warps=4 if per_sample <= 4096 else 8, group_max_ptr=group_max,
            bound_ptr=bound, groups_ptr=groups, group_count_ptr=group_count, count_ptr=count, per_sample=per_sample,
            k=k, BLOCK=triton.next_power_of_2(per_sample)),
        "candidates (listed groups)": lambda: launch(
            candidates_kernel, (programs, batch), num_warps=warps, heat_ptr=heat, bound_ptr=bound, groups_ptr=groups,
            group_count_ptr=group_count, candidates_ptr=candidates, count_ptr=count, classes=classes,
            per_sample=per_sample, capacity=capacity, programs=programs, **sizes),
        "select + outputs": lambda: launch(
            select_kernel, (batch,), num_warps=8, heat_ptr=heat, candidates_ptr=candidates, count_ptr=count,
            scores_ptr=outputs[0], labels_ptr=outputs[1], ys_ptr=outputs[2], xs_ptr=outputs[3],
            indices_ptr=outputs[4], classes=classes, height=height, width=width, capacity=capacity, k=k,
            KERNEL=kernel, KEEP=keep, CHUNK=max(chunk, 2 * keep)),
    }
    if stages is not None:
        stages.update(steps)
    for step in steps.values():
        step()
    return outputs

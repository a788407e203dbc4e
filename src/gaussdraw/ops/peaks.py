"""The top-k peaks of a heatmap on the GPU, without a top-k over every pixel.

A peak's value is mmdet's ``heat * (max_pool(heat) == heat)``, compared as an int32 that sorts as the
float does (:mod:`._sort_keys`). Four kernels (:mod:`.kernels.peaks`), no host sync, no torch op between:

1. group maxima: one pass over the map; a warp walks down ``rows`` rows of a plane (a strip; ``strips``
   strips a program), four columns a thread (one 16-byte load; a 3 x 3 window by rows, the horizontal
   neighbours from registers), and writes the largest value of each ``group`` rows. It also sets each
   sample's candidate count to 0. This pass reads the map once: it is the floor of the whole call;
2. bound (one program a sample): the bound ``t``, the k-th largest of the sample's group maxima (k groups
   each hold a value >= t, so every peak of the top k is >= t; 16 rounds of 2-bit digits, or 32 of
   bisection for the largest counts of groups: :func:`._triton.digit_bits`), and the list of the groups
   reaching it (about k);
3. candidates: ``programs`` programs a sample share the listed groups; each recomputes a group row by
   row (kernel 3: a 3 x 3 window from three row maxima, three loads a pixel) and appends a row's values >= t as
   distinct int64 keys (value, then ascending index). A realistic heatmap gives a few more than k
   candidates;
4. select (one program a sample): the k largest keys of the candidates, sorted in chunks into a running
   best, written out as scores, labels, ys, xs, indices. Where the candidates overflow their buffer
   (plateaus: many pixels equal at the k-th place), it takes every pixel of the sample instead,
   recomputed (slower, exact).

(The bound once a sample, apart: with every candidates program finding it itself, that launch took
59.2 us on centernet-coco against 8.1 + 12.8 for the two launches; candidates row by row, as a group's
rows at once took 13-19 us more; H200, benchmarks/NOTES.md.)

Equal values come in ascending index order (the keys are distinct), so the result does not depend
on the order in which groups appended their candidates.
"""

from __future__ import annotations

import dataclasses

import torch

from ._triton import cdiv, check_device, digit_bits, interpreting, next_power_of_2


@dataclasses.dataclass(frozen=True)
class PeaksLaunchShape:
    """The tile-bound path's launch shape: the first pass's programs take ``strips`` strips (a warp each) of
    ``rows`` rows x ``block_w`` columns and write one maximum per ``group`` rows (``rows`` a multiple of it;
    the candidates pass recomputes a group; halved, down to 1, while a sample has fewer than 2 k groups),
    a pixel's horizontal neighbours from the cache (two loads) or, ``shuffle``, from the next threads;
    ``programs`` candidate programs a sample (None: k // 2 within [16, 256]) of ``candidate_warps`` warps;
    candidates kept per sample, max(capacity[0] * k, capacity[1]) (at most the sample's pixels); keys the
    select kernel sorts at once (at least 2 * next_power_of_2(k)), ``chunk``, None: 64 in the interpreter,
    where a sort's cost grows with its width rather than its work, else 256 (k = 100: one sort of 256)."""

    rows: int = 16
    strips: int = 2
    group: int = 8
    block_w: int = 128
    shuffle: bool = False
    programs: int | None = None
    candidate_warps: int = 2
    capacity: tuple[int, int] = (16, 8192)
    chunk: int | None = None


TILE_BOUND = PeaksLaunchShape()
ORDER_LIMIT = 4096  # the most results one program puts in order


def order_peaks_triton(scores: torch.Tensor, flat: torch.Tensor, plane: int, width: int):
    """(scores, labels, ys, xs, indices), each (B, k), of top-k ``scores`` and their ``flat`` indices
    (c * plane + y * width + x), ordered by score and then ascending index, in one launch; for
    float16/bfloat16/float32 scores and k <= ORDER_LIMIT (None otherwise)."""
    batch, k = scores.shape
    if scores.dtype == torch.float64 or k > ORDER_LIMIT or batch == 0 or k == 0:
        return None
    from .kernels.peaks import order_kernel
    from .launch import launch

    outputs = [torch.empty_like(scores)] + [torch.empty_like(flat) for _ in range(4)]
    launch(order_kernel, (batch,), num_warps=4, scores_ptr=scores.contiguous(), flat_ptr=flat.contiguous(),
           out_scores_ptr=outputs[0], labels_ptr=outputs[1], ys_ptr=outputs[2], xs_ptr=outputs[3],
           indices_ptr=outputs[4], k=k, plane=plane, width=width, KEEP=next_power_of_2(k))
    return outputs


BOUND_LIMIT = 32768  # the most group maxima the bound program of a sample holds


def launch_shape(shape: PeaksLaunchShape, classes: int, height: int, width: int, k: int,
                 kernel: int = 3) -> PeaksLaunchShape | None:
    """``shape`` fitted to the map: columns at most the map's width (a power of 2, at least 4); groups halved
    (down to 1 row) while a sample has fewer than 2 k of them; groups doubled (and rows with them) while it
    has more than BOUND_LIMIT. None (the caller takes the plain top-k) where a sample still has fewer than
    2 k groups, the local-maximum window (``kernel``) is over 3, or the map is narrower than 4 columns:
    wrong peaks were seen on such small maps."""
    if width < 4 or kernel > 3:  # narrower than the least column block, or windows over 3 (untested): the plain top-k
        return None
    shape = dataclasses.replace(shape, block_w=max(4, min(shape.block_w, next_power_of_2(width))))

    def per_sample(s):
        return classes * cdiv(height, s.group) * cdiv(width, s.block_w)

    while shape.group > 1 and per_sample(shape) < 2 * k:
        shape = dataclasses.replace(shape, group=shape.group // 2)
    while per_sample(shape) > BOUND_LIMIT:
        if shape.group >= height:
            return None
        shape = dataclasses.replace(shape, group=2 * shape.group, rows=max(shape.rows, 2 * shape.group))
    return shape if per_sample(shape) >= 2 * k else None  # fewer: wrong peaks seen on small maps


def bound_sizes(per_sample: int) -> dict:
    """The bound launch's warps (4 to 16: more where a sample has many groups), BLOCK (the sample's group
    maxima) and BITS (bits a round of the search, :func:`._triton.digit_bits`)."""
    block = next_power_of_2(per_sample)
    warps = max(4, min(16, block // 512))
    return dict(num_warps=warps, BLOCK=block, BITS=digit_bits(block, warps))


def candidate_programs(shape: PeaksLaunchShape, k: int) -> int:
    """The candidates launch's programs a sample: ``shape.programs``, or k // 2 within [16, 256]."""
    return shape.programs or min(max(k // 2, 16), 256)


def peaks_triton(heat: torch.Tensor, k: int, kernel: int, *,
                 shape: PeaksLaunchShape = TILE_BOUND) -> list[torch.Tensor] | None:
    """(scores, labels, ys, xs, indices), each (B, k), of the top-k peaks of (B, C, H, W) ``heat``
    (float16/bfloat16/float32), best first, equal scores by ascending index; None where the path does
    not apply (float64, k > ORDER_LIMIT, 2**31 pixels a sample or more, or no fitted shape:
    :func:`launch_shape`; the caller takes the plain top-k)."""
    check_device(heat.device)
    heat = heat.contiguous()
    batch, classes, height, width = heat.shape
    if heat.dtype == torch.float64 or k > ORDER_LIMIT or classes * height * width >= 2**31 or batch == 0:
        return None
    shape = launch_shape(shape, classes, height, width, k, kernel)
    if shape is None:
        return None
    steps, outputs = peaks_launches(heat, k, kernel, shape)
    for step in steps.values():
        step()
    return outputs


def peaks_launches(heat: torch.Tensor, k: int, kernel: int, shape: PeaksLaunchShape):
    """({name: the launch, a callable}, the outputs they fill) of contiguous ``heat`` and a fitted ``shape``
    (:func:`launch_shape`), in their order; apart, for benchmarks/peaks_profile.py to time each."""
    from .kernels import peaks as kernels
    from .launch import launch

    batch, classes, height, width = heat.shape
    tiles_w, groups_h = cdiv(width, shape.block_w), cdiv(height, shape.group)
    per_sample = classes * groups_h * tiles_w
    device = heat.device
    group_max, groups = (torch.empty((batch, per_sample), dtype=torch.int32, device=device) for _ in range(2))
    count, bound, group_count = (torch.empty(batch, dtype=torch.int32, device=device) for _ in range(3))
    capacity = min(classes * height * width, max(shape.capacity[0] * k, shape.capacity[1]))
    candidates = torch.empty((batch, capacity), dtype=torch.int64, device=device)
    outputs = [torch.empty((batch, k), dtype=heat.dtype, device=device)]
    outputs += [torch.empty((batch, k), dtype=torch.int64, device=device) for _ in range(4)]
    sizes = dict(height=height, width=width, tiles_w=tiles_w, groups_h=groups_h, KERNEL=kernel,
                 GROUP=shape.group, BLOCK_W=shape.block_w)
    programs = candidate_programs(shape, k)
    keep = next_power_of_2(k)
    chunk = shape.chunk or (64 if interpreting() else 256)
    steps = {
        "group maxima (one pass; count reset)": lambda: launch(
            kernels.group_max_kernel, (cdiv(height, shape.rows * shape.strips) * tiles_w, batch * classes),
            num_warps=shape.strips, heat_ptr=heat, group_max_ptr=group_max, count_ptr=count, classes=classes,
            ROWS=shape.rows, STRIPS=shape.strips, SHUFFLE=shape.shuffle, **sizes),
        "bound + group list": lambda: launch(
            kernels.bound_kernel, (batch,), group_max_ptr=group_max, bound_ptr=bound, groups_ptr=groups,
            group_count_ptr=group_count, per_sample=per_sample, k=k, **bound_sizes(per_sample)),
        "candidates (listed groups)": lambda: launch(
            kernels.candidates_kernel, (programs, batch), num_warps=shape.candidate_warps, heat_ptr=heat,
            bound_ptr=bound, groups_ptr=groups, group_count_ptr=group_count, candidates_ptr=candidates,
            count_ptr=count, classes=classes, per_sample=per_sample, capacity=capacity, programs=programs, **sizes),
        "select + outputs": lambda: launch(
            kernels.select_kernel, (batch,), num_warps=8, heat_ptr=heat, candidates_ptr=candidates,
            count_ptr=count, scores_ptr=outputs[0], labels_ptr=outputs[1], ys_ptr=outputs[2], xs_ptr=outputs[3],
            indices_ptr=outputs[4], classes=classes, height=height, width=width, capacity=capacity, k=k,
            KERNEL=kernel, KEEP=keep, CHUNK=max(chunk, 2 * keep)),
    }
    return steps, outputs

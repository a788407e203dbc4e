"""The top-k peaks of a heatmap on the GPU, without a top-k over every pixel.

A peak's value is mmdet's ``heat * (max_pool(heat) == heat)`` (:func:`.kernels.common.suppressed_values`),
compared as an int32 that sorts as the float does (:mod:`._sort_keys`). Three kernels (:mod:`.kernels.peaks`):

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

import dataclasses

import torch

from ._triton import cdiv, check_device, interpreting, next_power_of_2


@dataclasses.dataclass(frozen=True)
class PeaksLaunchShape:
    """The tile-bound path's launch shape: tiles of ``block_h`` x ``block_w`` pixels and their
    programs' warps; candidates kept per sample, max(capacity[0] * k, capacity[1]) (at most the
    sample's pixels); keys the select kernel sorts at once (at least 2 * next_power_of_2(k)),
    ``chunk``, None: 64 in the interpreter, where a sort's cost grows with its width rather than its
    work, else 512."""

    block_h: int = 8
    block_w: int = 128  # benchmarks/peaks_profile.py: 8 x 128 tiles the fastest of five shapes
    warps: int = 4
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


def peak_keys_triton(heat: torch.Tensor, k: int, kernel: int, *,
                     shape: PeaksLaunchShape = TILE_BOUND) -> torch.Tensor | None:
    """(B, k) int64 keys of the top-k peaks of (B, C, H, W) ``heat``, best first (decode with
    :func:`._sort_keys.key_scores` and ``0xFFFFFFFF - (key & 0xFFFFFFFF)``); None where a sample has
    fewer tiles than k (the caller takes the plain top-k)."""
    check_device(heat.device)
    from .kernels import peaks as kernels
    from .launch import launch

    heat = heat.contiguous()
    batch, classes, height, width = heat.shape
    tiles_w = cdiv(width, shape.block_w)
    tiles_per_plane = cdiv(height, shape.block_h) * tiles_w
    if classes * tiles_per_plane < k or classes * height * width >= 2**31:
        return None
    tile_max = torch.empty((batch, classes * tiles_per_plane), dtype=torch.int32, device=heat.device)
    grid = (tiles_per_plane, batch * classes)
    tiles = dict(classes=classes, height=height, width=width, tiles_w=tiles_w, tiles_per_plane=tiles_per_plane,
                 KERNEL=kernel, BLOCK_H=shape.block_h, BLOCK_W=shape.block_w)
    launch(kernels.tile_max_kernel, grid, num_warps=shape.warps, heat_ptr=heat, tile_max_ptr=tile_max, **tiles)
    bound = torch.topk(tile_max, k, dim=1).values[:, -1].contiguous()
    capacity = min(classes * height * width, max(shape.capacity[0] * k, shape.capacity[1]))
    candidates = torch.empty((batch, capacity), dtype=torch.int64, device=heat.device)
    count = torch.zeros(batch, dtype=torch.int32, device=heat.device)
    launch(kernels.candidates_kernel, grid, num_warps=shape.warps, heat_ptr=heat, tile_max_ptr=tile_max,
           bound_ptr=bound, candidates_ptr=candidates, count_ptr=count, capacity=capacity, **tiles)
    keep = next_power_of_2(k)
    best = torch.empty((batch, keep), dtype=torch.int64, device=heat.device)
    chunk = shape.chunk or (64 if interpreting() else 512)
    launch(kernels.select_kernel, (batch,), num_warps=8, heat_ptr=heat, candidates_ptr=candidates, count_ptr=count,
           best_ptr=best, classes=classes, height=height, width=width, capacity=capacity,
           KERNEL=kernel, KEEP=keep, CHUNK=max(chunk, 2 * keep))
    return best[:, :k]

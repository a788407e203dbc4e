"""Peaks of predicted heatmaps: mmdet's ``get_topk_from_heatmap(get_local_maximum(...))`` and
CenterPoint's two-stage ``_topk``."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..checks import check_float_tensor
from ..dispatch import check_backend, route, run
from ..ops._sort_keys import LOW, score_keys
from ..ops.class_peaks import class_peaks_triton
from ..ops.peaks import order_peaks_triton, peaks_triton
from ..ops.local_maximum import LOCAL_MAXIMUM


class Peaks(NamedTuple):
    """The top peaks of a (B, C, H, W) heatmap, each (B, K), best first.

    scores: the peak values (the heatmap's dtype); labels: class c (int64); ys, xs: the pixel
    (int64); indices: y * W + x (mmdet's ``topk_inds``, int64)."""

    scores: torch.Tensor
    labels: torch.Tensor
    ys: torch.Tensor
    xs: torch.Tensor
    indices: torch.Tensor


def _best_first(scores: torch.Tensor, flat: torch.Tensor):
    """``scores`` and ``flat`` (..., K) reordered: descending score, equal scores by ascending ``flat``."""
    if scores.dtype == torch.float64:  # no 64-bit room for the index: two sorts
        by_index = torch.sort(flat, dim=-1).indices
        scores, flat = torch.gather(scores, -1, by_index), torch.gather(flat, -1, by_index)
        by_score = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    else:  # one sort of distinct keys
        by_score = torch.sort(score_keys(scores, LOW - flat), dim=-1, descending=True).indices
    return torch.gather(scores, -1, by_score), torch.gather(flat, -1, by_score)


def heatmap_peaks(heatmap: torch.Tensor, k: int = 100, kernel: int = 3, *, per_class_k: int | None = None,
                  backend: str = "auto") -> Peaks:
    """The ``k`` highest local maxima of a (B, C, H, W) heatmap.

    Same peaks as mmdet 3.3's ``get_topk_from_heatmap(get_local_maximum(heatmap, kernel), k)``:
    a pixel is a peak where it equals the max of its ``kernel`` x ``kernel`` window (clipped to
    the map; plateaus keep every pixel, border pixels can be peaks); every other pixel counts as
    ``heatmap * 0`` (0); then one top-k over C x H x W per sample. With ``per_class_k``, CenterPoint's
    two-stage ``_topk`` (mmdet3d 1.4): the top ``per_class_k`` of each class, then the top ``k`` of
    those (CenterPoint calls it on the raw heatmap: ``kernel=1`` keeps every pixel).

    Ties: peaks of equal score come in ascending index order (c * H * W + y * W + x). Where
    equal scores straddle the k-th place, which of them are included is the top-k's choice, as
    in mmdet's own ``torch.topk``.

    Args:
        heatmap: (B, C, H, W) float16/bfloat16/float32/float64 scores.
        k: peaks per sample, in [1, C * H * W] (with ``per_class_k``: at most C * per_class_k).
        kernel: odd window side of the local maximum, >= 1 (1: every pixel is a peak).
        per_class_k: peaks per class before the overall top ``k``, in [1, H * W].
        backend: "auto" (Triton on CUDA, torch on CPU), "triton" or "torch".

    Returns:
        :class:`Peaks` of (B, k) tensors.

    Example:
        >>> heat = torch.zeros(1, 2, 4, 4)
        >>> heat[0, 1, 2, 3] = 0.9
        >>> heat[0, 0, 0, 0] = 0.5
        >>> peaks = heatmap_peaks(heat, k=2)
        >>> peaks.scores.tolist(), peaks.labels.tolist(), peaks.ys.tolist(), peaks.xs.tolist()
        ([[0.8999999761581543, 0.5]], [[1, 0]], [[2, 0]], [[3, 0]])
    """
    check_backend(backend)
    if not isinstance(heatmap, torch.Tensor):
        raise TypeError(f"heatmap must be a torch.Tensor; got {type(heatmap).__name__}")
    if heatmap.dim() != 4:
        raise ValueError(f"heatmap must be (B, C, H, W); got shape {tuple(heatmap.shape)}")
    check_float_tensor(heatmap, "heatmap", (None,) * 4, heatmap.device, "heatmap")
    batch, classes, height, width = heatmap.shape
    plane = height * width
    for name, value in (("k", k), ("kernel", kernel), ("per_class_k", per_class_k)):
        if value is not None and (type(value) is not int or value < 1):
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    if kernel % 2 == 0:
        raise ValueError(f"kernel must be odd (a window centered on its pixel, as mmdet's padding assumes); got {kernel}")
    if per_class_k is not None and per_class_k > plane:
        raise ValueError(f"per_class_k must be at most H * W = {plane}; got {per_class_k}")
    limit = classes * (per_class_k if per_class_k is not None else plane)
    if k > limit:
        raise ValueError(f"k must be at most {limit} (" + ("C * per_class_k" if per_class_k is not None else
                                                          "C * H * W") + f"); got {k}")
    chosen = route(backend, heatmap.device)
    triton_path = chosen.use_triton and not chosen.traced  # eager Triton: the kernels beyond the op
    if triton_path:  # no top-k over every pixel: ops/peaks.py, ops/class_peaks.py
        found = None
        if per_class_k is None or per_class_k >= k:  # no class can hold more than k of the top k
            found = peaks_triton(heatmap, k, kernel)
        if found is None and per_class_k is not None:
            found = class_peaks_triton(heatmap, k, kernel, per_class_k)
        if found is not None:
            return Peaks(*found)
    values = heatmap if kernel == 1 else run(LOCAL_MAXIMUM, chosen, heatmap, kernel)
    if per_class_k is None:
        scores, flat = torch.topk(values.reshape(batch, -1), k)
    else:
        class_scores, class_flat = torch.topk(values.reshape(batch, classes, plane), per_class_k)
        scores, pick = torch.topk(class_scores.reshape(batch, -1), k)
        label = pick // per_class_k
        flat = torch.gather(class_flat.reshape(batch, -1), 1, pick) + label * plane
    if triton_path:  # ordering and index arithmetic in one launch
        ordered = order_peaks_triton(scores, flat, plane, width)
        if ordered is not None:
            return Peaks(ordered[0], ordered[1], ordered[2], ordered[3], ordered[4])
    scores, flat = _best_first(scores, flat)
    labels, indices = flat // plane, flat % plane
    return Peaks(scores, labels, indices // width, indices % width, indices)

"""Rotated (BEV) NMS: mmcv's ``nms_rotated`` as mmdet3d's ``nms_bev`` calls it, one call for a
batch (:func:`rotated_nms_batched`)."""

from __future__ import annotations

import math

import torch

from ..checks import raise_first, resolve_validate
from ..dispatch import check_backend, route, run
from ..inputs import Field, batch_inputs
from ..ops.rotated_nms import ROTATED_NMS, box_geometry, stable_score_order
from ..ragged import RaggedLike
from ..ops._constants import device_constant
from .nms import KeptBoxes, one_set_kept

ROTATED_FIELDS = (Field("scores", floating=True), Field("boxes", (5,), floating=True))  # scores set S and counts


def _size(value, name: str) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise ValueError(f"{name} must be an integer >= 0 or None; got {value!r}")


def _threshold_list(thresh, num_problems: int) -> tuple:
    single = isinstance(thresh, (int, float)) and not isinstance(thresh, bool)
    values = [thresh] * num_problems if single else list(thresh) if isinstance(thresh, (list, tuple)) else None
    if values is None or len(values) != num_problems or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and not math.isnan(t) for t in values):
        raise ValueError(f"thresh must be a number (not NaN) or one number per problem ({num_problems}); got "
                         f"{thresh!r}")
    return tuple(float(t) for t in values)


def rotated_nms_batched(boxes: RaggedLike, scores: RaggedLike, thresh, *, pre_max_size: int | None = None,
                        post_max_size: int | None = None, counts: torch.Tensor | None = None, backend: str = "auto",
                        validate: bool | None = None) -> KeptBoxes:
    """mmdet3d's ``nms_bev`` (mmcv's ``nms_rotated``) for each problem (sample, task) of a batch, in
    one call, no host sync.

    The convention (mmcv 2.1.0, ``box_iou_rotated_utils.hpp`` and ``cpu/nms_rotated.cpp``):

    - a box is (x_center, y_center, width, height, angle), angle in radians (mmcv's xywhr;
      ``nms_bev`` turns CenterHead's ``xywhr2xyxyr(boxes.bev)`` back into it). Its corners are
      (-w/2, +h/2), (-w/2, -h/2), (+w/2, -h/2), (+w/2, +h/2) rotated counter-clockwise by the
      angle about the center (``get_rotated_vertices``; mmcv's ``clockwise=True``, the default
      ``nms_bev`` uses, leaves the angle as it is). Both boxes of a pair are moved so that their
      centers' midpoint is the origin (mmcv does so for precision).
    - IoU = intersection / (area1 + area2 - intersection), the exact area of the common polygon; 0
      where a box's ``w * h`` is below 1e-14 (so zero-area boxes suppress nothing and, at a
      threshold of 0, are suppressed). Identical boxes have IoU exactly 1 here. mmcv finds the
      polygon by a convex hull with absolute epsilons (1e-6 on cross products), so for boxes
      smaller than about 1e-3 units its IoU can differ from the exact one.
    - Boxes are visited by descending score, equal scores by index (the lower first: a stable
      descending sort; NaN scores first, as ``torch.sort`` puts them). ``nms_bev`` sorts with
      ``torch.sort``'s default, unstable sort, which leaves equal scores in an order of its own
      (on the CPU, the stable order up to 16 boxes only). Only the best ``pre_max_size`` take
      part. A box is kept unless a kept box has IoU >= ``thresh`` with it
      (mmcv's CPU kernel compares ``>=``, its CUDA kernel ``>``: they differ only where an IoU
      equals the threshold, e.g. at 0 with disjoint boxes or at 1 with identical ones), the
      threshold rounded to float32 as mmcv takes it (a C ``float``). Then the first
      ``post_max_size`` kept boxes.
    - ``nms_bev`` gets ``xywhr2xyxyr(boxes)`` and turns it back into ``((x1 + x2) / 2, (y1 + y2)
      / 2, x2 - x1, y2 - y1, r)``; pass boxes through the same round trip to match it to the bit.
    - Computed in float64 for float64 boxes, else in float32 (float16 and bfloat16 boxes are cast
      to float32, where mmcv's CUDA kernel would compute in half). Decisions can differ from
      mmcv's only where an IoU lies within rounding of the threshold.

    Args:
        boxes: per-problem (N_b, 5) float boxes: a list of tensors (or of nested Python lists of
            numbers), a ragged batch, or a padded (S, Nmax, 5) tensor with ``counts``.
        scores: per-problem (N_b,) float scores, in the same form.
        thresh: the IoU threshold: a number, or one per problem (a sequence of S numbers).
        pre_max_size: only the best this many boxes per problem take part (None: all).
        post_max_size: keep at most this many per problem (None: all).
        counts: (S,) boxes per problem, with padded tensors.
        backend: "auto" (Triton on CUDA, torch on CPU), "triton" or "torch".
        validate: check that counts lie in [0, Nmax] and agree with the inputs' sizes and that the
            boxes in use are finite, and raise ``ValueError`` if not. The default, ``None``, checks
            on the CPU and not on a GPU, where the check reads values (a host sync). Unchecked,
            a non-finite box suppresses nothing and is suppressed by nothing.

    Returns:
        :class:`~gaussdraw.decode.nms.KeptBoxes`: ``indices`` (S, K) int64 into each problem's own
        boxes, best first, padded with -1, K = min(post_max_size, pre_max_size, Nmax); ``counts``.
        The (S, P, P/64) suppression bits of P = min(pre_max_size, Nmax) candidates are built in
        memory: pass ``pre_max_size`` for large problems.

    Example:
        >>> boxes = [torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.0], [0.2, 0.0, 4.0, 2.0, 0.1], [9.0, 0.0, 2.0, 2.0, 1.0]]),
        ...          torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])]
        >>> scores = [torch.tensor([0.7, 0.9, 0.8]), torch.tensor([0.5])]
        >>> kept = rotated_nms_batched(boxes, scores, 0.5)
        >>> kept.indices.tolist(), kept.counts.tolist()
        ([[1, 2, -1], [0, -1, -1]], [2, 1])
    """
    check_backend(backend)
    batch = batch_inputs({"boxes": boxes, "scores": scores}, ROTATED_FIELDS, counts)
    box_tensor, score_tensor, sizes = batch.tensors["boxes"], batch.tensors["scores"], batch.counts
    device = score_tensor.device
    num_problems, longest = score_tensor.shape
    if box_tensor.shape[1] != longest:
        raise ValueError(f"boxes must have shape ({num_problems}, {longest}, 5), one box per score; got "
                         f"{tuple(box_tensor.shape)}")
    _size(pre_max_size, "pre_max_size")
    _size(post_max_size, "post_max_size")
    thresholds = device_constant(_threshold_list(thresh, num_problems), torch.float32, device)  # nearest float32
    if num_problems and resolve_validate(validate, device):
        finite = box_tensor.isfinite().all(2) | ~batch.in_use()
        raise_first(batch.count_checks() + [(~finite, box_tensor, "boxes must be finite", longest)])
    candidates = longest if pre_max_size is None else min(pre_max_size, longest)
    size = candidates if post_max_size is None else min(post_max_size, candidates)
    order = stable_score_order(score_tensor, sizes)[:, :candidates]
    in_order = torch.gather(box_tensor, 1, order.unsqueeze(2).expand(num_problems, candidates, 5))
    geometry = box_geometry(in_order, torch.float64 if box_tensor.dtype == torch.float64 else torch.float32)
    used = sizes.clamp(0, candidates).to(torch.int64)
    kept, kept_counts = run(ROTATED_NMS, route(backend, device), geometry.contiguous(), order.contiguous(), used,
                            thresholds, size)
    return KeptBoxes(kept, kept_counts)


def rotated_nms(boxes: torch.Tensor, scores: torch.Tensor, thresh: float, *, pre_max_size: int | None = None,
                post_max_size: int | None = None, backend: str = "auto") -> torch.Tensor:
    """mmdet3d's ``nms_bev`` of one set of boxes: the (K,) int64 indices of the kept boxes, best
    first (see :func:`rotated_nms_batched` for the convention and a batched form). On a GPU the
    result's length is read from the device (one sync, as ``torchvision.ops.nms``);
    :func:`rotated_nms_batched` does not sync.

    Args:
        boxes: (N, 5) float (x_center, y_center, width, height, angle in radians).
        scores: (N,) float. Either may be a nested Python list of numbers (made a tensor of the
            default float dtype).
        thresh: IoU threshold.
        pre_max_size, post_max_size: as :func:`rotated_nms_batched`.

    Example:
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.0], [0.0, 0.0, 2.0, 4.0, 1.5708], [5.0, 0.0, 1.0, 1.0, 0.0]])
        >>> rotated_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
        [0, 2]
    """
    return one_set_kept(rotated_nms_batched, {"boxes": boxes, "scores": scores}, 5,
                        "(x_center, y_center, width, height, angle) of each box", "box", "", thresh=thresh,
                        pre_max_size=pre_max_size, post_max_size=post_max_size, backend=backend)

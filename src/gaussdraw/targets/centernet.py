"""CenterNet training targets: mmdet 3.x ``CenterNetHead.get_targets`` for a whole batch, in one call."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..checks import raise_first, resolve_validate
from ..dispatch import check_backend
from ..inputs import Batch, Field, batch_inputs
from ..ops.centernet_targets import (CENTERNET_TARGETS, centernet_box_mask, centernet_targets_planned,
                                     centernet_views)
from ..ragged import RaggedLike
from .common import cached, overlap, pair, positive_int, positive_number
from .plans import plan_key, planned, run_and_plan, tensors_of

FIELDS = (Field("bboxes", (4,), floating=True), Field("labels"))


class CenterNetTargets(NamedTuple):
    """What :func:`centernet_targets` returns; all float32 on the boxes' device."""

    heatmap: torch.Tensor
    """(B, C, H, W) Gaussian heatmaps (mmdet's ``center_heatmap_target``)."""
    wh: torch.Tensor
    """(B, 2, H, W) box width and height on the feature map at each box's center pixel."""
    offset: torch.Tensor
    """(B, 2, H, W) center minus truncated center at each box's center pixel."""
    weight: torch.Tensor
    """(B, 2, H, W) 1 at each box's center pixel (mmdet's ``wh_offset_target_weight``)."""
    avg_factor: torch.Tensor
    """0-d: max(1, number of heatmap pixels equal to 1)."""

    def to_mmdet(self) -> tuple[dict, torch.Tensor]:
        """mmdet's ``CenterNetHead.get_targets`` return value: ``(target_result, avg_factor)``."""
        return dict(center_heatmap_target=self.heatmap, wh_target=self.wh, offset_target=self.offset,
                    wh_offset_target_weight=self.weight), self.avg_factor


def centernet_targets(
    bboxes: RaggedLike,
    labels: RaggedLike,
    num_classes: int,
    feat_size: tuple[int, int],
    img_size: tuple[float, float],
    min_overlap: float = 0.3,
    *,
    counts: torch.Tensor | None = None,
    backend: str = "auto",
    validate: bool | None = None,
) -> CenterNetTargets:
    """CenterNet's training targets for a batch: mmdet 3.x ``CenterNetHead.get_targets``, in one call.

    For each box: center = (x1 + x2) / 2 * (W / img_w) (same for y) on the feature map,
    truncated toward zero; size = (x2 - x1) * (W / img_w), (y2 - y1) * (H / img_h);
    radius = max(0, int(:func:`gaussian_radius`\\ (h, w, min_overlap, formula="mmdet"))).
    The box draws its Gaussian into ``heatmap[b, label]`` (max-merged) and writes ``wh`` =
    size, ``offset`` = center - truncated center and ``weight`` = 1 at its center pixel.
    Where boxes of one sample share a center pixel, the later box's ``wh`` and
    ``offset`` are kept, whatever their classes, as mmdet writes in box order; this is
    deterministic on every backend. Arithmetic is mmdet's, in float32.

    On a GPU it runs in four launches (zero fill, boxes, draw, regression) with no host
    sync (unless ``validate=True``), so it can be captured in a CUDA graph.

    Args:
        bboxes: per-sample (n_b, 4) float boxes, (x1, y1, x2, y2) in input-image pixels:
            a list of tensors (or of nested Python lists of numbers), a ragged batch
            (``.tensor`` (B, T, 4), ``.sample_sizes``), or a padded (B, T, 4) tensor with
            ``counts``. Computed in float32.
        labels: per-sample (n_b,) int32/int64 class indices in [0, num_classes), in any
            of those forms.
        num_classes: C, the heatmap's channels.
        feat_size: (H, W) of the feature map.
        img_size: (img_h, img_w) of the input image (mmdet's ``img_shape[:2]``).
        min_overlap: the IoU of :func:`gaussian_radius`; mmdet uses 0.3.
        counts: (B,) boxes in use per sample, when ``bboxes`` and ``labels`` are padded tensors.
        backend: ``"auto"`` (Triton on CUDA tensors, torch on CPU), ``"triton"`` (on CPU
            tensors, in Triton's interpreter) or ``"torch"`` (any device; it syncs on a GPU).
        validate: check values first and raise ``ValueError`` naming the first bad box
            (sample, position, value): a coordinate that is not finite, x2 < x1 or
            y2 < y1, a label outside [0, C), a center outside the image, a box too large
            for a finite radius, counts that disagree with the inputs. The default,
            ``None``, checks on the CPU and not on a GPU, where the check costs a host sync
            (it reads the values) and ~100 µs. Unchecked, such boxes are skipped: they draw
            nothing and write nothing.

    Returns:
        :class:`CenterNetTargets` ``(heatmap, wh, offset, weight, avg_factor)``; its
        ``to_mmdet()`` gives mmdet's ``(dict(center_heatmap_target=..., wh_target=...,
        offset_target=..., wh_offset_target_weight=...), avg_factor)``. The outputs share
        one allocation.

    Example:
        >>> bboxes = [torch.tensor([[10.0, 20.0, 50.0, 80.0]]), torch.tensor([[0.0, 0.0, 30.0, 30.0]])]
        >>> labels = [torch.tensor([2]), torch.tensor([0])]
        >>> t = centernet_targets(bboxes, labels, num_classes=3, feat_size=(32, 32), img_size=(128, 128))
        >>> t.heatmap.shape, t.heatmap[0, 2, 12, 7].item(), t.avg_factor.item()
        (torch.Size([2, 3, 32, 32]), 1.0, 2.0)
        >>> t.wh[0, :, 12, 7].tolist(), t.offset[0, :, 12, 7].tolist()
        ([10.0, 15.0], [0.5, 0.5])
    """
    check_backend(backend)
    options = _checked_options(num_classes, feat_size, img_size, min_overlap)
    key = plan_key(options, backend, validate, (bboxes, labels), counts)
    plan = planned(key)
    if plan is not None:  # a repeated unchecked call of a planned layout
        (bboxes, labels), counts = tensors_of((bboxes, labels), counts)
        return CenterNetTargets(*plan(bboxes, labels, counts))
    num_classes, feat_h, feat_w, img_h, img_w, min_overlap = options
    batch = batch_inputs({"bboxes": bboxes, "labels": labels}, FIELDS, counts)
    boxes, labels, counts = batch.used("bboxes"), batch.used("labels"), batch.counts
    args = (boxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap)
    if resolve_validate(validate, boxes.device):
        _check_values(batch, *args)
    buffer = run_and_plan(key, batch, backend, CENTERNET_TARGETS, centernet_targets_planned, args)
    num_samples = labels.shape[0]
    return CenterNetTargets(*centernet_views(buffer, num_samples, num_classes, feat_h, feat_w))


@cached
def _checked_options(num_classes, feat_size, img_size, min_overlap):
    """(C, H, W, img_h, img_w, min_overlap), checked."""
    num_classes = positive_int(num_classes, "num_classes")
    feat_h, feat_w = pair(feat_size, "feat_size", positive_int, "(H, W) of ints > 0")
    img_h, img_w = pair(img_size, "img_size", positive_number, "(img_h, img_w) of numbers > 0")
    return num_classes, feat_h, feat_w, img_h, img_w, overlap(min_overlap, "min_overlap")


def _check_values(batch: Batch, boxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap):
    """Raise for bad counts, or for the first box in use that the op would skip (one host sync on a GPU)."""
    in_use = batch.in_use()
    box = boxes.float()
    x1, y1, x2, y2 = box.unbind(-1)
    drawn = centernet_box_mask(boxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap)
    finite = box.isfinite().all(-1)
    ordered = (x2 >= x1) & (y2 >= y1)
    known = (labels >= 0) & (labels < num_classes)
    cx = (x1 + x2) * (feat_w / img_w) / 2
    cy = (y1 + y2) * (feat_h / img_h) / 2
    inside = (cx > -1) & (cx < feat_w) & (cy > -1) & (cy < feat_h)
    raise_first(
        batch.count_checks() + [
            (in_use & ~finite, box, "bboxes must be finite"),
            (in_use & ~ordered, box, "bboxes must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1"),
            (in_use & ~known, labels, f"labels must be in [0, {num_classes}) for num_classes={num_classes}"),
            (in_use & ~inside, box,
             f"bbox centers must lie in the image: scaled to the {feat_w}x{feat_h} feature map and truncated, "
             f"in [0, {feat_w}) x [0, {feat_h})"),
            (in_use & ~drawn, box, "bboxes are too large for a finite Gaussian radius"),
        ],
        per_sample=labels.shape[1],
    )

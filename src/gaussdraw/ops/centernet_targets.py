"""The CenterNet target op: mmdet 3.x ``CenterNetHead.get_targets`` for a batch, in one buffer.

``gaussdraw::centernet_targets`` takes padded boxes (B, T, 4) xyxy in input-image pixels,
labels (B, T) and optional counts (B,), and returns one float32 buffer holding, in order:
the heatmap (B, C, H, W), ``wh``, ``offset`` and ``weight`` (B, 2, H, W) each,
``avg_factor`` (1 value) and 4 int32 counters (see :func:`centernet_views`).

Per box (mmdet's arithmetic, float32): center = (x1 + x2) * (W / img_w) / 2 (same for y),
truncated toward zero; size = (x2 - x1) * (W / img_w); radius = max(0, int(mmdet
``gaussian_radius``(size, min_overlap))). The box draws its Gaussian into plane (b, label)
and, if it is the last box of its sample on that pixel, writes ``wh`` = size, ``offset``
= center - truncated center and ``weight`` = 1 there. ``avg_factor`` = max(1, number of
heatmap pixels equal to 1).

A box is skipped if it is padding, if a coordinate is not finite, if x2 < x1 or y2 < y1,
if its truncated center lies outside the map, if its label is outside [0, C), or if its
size is too large for a finite radius. (The public function raises for those when it
validates.)

Triton implementation (CUDA, or the interpreter on CPU), in three launches after one
zero fill:

1. boxes kernel: each box's center and radius into a scratch grid for the draw; marks
   the pixel's owner (largest box index, an integer ``atomic_max`` into the second
   weight channel) and sets its center pixel to 1 with an exchange that counts the
   distinct center pixels, which are the heatmap's ones unless a radius is so large
   (>= 512) that pixels beside a center round to 1 too;
2. the draw op's kernel on the scratch grid;
3. regress kernel: each owner writes its ``wh``, ``offset`` and ``weight``; where a radius
   >= 512 was seen, the programs count the heatmap's ones instead; the last program to
   finish writes ``avg_factor``.

The torch implementation (CPU, or any device) computes the same with vectorized ops.
"""

from __future__ import annotations

import functools

import torch

from ..dispatch import Implementations
from ..radius import mmdet_radius as mmdet_radius_torch
from ._box_math import MAX_RADIUS, radius_arguments
from ._triton import check_device, next_power_of_2
from .draw_gaussians import draw_gaussians_torch, launch as launch_draw

# A radius from which a Gaussian can round to 1 beside its center (exp(-1 / (2 sigma^2))
# is below 1 - 1e-5 for smaller ones), so that the heatmap's ones are not only centers.
ONES_BESIDE_CENTER_RADIUS = 512
_COUNTERS = 4  # distinct centers, radius flag, ones counted, finished programs


def centernet_layout(num_samples: int, num_classes: int, height: int, width: int) -> dict:
    """Offsets (float32 elements) of each output in the buffer, and its total size."""
    heat = num_samples * num_classes * height * width
    plane = num_samples * 2 * height * width
    return dict(heatmap=0, wh=heat, offset=heat + plane, weight=heat + 2 * plane, avg_factor=heat + 3 * plane,
                counters=heat + 3 * plane + 1, total=heat + 3 * plane + 1 + _COUNTERS)


_cached_layout = functools.lru_cache(maxsize=256)(centernet_layout)  # for eager calls (plain ints)


def centernet_views(buffer: torch.Tensor, num_samples: int, num_classes: int, height: int, width: int):
    """(heatmap, wh, offset, weight, avg_factor) views of the op's buffer."""
    carving = _carving if torch.compiler.is_compiling() else _cached_carving  # traced: sizes may be symbolic
    return _carve(buffer, *carving(num_samples, num_classes, height, width))


def _carving(num_samples, num_classes, height, width):
    """(piece sizes, heatmap shape, (3, B, 2, H, W)) of the buffer's views."""
    at = centernet_layout(num_samples, num_classes, height, width)
    sizes = [at["wh"], at["avg_factor"] - at["wh"], 1, at["total"] - at["avg_factor"] - 1]
    return sizes, (num_samples, num_classes, height, width), (3, num_samples, 2, height, width)


_cached_carving = functools.lru_cache(maxsize=256)(_carving)


def _carve(buffer, sizes, heatmap_shape, planes_shape):
    heatmap, planes, avg_factor, _ = buffer.split_with_sizes(sizes)
    return (heatmap.view(heatmap_shape), *planes.view(planes_shape).unbind(0), avg_factor.view(()))


# ----------------------------------------------------------------------------
# Triton launch (the kernels: kernels/centernet_targets.py)
# ----------------------------------------------------------------------------

_NO_FUSION = {"enable_fp_fusion": False}


def centernet_targets_triton(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap):
    """Triton implementation of the op (module docstring)."""
    return _launch_all(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap, False)[0]


def centernet_targets_planned(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap):
    """The Triton implementation, and a :class:`CenterNetPlan` that repeats its launches for inputs of
    the same layout (None where a launch did not take the direct CUDA path)."""
    return _launch_all(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap, True)


class CenterNetPlan:
    """A call's allocation and launches, repeated for new (boxes, labels, counts) of its layout:
    returns the outputs' views (:func:`centernet_views`)."""

    __slots__ = ("total", "device", "scratch_shape", "launches", "carving")

    def __init__(self, total, device, scratch_shape, launches, carving):
        self.total, self.device, self.scratch_shape = total, device, scratch_shape
        self.launches, self.carving = launches, carving

    def __call__(self, bboxes, labels, counts):
        buffer = torch.zeros(self.total, dtype=torch.float32, device=self.device)
        scratch = torch.empty(self.scratch_shape, dtype=torch.int32, device=self.device)
        _, _, radii, scratch_labels = scratch.unbind(-1)
        boxes_launch, draw_launch, regress_launch = self.launches
        boxes_launch(bboxes, labels, counts, scratch, buffer)
        draw_launch(buffer, scratch, radii, scratch_labels, radii)
        regress_launch(bboxes, labels, counts, buffer)
        return _carve(buffer, *self.carving)


_BOXES_RELAUNCHED = ("boxes_ptr", "labels_ptr", "counts_ptr", "scratch_ptr", "out_ptr")
_REGRESS_RELAUNCHED = ("boxes_ptr", "labels_ptr", "counts_ptr", "out_ptr")


def _launch_all(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap, bind):
    """(buffer, plan): the op's launches; with ``bind`` and a direct launch of each kernel with counts,
    a :class:`CenterNetPlan` of them, else None."""
    check_device(bboxes.device)
    from .kernels import centernet_targets as kernels
    from .launch import launch

    num_samples, boxes_per_sample = labels.shape
    at = _cached_layout(num_samples, num_classes, feat_h, feat_w)
    buffer = torch.zeros(at["total"], dtype=torch.float32, device=bboxes.device)
    if num_samples * boxes_per_sample == 0 or at["wh"] == 0:
        buffer[at["avg_factor"]] = 1.0
        return buffer, None
    block = min(128, max(16, next_power_of_2(boxes_per_sample)))
    blocks_per_sample = -(-boxes_per_sample // block)
    grid = (num_samples * blocks_per_sample,)
    scratch = torch.empty((num_samples, boxes_per_sample, 4), dtype=torch.int32, device=bboxes.device)
    _, _, radii, scratch_labels = scratch.unbind(-1)
    counts_arg = counts if counts is not None else labels
    strides = dict(stride_bb=bboxes.stride(0), stride_bt=bboxes.stride(1), stride_bc=bboxes.stride(2),
                   stride_lb=labels.stride(0), stride_lt=labels.stride(1),
                   stride_nb=counts.stride(0) if counts is not None else 0)
    # both kernels' boxes: the inputs, their sizes and strides, the scales to the feature map
    boxes = dict(boxes_ptr=bboxes, labels_ptr=labels, counts_ptr=counts_arg, boxes_per_sample=boxes_per_sample,
                 blocks_per_sample=blocks_per_sample, num_classes=num_classes, feat_h=feat_h, feat_w=feat_w,
                 **strides, width_ratio=feat_w / img_w, height_ratio=feat_h / img_h,
                 HAS_COUNTS=counts is not None, BLOCK=block)
    # the kernels specialize on dtypes, and on whether every integer argument fits in 32 bits
    key = (bboxes.dtype, labels.dtype, counts_arg.dtype, at["total"] < 2**31 and max(strides.values()) < 2**31)
    bind = bind and counts is not None
    launches = (
        launch(kernels.centernet_boxes_kernel, grid, num_warps=4, specialization=key, compile_options=_NO_FUSION,
               relaunch=_BOXES_RELAUNCHED if bind else (), **boxes, scratch_ptr=scratch, out_ptr=buffer,
               weight_at=at["weight"], counters_at=at["counters"], **radius_arguments(min_overlap)),
        launch_draw(buffer, plane_stride=feat_h * feat_w, num_planes=num_samples * num_classes,
                    centers=scratch, centers_strides=scratch.stride(), radii=radii, radii_strides=radii.stride(),
                    index=scratch_labels, index_strides=scratch_labels.stride(), num_samples=num_samples,
                    boxes_per_sample=boxes_per_sample, planes_per_sample=num_classes, sigma_factor=6.0,
                    k_scale=1.0, plane_shape=(feat_h, feat_w), bind=bind, keep_nan=False),
        launch(kernels.centernet_regress_kernel, grid, num_warps=4, specialization=key, compile_options=_NO_FUSION,
               relaunch=_REGRESS_RELAUNCHED if bind else (), **boxes, out_ptr=buffer, wh_at=at["wh"],
               offset_at=at["offset"], weight_at=at["weight"], avg_factor_at=at["avg_factor"],
               counters_at=at["counters"], heat_numel=at["wh"], COUNT_BLOCK=1024),
    )
    if not bind or any(relaunch is None for relaunch in launches):
        return buffer, None
    carving = _cached_carving(num_samples, num_classes, feat_h, feat_w)
    return buffer, CenterNetPlan(at["total"], bboxes.device, tuple(scratch.shape), launches, carving)


# ----------------------------------------------------------------------------
# torch implementation
# ----------------------------------------------------------------------------


def _box_quantities(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap):
    """(B, T) center, size and radius (float32) of every box, and the mask of those that draw."""
    box = bboxes.float()
    width_ratio, height_ratio = feat_w / img_w, feat_h / img_h
    x1, y1, x2, y2 = box.unbind(-1)
    cx = (x1 + x2) * width_ratio / 2
    cy = (y1 + y2) * height_ratio / 2
    w = (x2 - x1) * width_ratio
    h = (y2 - y1) * height_ratio
    valid = (labels >= 0) & (labels < num_classes)
    if counts is not None:
        valid &= torch.arange(labels.shape[1], device=labels.device) < counts.unsqueeze(1)
    valid &= (cx > -1) & (cx < feat_w) & (cy > -1) & (cy < feat_h) & (w >= 0) & (h >= 0)
    valid &= w.isfinite() & h.isfinite()
    radius = mmdet_radius_torch(h, w, min_overlap)
    valid &= radius.isfinite()
    return cx, cy, w, h, radius, valid


def centernet_box_mask(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap):
    """(B, T) bool: the boxes that draw (no host sync). Used by the public function's checks."""
    return _box_quantities(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap)[-1]


def centernet_boxes_torch(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap):
    """Per-box quantities of the boxes that are drawn, in (sample, position) order:
    (sample, label, cx, cy (float), cx_int, cy_int, w, h, radius (int64))."""
    num_samples, boxes_per_sample = labels.shape
    cx, cy, w, h, radius, valid = _box_quantities(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w,
                                                  min_overlap)
    sample = torch.arange(num_samples, device=labels.device).unsqueeze(1).expand(num_samples, boxes_per_sample)
    cx, cy, w, h, radius = cx[valid], cy[valid], w[valid], h[valid], radius[valid]
    radius = radius.clamp(0, MAX_RADIUS).long()
    return sample[valid], labels[valid].long(), cx, cy, cx.long(), cy.long(), w, h, radius


def centernet_targets_torch(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap):
    """Vectorized torch implementation of the op (no loop over boxes)."""
    num_samples = labels.shape[0]
    at = centernet_layout(num_samples, num_classes, feat_h, feat_w)
    buffer = torch.zeros(at["total"], dtype=torch.float32, device=bboxes.device)
    heatmap, wh, offset, weight, avg_factor = centernet_views(buffer, num_samples, num_classes, feat_h, feat_w)
    sample, label, cx, cy, cx_int, cy_int, w, h, radius = centernet_boxes_torch(
        bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap)
    if sample.numel() == 0:
        avg_factor.fill_(1.0)
        return buffer
    plane = sample * num_classes + label
    draw_gaussians_torch(heatmap.view(-1, feat_h, feat_w), torch.stack([cx_int, cy_int], 1).unsqueeze(0),
                         radius.unsqueeze(0), plane.unsqueeze(0), None, 0, 6.0, 1.0)

    # the last box on each pixel of a sample wins: boxes are in (sample, position) order,
    # and a stable sort keeps that order among boxes of one pixel
    pixel = cy_int * feat_w + cx_int
    sorted_pixel, order = torch.sort(sample * (feat_h * feat_w) + pixel, stable=True)
    last = torch.ones_like(sorted_pixel, dtype=torch.bool)
    last[:-1] = sorted_pixel[1:] != sorted_pixel[:-1]
    win = order[last]
    b, p = sample[win], pixel[win]
    for target, values in ((wh, (w, h)), (offset, (cx - cx_int, cy - cy_int)), (weight, (1.0, 1.0))):
        flat = target.view(num_samples, 2, feat_h * feat_w)
        for channel, value in enumerate(values):
            flat[b, channel, p] = value[win] if isinstance(value, torch.Tensor) else value

    if bool((radius >= ONES_BESIDE_CENTER_RADIUS).any()):
        ones = heatmap.eq(1).sum()
    else:
        ones = torch.unique(plane * (feat_h * feat_w) + pixel).numel()
    avg_factor.fill_(max(1, int(ones)))
    return buffer


# ----------------------------------------------------------------------------
# torch.library registration
# ----------------------------------------------------------------------------


@torch.library.custom_op("gaussdraw::centernet_targets", mutates_args=())
def centernet_targets_op(
    bboxes: torch.Tensor,
    labels: torch.Tensor,
    counts: torch.Tensor | None,
    num_classes: int,
    feat_h: int,
    feat_w: int,
    img_h: float,
    img_w: float,
    min_overlap: float,
    use_triton: bool,
) -> torch.Tensor:
    """The op as torch.compile and the dispatcher see it: the Triton kernels or the torch
    kernels, as ``use_triton`` says (:mod:`gaussdraw.dispatch`)."""
    return CENTERNET_TARGETS.pick(use_triton)(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w,
                                              min_overlap)


@centernet_targets_op.register_fake
def _centernet_targets_fake(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap,
                            use_triton):
    total = centernet_layout(labels.shape[0], num_classes, feat_h, feat_w)["total"]
    return bboxes.new_empty(total, dtype=torch.float32)


CENTERNET_TARGETS = Implementations(triton=centernet_targets_triton, torch=centernet_targets_torch,
                                    registered=centernet_targets_op)

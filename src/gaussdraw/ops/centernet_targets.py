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
from ._box_math import MAX_RADIUS, is_finite, mmdet_radius, radius_constants, truncated_radius
from ._triton import Launcher, check_device, jit, tl, triton
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
    at = centernet_layout(num_samples, num_classes, height, width)
    heatmap = buffer[: at["wh"]].view(num_samples, num_classes, height, width)
    wh, offset, weight = buffer[at["wh"]: at["avg_factor"]].view(3, num_samples, 2, height, width).unbind(0)
    return heatmap, wh, offset, weight, buffer[at["avg_factor"]]


# ----------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------

_INT_ARGS = ["boxes_per_sample", "blocks_per_sample", "num_classes", "feat_h", "feat_w",
             "stride_bb", "stride_bt", "stride_bc", "stride_lb", "stride_lt", "stride_nb",
             "wh_at", "offset_at", "weight_at", "avg_factor_at", "counters_at", "heat_numel"]
_POINTER_ARGS = ["boxes_ptr", "labels_ptr", "counts_ptr", "scratch_ptr", "out_ptr"]


@jit
def _box_geometry(
    boxes_ptr, labels_ptr, counts_ptr,
    boxes_per_sample, blocks_per_sample, num_classes, feat_h, feat_w,
    stride_bb, stride_bt, stride_bc, stride_lb, stride_lt, stride_nb,
    width_ratio, height_ratio, HAS_COUNTS: tl.constexpr, BLOCK: tl.constexpr,
):
    """This program's boxes: sample, positions, whether each is drawn, label, float center and size."""
    pid = tl.program_id(0)
    b = (pid // blocks_per_sample).to(tl.int64)
    t = (pid % blocks_per_sample) * BLOCK + tl.arange(0, BLOCK)
    in_grid = t < boxes_per_sample
    used = in_grid
    if HAS_COUNTS:
        used = used & (t < tl.load(counts_ptr + b * stride_nb))
    label = tl.load(labels_ptr + b * stride_lb + t * stride_lt, mask=used, other=-1)
    p_box = boxes_ptr + b * stride_bb + t * stride_bt
    x1 = tl.load(p_box, mask=used, other=0.0).to(tl.float32)
    y1 = tl.load(p_box + stride_bc, mask=used, other=0.0).to(tl.float32)
    x2 = tl.load(p_box + 2 * stride_bc, mask=used, other=0.0).to(tl.float32)
    y2 = tl.load(p_box + 3 * stride_bc, mask=used, other=0.0).to(tl.float32)
    cx = (x1 + x2) * width_ratio * 0.5
    cy = (y1 + y2) * height_ratio * 0.5
    w = (x2 - x1) * width_ratio
    h = (y2 - y1) * height_ratio
    valid = used & (label >= 0) & (label < num_classes)
    valid = valid & (cx > -1.0) & (cx < feat_w) & (cy > -1.0) & (cy < feat_h)
    valid = valid & (w >= 0.0) & (h >= 0.0) & is_finite(w) & is_finite(h)
    return b, t, in_grid, valid, label, cx, cy, w, h


@jit(do_not_specialize=_INT_ARGS, do_not_specialize_on_alignment=_POINTER_ARGS)
def _centernet_boxes_kernel(
    boxes_ptr, labels_ptr, counts_ptr, scratch_ptr, out_ptr,
    boxes_per_sample, blocks_per_sample, num_classes, feat_h, feat_w,
    stride_bb, stride_bt, stride_bc, stride_lb, stride_lt, stride_nb, weight_at, counters_at,
    width_ratio, height_ratio, one_minus, one_plus, minus_two_o, o_minus_one, sixteen_o, eight_o,
    HAS_COUNTS: tl.constexpr, BLOCK: tl.constexpr,
):
    # One program = BLOCK consecutive boxes of one sample. out_ptr: the op's buffer (float32).
    b, t, in_grid, valid, label, cx, cy, w, h = _box_geometry(
        boxes_ptr, labels_ptr, counts_ptr, boxes_per_sample, blocks_per_sample, num_classes, feat_h, feat_w,
        stride_bb, stride_bt, stride_bc, stride_lb, stride_lt, stride_nb, width_ratio, height_ratio,
        HAS_COUNTS, BLOCK)
    radius = mmdet_radius(h, w, one_minus, one_plus, minus_two_o, o_minus_one, sixteen_o, eight_o)
    valid = valid & is_finite(radius)
    radius_int = truncated_radius(radius, valid, 0)
    cx_int = tl.where(valid, cx, 0.0).to(tl.int32)
    cy_int = tl.where(valid, cy, 0.0).to(tl.int32)
    label = tl.where(valid, label, 0).to(tl.int32)

    # the draw op's boxes: (x, y, radius or -1 to skip, label)
    p_scratch = scratch_ptr + (b * boxes_per_sample + t) * 4
    tl.store(p_scratch, cx_int, mask=in_grid)
    tl.store(p_scratch + 1, cy_int, mask=in_grid)
    tl.store(p_scratch + 2, radius_int, mask=in_grid)
    tl.store(p_scratch + 3, label, mask=in_grid)

    plane_size = feat_h.to(tl.int64) * feat_w
    pixel = cy_int.to(tl.int64) * feat_w + cx_int
    # the pixel's owner: its last box (the second weight channel holds t + 1 until the regress kernel)
    out_bits = out_ptr.to(tl.pointer_type(tl.int32))
    p_owner = out_bits + weight_at + (b * 2 + 1) * plane_size + pixel
    tl.atomic_max(p_owner, (t + 1).to(tl.int32), mask=valid, sem="relaxed")
    # the center pixel is 1 after the draw in any case: set it now, counting pixels set first
    p_center = out_bits + (b * num_classes + label) * plane_size + pixel
    old = tl.atomic_xchg(p_center, 0x3F800000, mask=valid, sem="relaxed")  # the bits of 1.0f
    counters = out_bits + counters_at
    tl.atomic_add(counters, tl.sum((valid & (old != 0x3F800000)).to(tl.int32), 0), sem="relaxed")
    tl.atomic_max(counters + 1, tl.max((valid & (radius_int >= 512)).to(tl.int32), 0), sem="relaxed")


@jit(do_not_specialize=_INT_ARGS, do_not_specialize_on_alignment=_POINTER_ARGS)
def _centernet_regress_kernel(
    boxes_ptr, labels_ptr, counts_ptr, out_ptr,
    boxes_per_sample, blocks_per_sample, num_classes, feat_h, feat_w,
    stride_bb, stride_bt, stride_bc, stride_lb, stride_lt, stride_nb,
    wh_at, offset_at, weight_at, avg_factor_at, counters_at, heat_numel, width_ratio, height_ratio,
    HAS_COUNTS: tl.constexpr, BLOCK: tl.constexpr, COUNT_BLOCK: tl.constexpr,
):
    # One program = the same BLOCK boxes as in the boxes kernel.
    b, t, in_grid, valid, label, cx, cy, w, h = _box_geometry(
        boxes_ptr, labels_ptr, counts_ptr, boxes_per_sample, blocks_per_sample, num_classes, feat_h, feat_w,
        stride_bb, stride_bt, stride_bc, stride_lb, stride_lt, stride_nb, width_ratio, height_ratio,
        HAS_COUNTS, BLOCK)
    cx_int = tl.where(valid, cx, 0.0).to(tl.int32)
    cy_int = tl.where(valid, cy, 0.0).to(tl.int32)
    plane_size = feat_h.to(tl.int64) * feat_w
    pixel = (b * 2) * plane_size + cy_int.to(tl.int64) * feat_w + cx_int
    # owners hold t + 1 (a box skipped for its radius marked no owner); another program's
    # owner may already have written 1.0 there, which is no box index
    out_bits = out_ptr.to(tl.pointer_type(tl.int32))
    owner = tl.load(out_bits + weight_at + plane_size + pixel, mask=valid, other=0)
    wins = valid & (owner == t + 1)
    tl.store(out_ptr + wh_at + pixel, w, mask=wins)
    tl.store(out_ptr + wh_at + plane_size + pixel, h, mask=wins)
    tl.store(out_ptr + offset_at + pixel, cx - cx_int.to(tl.float32), mask=wins)
    tl.store(out_ptr + offset_at + plane_size + pixel, cy - cy_int.to(tl.float32), mask=wins)
    tl.store(out_ptr + weight_at + pixel, 1.0, mask=wins)
    tl.store(out_ptr + weight_at + plane_size + pixel, 1.0, mask=wins)

    # avg_factor = max(1, heatmap pixels equal to 1): the distinct centers, or a count
    pid = tl.program_id(0)
    programs = tl.num_programs(0)
    counters = out_bits + counters_at
    large_radius = tl.load(counters + 1)
    if large_radius != 0:
        ones = tl.zeros([COUNT_BLOCK], dtype=tl.int32)
        for start in range(pid.to(tl.int64) * COUNT_BLOCK, heat_numel, programs * COUNT_BLOCK):
            o = start + tl.arange(0, COUNT_BLOCK)
            ones += (tl.load(out_ptr + o, mask=o < heat_numel, other=0.0) == 1.0).to(tl.int32)
        tl.atomic_add(counters + 2, tl.sum(ones, 0), sem="relaxed")
    finished = tl.atomic_add(counters + 3, 1, sem="acq_rel")
    if finished == programs - 1:  # the last program: every count is in
        distinct = tl.atomic_add(counters, 0, sem="acquire")
        counted = tl.atomic_add(counters + 2, 0, sem="acquire")
        ones_total = tl.where(large_radius != 0, counted, distinct)
        tl.store(out_ptr + avg_factor_at, tl.maximum(ones_total, 1).to(tl.float32))


_launch_boxes = Launcher(_centernet_boxes_kernel)
_launch_regress = Launcher(_centernet_regress_kernel)
_NO_FUSION = {"enable_fp_fusion": False}


def centernet_targets_triton(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap):
    """Triton implementation of the op (module docstring)."""
    check_device(bboxes.device)
    num_samples, boxes_per_sample = labels.shape
    at = _cached_layout(num_samples, num_classes, feat_h, feat_w)
    buffer = torch.zeros(at["total"], dtype=torch.float32, device=bboxes.device)
    if num_samples * boxes_per_sample == 0 or at["wh"] == 0:
        buffer[at["avg_factor"]] = 1.0
        return buffer
    block = min(128, max(16, triton.next_power_of_2(boxes_per_sample)))
    blocks_per_sample = -(-boxes_per_sample // block)
    grid = (num_samples * blocks_per_sample,)
    scratch = torch.empty((num_samples, boxes_per_sample, 4), dtype=torch.int32, device=bboxes.device)
    _, _, radii, scratch_labels = scratch.unbind(-1)
    counts_arg = counts if counts is not None else labels
    strides = (*bboxes.stride(), *labels.stride(), counts.stride(0) if counts is not None else 0)
    geometry = (boxes_per_sample, blocks_per_sample, num_classes, feat_h, feat_w, *strides)
    ratios = (feat_w / img_w, feat_h / img_h)
    # the kernels specialize on dtypes, and on whether every integer argument fits in 32 bits
    key = (bboxes.dtype, labels.dtype, counts_arg.dtype, at["total"] < 2**31 and max(strides) < 2**31)
    constexprs = dict(HAS_COUNTS=counts is not None, BLOCK=block)

    _launch_boxes(grid, (bboxes, labels, counts_arg, scratch, buffer, *geometry, at["weight"], at["counters"],
                         *ratios, *radius_constants(min_overlap)),
                  constexprs, num_warps=4, specialization=key, options=_NO_FUSION)
    launch_draw(buffer, feat_h * feat_w, num_samples * num_classes,
                scratch, scratch.stride(), radii, radii.stride(), scratch_labels, scratch_labels.stride(), None, 0,
                num_samples, boxes_per_sample, num_classes, 6.0, 1.0, plane_shape=(feat_h, feat_w), keep_nan=False)
    _launch_regress(grid, (bboxes, labels, counts_arg, buffer, *geometry, at["wh"], at["offset"], at["weight"],
                           at["avg_factor"], at["counters"], at["wh"], *ratios),
                    dict(constexprs, COUNT_BLOCK=1024), num_warps=4, specialization=key, options=_NO_FUSION)
    return buffer


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
    (sample, label, cx, cy (float), cx_int, cy_int, w, h, radius (int64)), and the (B, T)
    mask of those boxes."""
    num_samples, boxes_per_sample = labels.shape
    cx, cy, w, h, radius, valid = _box_quantities(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w,
                                                  min_overlap)
    sample = torch.arange(num_samples, device=labels.device).unsqueeze(1).expand(num_samples, boxes_per_sample)
    cx, cy, w, h, radius = cx[valid], cy[valid], w[valid], h[valid], radius[valid]
    radius = radius.clamp(0, MAX_RADIUS).long()
    return (sample[valid], labels[valid].long(), cx, cy, cx.long(), cy.long(), w, h, radius), valid


def centernet_targets_torch(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap):
    """Vectorized torch implementation of the op (no loop over boxes)."""
    num_samples = labels.shape[0]
    at = centernet_layout(num_samples, num_classes, feat_h, feat_w)
    buffer = torch.zeros(at["total"], dtype=torch.float32, device=bboxes.device)
    heatmap, wh, offset, weight, avg_factor = centernet_views(buffer, num_samples, num_classes, feat_h, feat_w)
    (sample, label, cx, cy, cx_int, cy_int, w, h, radius), _ = centernet_boxes_torch(
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
    return CENTERNET_TARGETS.pick(use_triton)(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap)


@centernet_targets_op.register_fake
def _centernet_targets_fake(bboxes, labels, counts, num_classes, feat_h, feat_w, img_h, img_w, min_overlap,
                            use_triton):
    total = centernet_layout(labels.shape[0], num_classes, feat_h, feat_w)["total"]
    return bboxes.new_empty(total, dtype=torch.float32)


CENTERNET_TARGETS = Implementations(triton=centernet_targets_triton, torch=centernet_targets_torch,
                                    registered=centernet_targets_op)

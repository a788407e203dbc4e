"""The CenterNet target kernels: boxes (centers, radii, owners, center pixels) and regress
(``wh``, ``offset``, ``weight``, ``avg_factor``); see :mod:`gaussdraw.ops.centernet_targets`."""

from __future__ import annotations

import triton
import triton.language as tl

from .common import is_finite, mmdet_radius, sample_block, truncated_radius

INT_ARGS = ["boxes_per_sample", "blocks_per_sample", "num_classes", "feat_h", "feat_w",
            "stride_bb", "stride_bt", "stride_bc", "stride_lb", "stride_lt", "stride_nb",
            "wh_at", "offset_at", "weight_at", "avg_factor_at", "counters_at", "heat_numel"]
POINTER_ARGS = ["boxes_ptr", "labels_ptr", "counts_ptr", "scratch_ptr", "out_ptr"]


@triton.jit
def _box_geometry(
    boxes_ptr, labels_ptr, counts_ptr,
    boxes_per_sample, blocks_per_sample, num_classes, feat_h, feat_w,
    stride_bb, stride_bt, stride_bc, stride_lb, stride_lt, stride_nb,
    width_ratio, height_ratio, HAS_COUNTS: tl.constexpr, BLOCK: tl.constexpr,
):
    """This program's boxes: sample, positions, whether each is drawn, label, float center and size."""
    b, t = sample_block(blocks_per_sample, BLOCK)
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


@triton.jit(do_not_specialize=INT_ARGS, do_not_specialize_on_alignment=POINTER_ARGS)
def centernet_boxes_kernel(
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


@triton.jit(do_not_specialize=INT_ARGS, do_not_specialize_on_alignment=POINTER_ARGS)
def centernet_regress_kernel(
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

"""The CenterPoint target kernel: each box's slot, outputs and draw parameters; see
:mod:`gaussdraw.ops.centerpoint_targets`."""

from __future__ import annotations

import triton
import triton.language as tl

from .common import cornernet_radius, is_finite, sample_block, truncated_radius

INT_ARGS = ["num_samples", "boxes_per_sample", "blocks_per_sample", "num_labels", "max_objs", "feat_h", "feat_w",
            "min_radius", "stride_bb", "stride_bt", "stride_bc", "stride_lb", "stride_lt", "stride_nb",
            "anno_at", "ind_at", "mask_at"]
POINTER_ARGS = ["boxes_ptr", "labels_ptr", "counts_ptr", "table_ptr", "scratch_ptr", "out_ptr"]


@triton.jit(do_not_specialize=INT_ARGS, do_not_specialize_on_alignment=POINTER_ARGS)
def centerpoint_assign_kernel(
    boxes_ptr, labels_ptr, counts_ptr, table_ptr, scratch_ptr, out_ptr,
    num_samples, boxes_per_sample, blocks_per_sample, num_labels, max_objs, feat_h, feat_w, min_radius,
    stride_bb, stride_bt, stride_bc, stride_lb, stride_lt, stride_nb, anno_at, ind_at, mask_at,
    range_x, range_y, voxel_x, voxel_y, out_size_factor,
    one_minus, one_plus, minus_two_o, o_minus_one, sixteen_o,
    HAS_COUNTS: tl.constexpr, HAS_VELOCITY: tl.constexpr, NORM_BBOX: tl.constexpr, COLUMNS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # One program = BLOCK consecutive boxes of one sample: their slots, outputs and draw parameters.
    # out_ptr: the op's buffer (bytes); *_at: byte offsets of the outputs in it.
    b, t = sample_block(blocks_per_sample, BLOCK)
    in_grid = t < boxes_per_sample
    count = boxes_per_sample
    if HAS_COUNTS:
        count = tl.minimum(tl.load(counts_ptr + b * stride_nb).to(tl.int32), boxes_per_sample)
    used = t < count
    label = tl.load(labels_ptr + b * stride_lb + t * stride_lt, mask=used, other=-1).to(tl.int32)
    known = used & (label >= 0) & (label < num_labels)
    label = tl.where(known, label, -1)
    p_table = table_ptr + tl.where(known, label, 0) * 5
    task = tl.load(p_table, mask=known, other=0)
    klass = tl.load(p_table + 1, mask=known, other=0)
    first_label = tl.load(p_table + 2, mask=known, other=0)
    classes_before = tl.load(p_table + 3, mask=known, other=0)  # heatmap planes before the task's (per sample)
    task_classes = tl.load(p_table + 4, mask=known, other=1)

    # slot = boxes of the sample before this one in its task's order: a smaller label of the
    # same task, or the same label at an earlier position
    slot = tl.zeros([BLOCK], dtype=tl.int32)
    for start in range(0, count, BLOCK):
        i = start + tl.arange(0, BLOCK)
        other = tl.load(labels_ptr + b * stride_lb + i * stride_lt, mask=i < count, other=-1).to(tl.int32)
        earlier = ((other[None, :] >= first_label[:, None]) & (other[None, :] < label[:, None])) | (
            (other[None, :] == label[:, None]) & (i[None, :] < t[:, None]))
        slot += tl.sum(earlier.to(tl.int32), 1)
    considered = known & (slot < max_objs)

    p_box = boxes_ptr + b * stride_bb + t * stride_bt
    x = tl.load(p_box, mask=considered, other=0.0).to(tl.float32)
    y = tl.load(p_box + stride_bc, mask=considered, other=0.0).to(tl.float32)
    z = tl.load(p_box + 2 * stride_bc, mask=considered, other=0.0).to(tl.float32)
    dx = tl.load(p_box + 3 * stride_bc, mask=considered, other=0.0).to(tl.float32)
    dy = tl.load(p_box + 4 * stride_bc, mask=considered, other=0.0).to(tl.float32)
    dz = tl.load(p_box + 5 * stride_bc, mask=considered, other=1.0).to(tl.float32)
    yaw = tl.load(p_box + 6 * stride_bc, mask=considered, other=0.0).to(tl.float32)
    length = tl.div_rn(tl.div_rn(dx, voxel_x), out_size_factor)
    width = tl.div_rn(tl.div_rn(dy, voxel_y), out_size_factor)
    coor_x = tl.div_rn(tl.div_rn(x - range_x, voxel_x), out_size_factor)
    coor_y = tl.div_rn(tl.div_rn(y - range_y, voxel_y), out_size_factor)
    radius = cornernet_radius(width, length, one_minus, one_plus, minus_two_o, o_minus_one, sixteen_o)
    valid = considered & (length > 0.0) & (width > 0.0)
    valid = valid & (coor_x > -1.0) & (coor_x < feat_w) & (coor_y > -1.0) & (coor_y < feat_h)
    valid = valid & is_finite(z) & is_finite(dx) & is_finite(dy) & is_finite(dz) & is_finite(yaw)
    valid = valid & is_finite(radius)
    if NORM_BBOX:
        valid = valid & (dz > 0.0)
    if HAS_VELOCITY:
        vx = tl.load(p_box + 7 * stride_bc, mask=considered, other=0.0).to(tl.float32)
        vy = tl.load(p_box + 8 * stride_bc, mask=considered, other=0.0).to(tl.float32)
        valid = valid & is_finite(vx) & is_finite(vy)
    x_int = tl.where(valid, coor_x, 0.0).to(tl.int32)
    y_int = tl.where(valid, coor_y, 0.0).to(tl.int32)

    row = (task.to(tl.int64) * num_samples + b) * max_objs + slot
    p_anno = (out_ptr + anno_at).to(tl.pointer_type(tl.float32)) + row * COLUMNS
    tl.store(p_anno, coor_x - x_int.to(tl.float32), mask=valid)
    tl.store(p_anno + 1, coor_y - y_int.to(tl.float32), mask=valid)
    tl.store(p_anno + 2, z, mask=valid)
    if NORM_BBOX:
        tl.store(p_anno + 3, tl.log(dx), mask=valid)
        tl.store(p_anno + 4, tl.log(dy), mask=valid)
        tl.store(p_anno + 5, tl.log(dz), mask=valid)
    else:
        tl.store(p_anno + 3, dx, mask=valid)
        tl.store(p_anno + 4, dy, mask=valid)
        tl.store(p_anno + 5, dz, mask=valid)
    tl.store(p_anno + 6, tl.sin(yaw), mask=valid)
    tl.store(p_anno + 7, tl.cos(yaw), mask=valid)
    if HAS_VELOCITY:
        tl.store(p_anno + 8, vx, mask=valid)
        tl.store(p_anno + 9, vy, mask=valid)
    tl.store((out_ptr + ind_at).to(tl.pointer_type(tl.int64)) + row, y_int.to(tl.int64) * feat_w + x_int, mask=valid)
    tl.store(out_ptr + mask_at + row, tl.full([BLOCK], 1, tl.uint8), mask=valid)

    # the draw op's boxes: (x, y, radius or -1 to skip, plane of (task, b, class))
    p_scratch = scratch_ptr + (b * boxes_per_sample + t) * 4
    plane = num_samples * classes_before + b * task_classes + klass
    tl.store(p_scratch, x_int, mask=in_grid)
    tl.store(p_scratch + 1, y_int, mask=in_grid)
    tl.store(p_scratch + 2, truncated_radius(radius, valid, min_radius), mask=in_grid)
    tl.store(p_scratch + 3, tl.where(valid, plane, 0).to(tl.int32), mask=in_grid)

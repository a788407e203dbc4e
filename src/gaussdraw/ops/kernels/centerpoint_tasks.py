"""The CenterPoint whole-head kernels: the per-class top-k of every task's heatmap, and each task's
peaks turned into compacted candidate boxes; see :mod:`gaussdraw.ops.centerpoint_tasks`.

Each kernel reads the tasks' own tensors in place: up to GROUP tasks a launch, task t's tensors as
the t-th of GROUP pointer arguments (the launch fills unused ones with task 0's), each program picking
its task's by :func:`pick`.
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton.language.extra import libdevice

from .circle_nms import sort_distinct
from .common import first_k, inside_center_range, ordered_bits

GROUP = 6  # tasks a launch takes (nuScenes' CenterPoint has six)
# The regression maps' alignments are not specialized on (they are read at the peaks' pixels, scalar
# loads): a repeated call's new maps, views at any offset, reuse the compiled kernel
# (gaussdraw.ops.launch.Relaunch). The heatmaps' are (contiguous plane loads): a plan checks them.
REGRESSION_POINTERS = [f"{short}{slot}" for short in ("reg", "hei", "dim", "rot", "vel") for slot in range(GROUP)]


@triton.jit
def pick(task, p0, p1, p2, p3, p4, p5):
    """The pointer of ``task`` (0 to 5) among six of one type."""
    p = tl.where(task == 1, p1, p0)
    p = tl.where(task == 2, p2, p)
    p = tl.where(task == 3, p3, p)
    p = tl.where(task == 4, p4, p)
    return tl.where(task == 5, p5, p)


@triton.jit
def centerpoint_top_kernel(keys_ptr, heat0, heat1, heat2, heat3, heat4, heat5, classes_ptr, first_task, tasks,
                           max_classes, plane, per_class_k, BLOCK: tl.constexpr, BITS: tl.constexpr):
    """One program a (sample, class, task) plane (grid (B * max_classes, tasks of the launch)): the
    plane's ``per_class_k`` best logits (equal values at the last place: the smallest pixels) as int64
    keys (int32 order of the value << 32 | 0xFFFFFFFF - (class * plane + pixel)) in ascending pixel
    order, at keys[sample * tasks + task, class * per_class_k...]. Classes past the task's: nothing."""
    task = tl.program_id(1)
    sample = (tl.program_id(0) // max_classes).to(tl.int64)
    cls = tl.program_id(0) % max_classes
    classes = tl.load(classes_ptr + first_task + task).to(tl.int32)
    if cls < classes:
        heat = pick(task, heat0, heat1, heat2, heat3, heat4, heat5)
        pixel = tl.arange(0, BLOCK)
        valid = pixel < plane
        values = tl.load(heat + (sample * classes + cls) * plane + pixel, mask=valid, other=0.0).to(tl.float32)
        order = ordered_bits(values)
        chosen, at = first_k(order, valid, per_class_k, BITS)
        wide = (order.to(tl.int64) << 32) | (0xFFFFFFFF - (cls * plane + pixel).to(tl.int64))
        row = (sample * tasks + first_task + task) * max_classes * per_class_k + cls * per_class_k
        tl.store(keys_ptr + row + at, wide, mask=chosen)


@triton.jit
def peak_box(reg, hei, dim, rot, vel, sample, index, xs, ys, m, plane, out_size_factor, voxel_x, voxel_y, origin_x,
             origin_y, column: tl.constexpr, NORM_BBOX: tl.constexpr, NATIVE_MATH: tl.constexpr):
    """Column ``column`` (constexpr 0 to 8) of ``CenterPointBBoxCoder.decode``'s boxes at pixels ``index``:
    mmdet3d's float32 operations in its order (the launch turns fused multiply-adds off); exp as CUDA's expf
    (torch's on a GPU), atan2 as libdevice's atan2f (within an ulp of torch's). In the interpreter ``rot``
    holds atan2's values already."""
    if column == 0:
        value = (xs.to(tl.float32) + tl.load(reg + sample * 2 * plane + index, mask=m, other=0.0)) \
            * out_size_factor * voxel_x + origin_x
    elif column == 1:
        value = (ys.to(tl.float32) + tl.load(reg + (sample * 2 + 1) * plane + index, mask=m, other=0.0)) \
            * out_size_factor * voxel_y + origin_y
    elif column == 2:
        value = tl.load(hei + sample * plane + index, mask=m, other=0.0)
    elif column < 6:
        value = tl.load(dim + (sample * 3 + column - 3) * plane + index, mask=m, other=0.0)
        if NORM_BBOX:
            if NATIVE_MATH:
                value = libdevice.exp(value)
            else:
                value = tl.exp(value)
    elif column == 6:
        if NATIVE_MATH:
            value = libdevice.atan2(tl.load(rot + sample * 2 * plane + index, mask=m, other=0.0),
                                    tl.load(rot + (sample * 2 + 1) * plane + index, mask=m, other=1.0))
        else:
            value = tl.load(rot + sample * plane + index, mask=m, other=0.0)
    else:
        value = tl.load(vel + (sample * 2 + column - 7) * plane + index, mask=m, other=0.0)
    return value


@triton.jit(do_not_specialize_on_alignment=REGRESSION_POINTERS)
def centerpoint_task_candidates_kernel(
    keys_ptr, best_ptr, boxes_ptr, scores_ptr, labels_ptr, counts_ptr,
    reg0, reg1, reg2, reg3, reg4, reg5, hei0, hei1, hei2, hei3, hei4, hei5, dim0, dim1, dim2, dim3, dim4, dim5,
    rot0, rot1, rot2, rot3, rot4, rot5, vel0, vel1, vel2, vel3, vel4, vel5, classes_ptr, offsets_ptr, bounds_ptr,
    first_task, tasks, max_classes, k, plane, width, out_size_factor, voxel_x, voxel_y, origin_x, origin_y, threshold,
    HAS_RANGE: tl.constexpr, HAS_THRESHOLD: tl.constexpr, NORM_BBOX: tl.constexpr, COLUMNS: tl.constexpr,
    BLOCK: tl.constexpr, KEEP: tl.constexpr, KEEP_DIMS: tl.constexpr, NATIVE_MATH: tl.constexpr, BITS: tl.constexpr,
):
    """One program a (sample, task) (grid (B, tasks of the launch)): the k best of the task's classes'
    keys (CenterPoint's second top-k; equal values smallest index first), best first; their boxes,
    sigmoid scores and labels over all tasks; then the valid ones (score above ``threshold``, center in
    the range) first, in that order, the others after them, at row sample * tasks + task; and the count
    of valid ones."""
    task = tl.program_id(1)
    sample = tl.program_id(0).to(tl.int64)
    problem = sample * tasks + first_task + task
    classes = tl.load(classes_ptr + first_task + task).to(tl.int32)
    lanes = tl.arange(0, BLOCK)
    present = lanes < classes * k
    wide = tl.load(keys_ptr + problem * max_classes * k + lanes, mask=present, other=-9223372036854775808)
    chosen, at = first_k((wide >> 32).to(tl.int32), present, k, BITS)
    tl.store(best_ptr + problem * KEEP + at, wide, mask=chosen)
    tl.debug_barrier()  # the chosen keys, stored by every thread, read back in sorting lanes
    rank = tl.arange(0, KEEP)
    m = rank < k
    best = tl.load(best_ptr + problem * KEEP + rank, mask=m, other=-9223372036854775808)
    if NATIVE_MATH:
        best = tl.sort(best, descending=True)
    else:  # the interpreter's tl.sort is slow; the keys are distinct, so the same order
        best = sort_distinct(best, KEEP_DIMS, True)
    ordered = (best >> 32).to(tl.int32)
    logit = tl.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered).to(tl.float32, bitcast=True)
    flat = 0xFFFFFFFF - (best & 0xFFFFFFFF)
    index = tl.where(m, flat % plane, 0)
    ys = index // width
    xs = index % width
    if NATIVE_MATH:  # torch's sigmoid on a GPU: 1 / (1 + expf(-x)), IEEE division
        score = tl.div_rn(1.0, 1.0 + libdevice.exp(-logit))
    else:
        score = tl.div_rn(1.0, 1.0 + tl.exp(-logit))
    reg = pick(task, reg0, reg1, reg2, reg3, reg4, reg5)
    hei = pick(task, hei0, hei1, hei2, hei3, hei4, hei5)
    dim = pick(task, dim0, dim1, dim2, dim3, dim4, dim5)
    rot = pick(task, rot0, rot1, rot2, rot3, rot4, rot5)
    vel = pick(task, vel0, vel1, vel2, vel3, vel4, vel5)
    x = peak_box(reg, hei, dim, rot, vel, sample, index, xs, ys, m, plane, out_size_factor, voxel_x, voxel_y,
                 origin_x, origin_y, 0, NORM_BBOX, NATIVE_MATH)
    y = peak_box(reg, hei, dim, rot, vel, sample, index, xs, ys, m, plane, out_size_factor, voxel_x, voxel_y,
                 origin_x, origin_y, 1, NORM_BBOX, NATIVE_MATH)
    z = peak_box(reg, hei, dim, rot, vel, sample, index, xs, ys, m, plane, out_size_factor, voxel_x, voxel_y,
                 origin_x, origin_y, 2, NORM_BBOX, NATIVE_MATH)
    valid = m
    if HAS_RANGE:  # float32 bounds, as mmdet3d's tensor of post_center_range
        valid = inside_center_range(valid, x, y, z, bounds_ptr)
    if HAS_THRESHOLD:
        valid = valid & (score > threshold)
    kept = valid.to(tl.int32)
    before = tl.cumsum(kept, axis=0) - kept  # valid ones before each lane
    count = tl.sum(kept, axis=0)
    target = tl.where(valid, before, count + rank - before)  # a stable partition: valid first
    row = problem * k + target
    tl.store(scores_ptr + row, score, mask=m)
    tl.store(labels_ptr + row, flat // plane + tl.load(offsets_ptr + first_task + task), mask=m)
    p_box = boxes_ptr + row * COLUMNS
    tl.store(p_box, x, mask=m)
    tl.store(p_box + 1, y, mask=m)
    tl.store(p_box + 2, z, mask=m)
    for column in tl.static_range(3, COLUMNS):
        tl.store(p_box + column, peak_box(reg, hei, dim, rot, vel, sample, index, xs, ys, m, plane, out_size_factor,
                                          voxel_x, voxel_y, origin_x, origin_y, column, NORM_BBOX, NATIVE_MATH),
                 mask=m)
    tl.store(counts_ptr + problem, count.to(tl.int64))

"""The CenterPoint target op: mmdet3d 1.x ``CenterHead.get_targets`` for a batch, in one buffer.

``gaussdraw::centerpoint_targets`` takes padded boxes (B, T, 7 or 9) [x, y, z, dx, dy, dz,
yaw(, vx, vy)] with the gravity-center z, global labels (B, T) and optional counts (B,),
and returns one uint8 buffer holding, for all tasks (see :func:`centerpoint_views`): the
float32 heatmaps (each task's (B, C_t, H, W), the tasks grouped by class count, see
:func:`heatmap_order`, so that one view carves a group's), ``anno_box``
(tasks, B, M, 10 or 8) float32, ``ind`` (tasks, B, M) int64 and ``mask`` (tasks, B, M)
uint8, where M = max_objs * dense_reg.

Slots follow mmdet3d: within a task and sample, the task's first class's boxes in input
order, then the next class's...; box k of that order takes slot k, and only k < M are
considered. A considered box is dropped (its slot stays zero, mask 0) if its dx or dy,
scaled to the feature map, is not > 0 (mmdet3d's skip), if its truncated center lies
outside the map (mmdet3d's drop), if a value is not finite, or if dz <= 0 with
``norm_bbox`` (log). Else it draws a Gaussian of radius max(min_radius, int(CornerNet
``gaussian_radius``(dy', dx', overlap))) into heatmap (task, b, class) at its truncated
center, and writes ``ind`` = y * W + x, ``mask`` = 1 and ``anno_box`` = [center - int
center, z, dims (log with ``norm_bbox``), sin(yaw), cos(yaw)(, vx, vy)]. A label outside
every task has no slot.

Triton implementation: one zero fill, then one kernel (each program ranks a block of
boxes among its sample's by comparing labels, then writes their slots and draw
parameters) and the draw op's kernel for all tasks at once. The torch implementation
sorts instead.
"""

from __future__ import annotations

import functools

import torch

from ..dispatch import Implementations
from ..radius import _divide, cornernet_radius as cornernet_radius_torch
from ._box_math import MAX_RADIUS, radius_arguments
from ._triton import check_device, next_power_of_2
from .draw_gaussians import draw_gaussians_torch, launch as launch_draw

_TABLE_COLUMNS = 5  # task, class in task, first label of the task, planes before its heatmaps, classes in the task


def centerpoint_layout(task_sizes, num_samples, height, width, max_objs, columns) -> dict:
    """Byte offsets of each output in the buffer (heatmaps first, so that the buffer read as
    float32 starts with the heatmap planes), and its total size (a multiple of 8)."""
    tasks, classes = len(task_sizes), sum(task_sizes)
    slots = tasks * num_samples * max_objs
    anno = 4 * num_samples * classes * height * width
    ind = anno + 4 * slots * columns
    ind += ind % 8  # int64 alignment
    mask = ind + 8 * slots
    return dict(heatmaps=0, anno_boxes=anno, inds=ind, masks=mask, total=mask + slots + (-(mask + slots)) % 8)


_cached_layout = functools.lru_cache(maxsize=256)(centerpoint_layout)  # for eager calls (plain ints)


def centerpoint_views(buffer, task_sizes, num_samples, height, width, max_objs, columns):
    """(heatmaps, anno_boxes, inds, masks) views of the op's buffer, one per task in each."""
    carving = _carving if torch.compiler.is_compiling() else _cached_carving  # traced: sizes may be symbolic
    return _carve(buffer, buffer.view(torch.float32),
                  *carving(tuple(task_sizes), num_samples, height, width, max_objs, columns))


def heatmap_order(task_sizes) -> tuple:
    """The tasks in the order of their heatmaps in the buffer: grouped by class count (the counts in
    order of first appearance), in task order within a group."""
    return tuple(t for size in dict.fromkeys(task_sizes) for t, classes in enumerate(task_sizes) if classes == size)


def _carving(task_sizes, num_samples, height, width, max_objs, columns):
    """What :func:`_carve` needs: the float32 pieces' sizes (each group of tasks' heatmaps, see
    :func:`heatmap_order`; anno_box; the rest), the bytes' pieces' sizes (up to ind, ind, mask,
    the rest), the views' shapes, and where each task's heatmap is among the groups'."""
    at = centerpoint_layout(task_sizes, num_samples, height, width, max_objs, columns)
    tasks = len(task_sizes)
    slots = tasks * num_samples * max_objs
    anno = slots * columns
    groups = [(size, task_sizes.count(size)) for size in dict.fromkeys(task_sizes)]
    heat = [count * num_samples * size * height * width for size, count in groups]
    float_sizes = [*heat, anno, at["total"] // 4 - at["anno_boxes"] // 4 - anno]
    byte_sizes = [at["inds"], 8 * slots, slots, at["total"] - at["masks"] - slots]
    group_shapes = [(count, num_samples, size, height, width) for size, count in groups]
    order = heatmap_order(task_sizes)
    where = [order.index(t) for t in range(tasks)]
    return (float_sizes, byte_sizes, group_shapes, where, (tasks, num_samples, max_objs, columns),
            (tasks, num_samples, max_objs))


_cached_carving = functools.lru_cache(maxsize=256)(_carving)


def _carve(buffer, floats, float_sizes, byte_sizes, group_shapes, where, anno_shape, slot_shape):
    """The views of ``buffer`` (uint8) and ``floats`` (the same buffer as float32)."""
    *heat, anno, _ = floats.split_with_sizes(float_sizes)
    _, inds, masks, _ = buffer.split_with_sizes(byte_sizes)
    if len(group_shapes) == 1:
        heatmaps = list(heat[0].view(group_shapes[0]).unbind(0))
    else:
        grouped = [h for piece, shape in zip(heat, group_shapes) for h in piece.view(shape).unbind(0)]
        heatmaps = [grouped[i] for i in where]
    return (heatmaps, list(anno.view(anno_shape).unbind(0)), list(inds.view(torch.int64).view(slot_shape).unbind(0)),
            list(masks.view(slot_shape).unbind(0)))


def task_table(task_sizes, device: torch.device) -> torch.Tensor:
    """(labels, 5) int32: for each global label, its task, class in the task, the task's first
    label, the classes whose heatmaps come before the task's in the buffer (:func:`heatmap_order`)
    and the task's classes. Cached per device."""
    return _task_table(tuple(task_sizes), device.type, device.index)


@functools.lru_cache(maxsize=64)
def _task_table(task_sizes, device_type, device_index):
    planes_before, before = {}, 0
    for task in heatmap_order(task_sizes):
        planes_before[task], before = before, before + task_sizes[task]
    rows, first = [], 0
    for task, classes in enumerate(task_sizes):
        rows += [[task, c, first, planes_before[task], classes] for c in range(classes)]
        first += classes
    table = torch.tensor(rows, dtype=torch.int32).reshape(-1, _TABLE_COLUMNS)
    if device_type == "cuda":  # queued from pinned memory: no host sync, once per device
        return table.pin_memory().to(torch.device(device_type, device_index), non_blocking=True)
    return table.to(torch.device(device_type, device_index))


# ----------------------------------------------------------------------------
# Triton launch (the kernel: kernels/centerpoint_targets.py)
# ----------------------------------------------------------------------------


def centerpoint_targets_triton(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size,
                               out_size_factor, gaussian_overlap, min_radius, max_objs, norm_bbox):
    """Triton implementation of the op (module docstring)."""
    return _launch_all(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size,
                       out_size_factor, gaussian_overlap, min_radius, max_objs, norm_bbox, bind=False)[0]


def centerpoint_targets_planned(*args):
    """The Triton implementation (the op's arguments), and a :class:`CenterPointPlan` that repeats its
    launches for inputs of the same layout (None where a launch did not take the direct CUDA path)."""
    return _launch_all(*args, bind=True)


class CenterPointPlan:
    """A call's allocation and launches, repeated for new (boxes, labels, counts) of its layout:
    returns the outputs' views (:func:`centerpoint_views`)."""

    __slots__ = ("total", "device", "scratch_shape", "table", "launches", "carving")

    def __init__(self, total, device, scratch_shape, table, launches, carving):
        self.total, self.device, self.scratch_shape, self.table = total, device, scratch_shape, table
        self.launches, self.carving = launches, carving

    def __call__(self, boxes, labels, counts):
        buffer = torch.zeros(self.total, dtype=torch.uint8, device=self.device)
        floats = buffer.view(torch.float32)
        scratch = torch.empty(self.scratch_shape, dtype=torch.int32, device=self.device)
        _, _, radii, planes = scratch.unbind(-1)
        assign_launch, draw_launch = self.launches
        assign_launch(boxes, labels, counts, self.table, scratch, buffer)
        draw_launch(floats, scratch, radii, planes, radii)
        return _carve(buffer, floats, *self.carving)


_ASSIGN_RELAUNCHED = ("boxes_ptr", "labels_ptr", "counts_ptr", "table_ptr", "scratch_ptr", "out_ptr")


def _launch_all(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size, out_size_factor,
                gaussian_overlap, min_radius, max_objs, norm_bbox, *, bind):
    """(buffer, plan): the op's launches; with ``bind`` and a direct launch of each kernel with counts,
    a :class:`CenterPointPlan` of them, else None."""
    check_device(boxes.device)
    from .kernels.centerpoint_targets import centerpoint_assign_kernel
    from .launch import launch

    num_samples, boxes_per_sample = labels.shape
    columns = 10 if boxes.shape[-1] == 9 else 8
    at = _cached_layout(tuple(task_sizes), num_samples, feat_h, feat_w, max_objs, columns)
    buffer = torch.zeros(at["total"], dtype=torch.uint8, device=boxes.device)
    if num_samples * boxes_per_sample == 0 or at["anno_boxes"] == 0:
        return buffer, None
    block = min(64, max(16, next_power_of_2(boxes_per_sample)))
    blocks_per_sample = -(-boxes_per_sample // block)
    scratch = torch.empty((num_samples, boxes_per_sample, 4), dtype=torch.int32, device=boxes.device)
    _, _, radii, planes = scratch.unbind(-1)
    counts_arg = counts if counts is not None else labels
    strides = dict(stride_bb=boxes.stride(0), stride_bt=boxes.stride(1), stride_bc=boxes.stride(2),
                   stride_lb=labels.stride(0), stride_lt=labels.stride(1),
                   stride_nb=counts.stride(0) if counts is not None else 0)
    # the kernel specializes on dtypes, and on whether every integer argument fits in 32 bits
    key = (boxes.dtype, labels.dtype, counts_arg.dtype, at["total"] < 2**31 and max(strides.values()) < 2**31)
    table = task_table(task_sizes, boxes.device)
    bind = bind and counts is not None
    floats = buffer.view(torch.float32)
    launches = (launch(
        centerpoint_assign_kernel, (num_samples * blocks_per_sample,), num_warps=4, specialization=key,
        compile_options={"enable_fp_fusion": False}, relaunch=_ASSIGN_RELAUNCHED if bind else (),
        boxes_ptr=boxes, labels_ptr=labels, counts_ptr=counts_arg, table_ptr=table,
        scratch_ptr=scratch, out_ptr=buffer, num_samples=num_samples, boxes_per_sample=boxes_per_sample,
        blocks_per_sample=blocks_per_sample, num_labels=sum(task_sizes), max_objs=max_objs, feat_h=feat_h,
        feat_w=feat_w, min_radius=min_radius, **strides, anno_at=at["anno_boxes"], ind_at=at["inds"],
        mask_at=at["masks"], range_x=point_cloud_range[0], range_y=point_cloud_range[1], voxel_x=voxel_size[0],
        voxel_y=voxel_size[1], out_size_factor=float(out_size_factor), **radius_arguments(gaussian_overlap, 5),
        HAS_COUNTS=counts is not None, HAS_VELOCITY=columns == 10, NORM_BBOX=bool(norm_bbox), COLUMNS=columns,
        BLOCK=block,
    ), launch_draw(floats, plane_stride=feat_h * feat_w, num_planes=num_samples * sum(task_sizes),
                   centers=scratch, centers_strides=scratch.stride(), radii=radii, radii_strides=radii.stride(),
                   index=planes, index_strides=planes.stride(), num_samples=num_samples,
                   boxes_per_sample=boxes_per_sample, planes_per_sample=0, sigma_factor=6.0, k_scale=1.0,
                   plane_shape=(feat_h, feat_w), bind=bind, keep_nan=False))
    if not bind or any(relaunch is None for relaunch in launches):
        return buffer, None
    carving = _cached_carving(tuple(task_sizes), num_samples, feat_h, feat_w, max_objs, columns)
    return buffer, CenterPointPlan(at["total"], boxes.device, tuple(scratch.shape), table, launches, carving)


# ----------------------------------------------------------------------------
# torch implementation
# ----------------------------------------------------------------------------


def centerpoint_box_masks(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size,
                          out_size_factor, gaussian_overlap, min_radius, max_objs, norm_bbox):
    """(B, T) masks of the boxes that have a slot and whose size and center mmdet3d keeps
    (``placed``), and of those that draw (``drawn``: also finite, dz > 0 with ``norm_bbox``, a
    finite radius); no host sync. Used by the public function's checks."""
    quantities = _box_quantities(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size,
                                 out_size_factor, gaussian_overlap, max_objs, norm_bbox)
    return quantities["placed"], quantities["drawn"]


def _box_quantities(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size,
                    out_size_factor, gaussian_overlap, max_objs, norm_bbox) -> dict:
    """(B, T) slots, centers, radii, ``placed`` and ``drawn`` masks and more of every box (no sync)."""
    num_samples, boxes_per_sample = labels.shape
    device = labels.device
    table = task_table(task_sizes, device).long()
    num_labels = table.shape[0]
    position = torch.arange(boxes_per_sample, device=device)
    sample = torch.arange(num_samples, device=device).unsqueeze(1).expand(num_samples, boxes_per_sample)
    known = (labels >= 0) & (labels < num_labels)
    if counts is not None:
        known &= position < counts.unsqueeze(1)
    label = labels.long().where(known, 0)

    # slots: sort by (sample, label), stable; rank within (sample, task)
    key = (sample * (num_labels + 1) + label + 1).where(known, 0).reshape(-1)
    _, order = torch.sort(key, stable=True)
    group = (sample * len(task_sizes) + table[label, 0]).where(known, -1).reshape(-1)[order]
    rank = torch.arange(group.numel(), device=device) - torch.searchsorted(group, group)
    slot = torch.empty_like(rank).scatter_(0, order, rank).view(num_samples, boxes_per_sample)
    considered = known & (slot < max_objs)

    box = boxes.float()
    x, y, z, dx, dy, dz, yaw = box[..., :7].unbind(-1)
    length = _divide(_divide(dx, voxel_size[0]), out_size_factor)
    width = _divide(_divide(dy, voxel_size[1]), out_size_factor)
    coor_x = _divide(_divide(x - point_cloud_range[0], voxel_size[0]), out_size_factor)
    coor_y = _divide(_divide(y - point_cloud_range[1], voxel_size[1]), out_size_factor)
    radius = cornernet_radius_torch(width, length, gaussian_overlap)
    placed = considered & (length > 0) & (width > 0)
    placed &= (coor_x > -1) & (coor_x < feat_w) & (coor_y > -1) & (coor_y < feat_h)
    drawn = placed & box[..., 2:].isfinite().all(-1) & radius.isfinite()
    if norm_bbox:
        drawn &= dz > 0
    return dict(box=box, label=label, slot=slot, sample=sample, table=table, coor_x=coor_x, coor_y=coor_y,
                radius=radius, placed=placed, drawn=drawn)


def centerpoint_boxes_torch(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size,
                            out_size_factor, gaussian_overlap, min_radius, max_objs, norm_bbox):
    """The boxes that draw, in no particular order, as a dict of 1-D tensors (task, sample,
    label, slot, plane, x_int, y_int, radius, anno (n, columns))."""
    q = _box_quantities(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size,
                        out_size_factor, gaussian_overlap, max_objs, norm_bbox)
    box, drawn, label = q["box"], q["drawn"], q["label"]
    z, yaw = box[..., 2], box[..., 6]
    dims = box[..., 3:6].log() if norm_bbox else box[..., 3:6]
    x_int, y_int = q["coor_x"].where(drawn, 0).long(), q["coor_y"].where(drawn, 0).long()
    anno = [(q["coor_x"] - x_int).unsqueeze(-1), (q["coor_y"] - y_int).unsqueeze(-1), z.unsqueeze(-1), dims,
            yaw.sin().unsqueeze(-1), yaw.cos().unsqueeze(-1), box[..., 7:9]]
    anno = torch.cat(anno, -1)[drawn]
    task, klass, _, classes_before, task_classes = q["table"][label[drawn]].unbind(1)
    b = q["sample"][drawn]
    radius = q["radius"][drawn].clamp(0, MAX_RADIUS).long().clamp(min=min_radius)
    plane = labels.shape[0] * classes_before + b * task_classes + klass
    return dict(task=task, sample=b, label=label[drawn], slot=q["slot"][drawn], plane=plane, x_int=x_int[drawn],
                y_int=y_int[drawn], radius=radius, anno=anno)


def centerpoint_targets_torch(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size,
                              out_size_factor, gaussian_overlap, min_radius, max_objs, norm_bbox):
    """Vectorized torch implementation of the op (no loop over boxes)."""
    num_samples = labels.shape[0]
    columns = 10 if boxes.shape[-1] == 9 else 8
    at = centerpoint_layout(task_sizes, num_samples, feat_h, feat_w, max_objs, columns)
    buffer = torch.zeros(at["total"], dtype=torch.uint8, device=boxes.device)
    tasks = len(task_sizes)
    planes = buffer.view(torch.float32)[: at["anno_boxes"] // 4].view(-1, feat_h, feat_w)
    floats = buffer.view(torch.float32)[at["anno_boxes"] // 4:]
    anno = floats[: tasks * num_samples * max_objs * columns].view(tasks, num_samples, max_objs, columns)
    ind = buffer[at["inds"]: at["masks"]].view(torch.int64).view(tasks, num_samples, max_objs)
    mask = buffer[at["masks"]: at["masks"] + tasks * num_samples * max_objs].view(tasks, num_samples, max_objs)
    if labels.numel() == 0 or planes.numel() == 0:
        return buffer
    rows = centerpoint_boxes_torch(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size,
                                   out_size_factor, gaussian_overlap, min_radius, max_objs, norm_bbox)
    where = (rows["task"], rows["sample"], rows["slot"])
    anno[where] = rows["anno"]
    ind[where] = rows["y_int"] * feat_w + rows["x_int"]
    mask[where] = 1
    draw_gaussians_torch(planes, torch.stack([rows["x_int"], rows["y_int"]], 1).unsqueeze(0),
                         rows["radius"].unsqueeze(0), rows["plane"].unsqueeze(0), None, 0, 6.0, 1.0)
    return buffer


# ----------------------------------------------------------------------------
# torch.library registration
# ----------------------------------------------------------------------------


@torch.library.custom_op("gaussdraw::centerpoint_targets", mutates_args=())
def centerpoint_targets_op(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    counts: torch.Tensor | None,
    task_sizes: list[int],
    feat_h: int,
    feat_w: int,
    point_cloud_range: list[float],
    voxel_size: list[float],
    out_size_factor: int,
    gaussian_overlap: float,
    min_radius: int,
    max_objs: int,
    norm_bbox: bool,
    use_triton: bool,
) -> torch.Tensor:
    """The op as torch.compile and the dispatcher see it: the Triton kernels or the torch
    kernel, as ``use_triton`` says (:mod:`gaussdraw.dispatch`)."""
    return CENTERPOINT_TARGETS.pick(use_triton)(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range,
                                                voxel_size, out_size_factor, gaussian_overlap, min_radius, max_objs,
                                                norm_bbox)


@centerpoint_targets_op.register_fake
def _centerpoint_targets_fake(boxes, labels, counts, task_sizes, feat_h, feat_w, point_cloud_range, voxel_size,
                              out_size_factor, gaussian_overlap, min_radius, max_objs, norm_bbox, use_triton):
    columns = 10 if boxes.shape[-1] == 9 else 8
    total = centerpoint_layout(task_sizes, labels.shape[0], feat_h, feat_w, max_objs, columns)["total"]
    return boxes.new_empty(total, dtype=torch.uint8)


CENTERPOINT_TARGETS = Implementations(triton=centerpoint_targets_triton, torch=centerpoint_targets_torch,
                                      registered=centerpoint_targets_op)

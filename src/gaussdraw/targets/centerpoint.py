"""CenterPoint training targets: mmdet3d 1.x ``CenterHead.get_targets`` for a whole batch, in one call."""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Sequence

import torch

from ..checks import raise_first, resolve_validate
from ..dispatch import check_backend
from ..inputs import Batch, Field, batch_inputs
from ..ops.centerpoint_targets import (CENTERPOINT_TARGETS, centerpoint_box_masks, centerpoint_targets_planned,
                                       centerpoint_views)
from ..ragged import RaggedLike
from .common import cached, overlap, positive_int
from .plans import plan_key, planned, run_and_plan, tensors_of

FIELDS = (Field("boxes", (None,), floating=True), Field("labels"))


class _Options(NamedTuple):
    """The op's options, checked, from the head's configuration (a tuple: hashed in a plan's key)."""

    task_sizes: tuple
    feat_h: int
    feat_w: int
    point_cloud_range: tuple  # x_min, y_min
    voxel_size: tuple  # vx, vy
    out_size_factor: int
    gaussian_overlap: float
    min_radius: int
    slots: int  # max_objs * dense_reg
    norm_bbox: bool

    def op_arguments(self) -> tuple:
        """The op's arguments after (boxes, labels, counts), in its order."""
        return (list(self.task_sizes), self.feat_h, self.feat_w, list(self.point_cloud_range), list(self.voxel_size),
                self.out_size_factor, self.gaussian_overlap, self.min_radius, self.slots, self.norm_bbox)


class CenterPointTargets(NamedTuple):
    """What :func:`centerpoint_targets` returns: one tensor per task in each list, as
    mmdet3d's ``CenterHead.get_targets`` returns them (M = max_objs * dense_reg)."""

    heatmaps: list
    """(B, C_task, H, W) float32 Gaussian heatmaps."""
    anno_boxes: list
    """(B, M, 10) float32 (8 without velocity): [x - int x, y - int y, z, dx, dy, dz (log with
    ``norm_bbox``), sin(yaw), cos(yaw), vx, vy] in each box's slot."""
    inds: list
    """(B, M) int64: y * W + x of each box's center pixel."""
    masks: list
    """(B, M) uint8: 1 in the slots of boxes that were placed."""


def _task_sizes(tasks) -> list[int]:
    if isinstance(tasks, (str, torch.Tensor)) or not isinstance(tasks, Sequence) or len(tasks) == 0:
        raise TypeError(f"tasks must be a non-empty list of per-task class-name lists or class counts; got {tasks!r}")
    sizes = []
    for t, task in enumerate(tasks):
        if isinstance(task, numbers.Integral) and not isinstance(task, bool):
            size = int(task)
        elif isinstance(task, Sequence) and not isinstance(task, str):
            size = len(task)
        else:
            raise TypeError(f"tasks[{t}] must be a list of class names or a class count; got {task!r}")
        if size <= 0:
            raise ValueError(f"tasks[{t}] must hold at least one class; got {task!r}")
        sizes.append(size)
    return sizes


def _numbers(value, name: str, count: int, positive: bool) -> list[float]:
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) < count:
        raise ValueError(f"{name} must be a list of at least {count} numbers; got {value!r}")
    out = []
    for i, v in enumerate(value[:count]):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or (positive and v <= 0):
            raise ValueError(f"{name}[{i}] must be a finite number{' > 0' if positive else ''}; got {v!r}")
        out.append(float(v))
    return out


def centerpoint_targets(
    boxes: RaggedLike,
    labels: RaggedLike,
    tasks: Sequence,
    *,
    point_cloud_range: Sequence[float],
    voxel_size: Sequence[float],
    grid_size: Sequence[int],
    out_size_factor: int,
    gaussian_overlap: float = 0.1,
    min_radius: int = 2,
    max_objs: int = 500,
    dense_reg: int = 1,
    norm_bbox: bool = True,
    counts: torch.Tensor | None = None,
    backend: str = "auto",
    validate: bool | None = None,
) -> CenterPointTargets:
    """CenterPoint's training targets for a batch: mmdet3d 1.x ``CenterHead.get_targets``, in one call.

    The arguments after ``tasks`` are the head's ``train_cfg`` entries. The feature map
    is (H, W) = (grid_size[1], grid_size[0]) // out_size_factor. Per task and sample,
    boxes take slots in mmdet3d's order: the boxes of the task's first class in input
    order, then those of its next class, ...; only the first M = max_objs * dense_reg
    of a task are considered. A considered box is skipped if its dx or dy (scaled to
    the map) is not > 0, and dropped if its center, (xy - range_min) / voxel /
    out_size_factor truncated toward zero, lies outside the map; skipped and dropped
    boxes leave their slot zero. The others draw a Gaussian of radius max(min_radius,
    int(:func:`gaussian_radius`\\ (dy', dx', gaussian_overlap))) (CornerNet's formula) at
    that center and fill their slot of ``anno_boxes``, ``inds`` and ``masks``.
    Arithmetic is mmdet3d's, in float32 (as it runs on the CPU).

    On a GPU, all tasks take one zero fill and two launches, with no host sync (unless
    ``validate=True``); a CUDA graph can capture the call.

    Args:
        boxes: per-sample (n_b, 9) float boxes [x, y, z, dx, dy, dz, yaw, vx, vy], z the
            gravity center (what mmdet3d builds: ``torch.cat((b.gravity_center,
            b.tensor[:, 3:]), 1)``), or (n_b, 7) without velocity; as a list of tensors, a
            ragged batch or a padded (B, T, 9) tensor with ``counts``.
        labels: per-sample (n_b,) int32/int64 global class ids, numbered task by task as
            in mmdet3d (task 0's classes first).
        tasks: per-task class-name lists (mmdet3d's ``class_names``) or class counts.
        point_cloud_range: [x_min, y_min, ...] (the first two are used).
        voxel_size: [vx, vy, ...] (the first two are used).
        grid_size: [X, Y, ...] voxels (the first two are used).
        out_size_factor: the feature map's downsampling of the grid.
        gaussian_overlap, min_radius, max_objs, dense_reg, norm_bbox: as in ``train_cfg``
            (and the head's ``norm_bbox``).
        counts: (B,) boxes in use per sample, when ``boxes`` and ``labels`` are padded tensors.
        backend: ``"auto"`` (Triton on CUDA tensors, torch on CPU), ``"triton"`` (on CPU
            tensors, in Triton's interpreter) or ``"torch"`` (any device; it syncs on a GPU).
        validate: check values first and raise ``ValueError`` naming the first bad box
            (sample, position, value): a label outside every task, a value that is not
            finite, dz <= 0 with ``norm_bbox`` (its log is a target), a box too large
            for a finite radius, counts that disagree with the inputs. The default,
            ``None``, checks on the CPU and not on a GPU, where the check costs a host
            sync. Unchecked, such boxes are dropped (mask 0) and labels outside every
            task take no slot.

    Returns:
        :class:`CenterPointTargets` ``(heatmaps, anno_boxes, inds, masks)``, lists over
        tasks, equal to mmdet3d's return value. The outputs share one allocation.

    Example:
        >>> boxes = [torch.tensor([[0.5, 0.3, 0.0, 1.0, 2.0, 1.0, 0.3, 0.1, 0.2]])]
        >>> t = centerpoint_targets(boxes, [torch.tensor([1])], [["car"], ["truck", "bus"]],
        ...                         point_cloud_range=[-5, -5, -3, 5, 5, 1], voxel_size=[0.15625, 0.15625, 4],
        ...                         grid_size=[64, 64, 1], out_size_factor=2, max_objs=4)
        >>> [h.shape for h in t.heatmaps], t.inds[1].tolist(), t.masks[1].tolist()
        ([torch.Size([1, 1, 32, 32]), torch.Size([1, 2, 32, 32])], [[529, 0, 0, 0]], [[1, 0, 0, 0]])
    """
    check_backend(backend)
    options = _checked_options(tasks, point_cloud_range, voxel_size, grid_size, out_size_factor, gaussian_overlap,
                               min_radius, max_objs, dense_reg, norm_bbox)
    key = plan_key(options, backend, validate, (boxes, labels), counts)
    plan = planned(key)
    if plan is not None:  # a repeated unchecked call of a planned layout
        (boxes, labels), counts = tensors_of((boxes, labels), counts)
        return CenterPointTargets(*plan(boxes, labels, counts))
    batch = batch_inputs({"boxes": boxes, "labels": labels}, FIELDS, counts)
    boxes, labels, counts = batch.used("boxes"), batch.used("labels"), batch.counts
    if boxes.shape[-1] not in (7, 9):
        raise ValueError(f"boxes must have 9 columns [x, y, z, dx, dy, dz, yaw, vx, vy] or 7 (no velocity); "
                         f"got shape {tuple(boxes.shape)}")
    args = (boxes, labels, counts, *options.op_arguments())
    if resolve_validate(validate, boxes.device):
        _check_values(batch, options, *args)
    buffer = run_and_plan(key, batch, backend, CENTERPOINT_TARGETS, centerpoint_targets_planned, args)
    columns = 10 if boxes.shape[-1] == 9 else 8
    return CenterPointTargets(*centerpoint_views(buffer, options.task_sizes, labels.shape[0], options.feat_h,
                                                 options.feat_w, options.slots, columns))


@cached
def _checked_options(tasks, point_cloud_range, voxel_size, grid_size, out_size_factor, gaussian_overlap, min_radius,
                     max_objs, dense_reg, norm_bbox):
    """The op's options from the head's configuration, checked: (task sizes, H, W, range[:2],
    voxel[:2], out_size_factor, gaussian_overlap, min_radius, slots, norm_bbox)."""
    task_sizes = _task_sizes(tasks)
    point_cloud_range = _numbers(point_cloud_range, "point_cloud_range", 2, positive=False)
    voxel_size = _numbers(voxel_size, "voxel_size", 2, positive=True)
    if isinstance(grid_size, torch.Tensor):
        grid_size = grid_size.tolist()
    if isinstance(grid_size, str) or not isinstance(grid_size, Sequence) or len(grid_size) < 2:
        raise ValueError(f"grid_size must be a list of at least 2 ints; got {grid_size!r}")
    grid_x, grid_y = (positive_int(g, f"grid_size[{i}]") for i, g in enumerate(grid_size[:2]))
    out_size_factor = positive_int(out_size_factor, "out_size_factor")
    feat_w, feat_h = grid_x // out_size_factor, grid_y // out_size_factor
    if feat_w == 0 or feat_h == 0:
        raise ValueError(f"grid_size[:2] // out_size_factor must be >= 1; got {list(grid_size[:2])} // "
                         f"{out_size_factor}")
    gaussian_overlap = overlap(gaussian_overlap, "gaussian_overlap")
    if isinstance(min_radius, bool) or not isinstance(min_radius, numbers.Integral) or min_radius < 0:
        raise ValueError(f"min_radius must be an int >= 0; got {min_radius!r}")
    slots = positive_int(max_objs, "max_objs") * positive_int(dense_reg, "dense_reg")
    if not isinstance(norm_bbox, bool):
        raise TypeError(f"norm_bbox must be a bool; got {norm_bbox!r}")
    return _Options(tuple(task_sizes), feat_h, feat_w, tuple(point_cloud_range), tuple(voxel_size), out_size_factor,
                    gaussian_overlap, int(min_radius), slots, norm_bbox)


def _check_values(batch: Batch, options: _Options, boxes, labels, counts, *op_options):
    """Raise for bad counts, or for the first box in use that the op would drop where mmdet3d would not
    (one host sync on a GPU)."""
    in_use = batch.in_use()
    num_labels = sum(options.task_sizes)
    placed, drawn = centerpoint_box_masks(boxes, labels, counts, *op_options)
    finite = boxes.isfinite().all(-1)
    checks = [
        (in_use & ((labels < 0) | (labels >= num_labels)), labels,
         f"labels must be in [0, {num_labels}): the tasks hold {num_labels} classes"),
        (in_use & ~finite, boxes, "boxes must be finite"),
    ]
    if options.norm_bbox:
        checks.append((placed & ~(boxes[..., 5] > 0), boxes,
                       "boxes must have dz > 0 with norm_bbox=True (log(dz) is a target)"))
    checks.append((placed & ~drawn, boxes, "boxes are too large for a finite Gaussian radius"))
    raise_first(batch.count_checks() + checks, per_sample=labels.shape[1])

"""CenterPoint's whole-head decoding: mmdet3d 1.4 ``CenterHead.predict_by_feat`` for every task and
sample in a few launches, no host sync."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..checks import check_float_tensor
from ..dispatch import check_backend, route, run
from ..ops._constants import device_constant
from ..ops.centerpoint_candidates import CENTERPOINT_CANDIDATES
from ..ops.centerpoint_merge import CENTERPOINT_MERGE
from ..ops.centerpoint_tasks import centerpoint_tasks_triton, tasks_fit
from ..ops.circle_nms import circle_nms_sorted_triton, sorted_walk_fits
from ..targets.plans import plan_key, planned, remember
from .centerpoint_plans import decode_and_plan, option_key, plannable
from .nms import _threshold_tensor, circle_nms_batched
from .peaks import heatmap_peaks

REGRESSIONS = (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))  # gathered channel order
NMS_TYPES = ("circle", "rotate", "none", None)


class CenterPointDetections(NamedTuple):
    """Decoded boxes of a batch, padded: sample b's first ``counts[b]`` rows are its detections, task
    by task (in the order of ``tasks``), each task's boxes in NMS keep order; the other rows hold
    zeros (boxes, scores) and -1 (labels).

    boxes: (B, P, 9) [x, y, z_bottom, dx, dy, dz, yaw, vx, vy] (7 columns without velocity), the
    predictions' dtype; scores: (B, P) the sigmoid of the heatmap; labels: (B, P) int64 over all
    tasks' classes (task label offsets added; mmdet3d gives them as int32); counts: (B,) int64."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    counts: torch.Tensor


def _task_dicts(preds) -> list:
    """The per-task dicts of ``preds``: a list of dicts, or mmdet3d's ``preds_dicts`` (a sequence
    over tasks of one-element lists of dicts)."""
    if isinstance(preds, dict) or not isinstance(preds, (list, tuple)) or not preds:
        raise TypeError("preds must be a non-empty list over tasks of dicts (heatmap, reg, height, dim, rot, "
                        "vel), or mmdet3d's preds_dicts (a tuple of one-element lists of dicts); got "
                        f"{type(preds).__name__}")
    dicts = []
    for task, entry in enumerate(preds):
        if isinstance(entry, (list, tuple)):
            if len(entry) != 1:
                raise ValueError(f"preds[{task}] must be a dict or a one-element list of a dict (one feature "
                                 f"level, as mmdet3d's CenterHead); got a {type(entry).__name__} of {len(entry)}")
            entry = entry[0]
        if not isinstance(entry, dict):
            raise TypeError(f"preds[{task}] must be a dict of head outputs; got {type(entry).__name__}")
        dicts.append(entry)
    return dicts


def _task_classes(tasks, num_tasks: int) -> list:
    """Number of classes of each task, from config-style dicts (``num_class``, ``class_names``)."""
    if not isinstance(tasks, (list, tuple)) or len(tasks) != num_tasks:
        raise ValueError(f"tasks must be a list of {num_tasks} dicts (one per task of preds) with num_class and "
                         f"class_names; got {tasks!r}")
    classes = []
    for task, entry in enumerate(tasks):
        if not isinstance(entry, dict) or ("num_class" not in entry and "class_names" not in entry):
            raise TypeError(f"tasks[{task}] must be a dict with num_class and/or class_names; got {entry!r}")
        count = entry.get("num_class", len(entry.get("class_names", ())))
        if "class_names" in entry and len(entry["class_names"]) != count:
            raise ValueError(f"tasks[{task}]: num_class {count} but {len(entry['class_names'])} class_names")
        if type(count) is not int or count < 1:
            raise ValueError(f"tasks[{task}]['num_class'] must be an integer >= 1; got {count!r}")
        classes.append(count)
    return classes


def _check_task_tensors(dicts: list, classes: list) -> tuple:
    """(B, H, W, with_velocity, device) after checking every task's tensors."""
    first = dicts[0].get("heatmap")
    if not isinstance(first, torch.Tensor) or first.dim() != 4:
        raise ValueError("preds[0]['heatmap'] must be a (B, C, H, W) tensor of logits; got "
                         f"{tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__}")
    batch, _, height, width = first.shape
    device = first.device
    with_velocity = "vel" in dicts[0]
    for task, entry in enumerate(dicts):
        if ("vel" in entry) != with_velocity:
            raise ValueError(f"preds[{task}] {'lacks' if with_velocity else 'has'} 'vel' but preds[0] "
                             f"{'has' if with_velocity else 'lacks'} it: every task must agree")
        names = [("heatmap", classes[task])] + [(n, c) for n, c in REGRESSIONS if n != "vel" or with_velocity]
        for name, channels in names:
            if name not in entry:
                raise ValueError(f"preds[{task}] has no '{name}' (needs heatmap, reg, height, dim, rot[, vel])")
            check_float_tensor(entry[name], f"preds[{task}]['{name}']", (batch, channels, height, width), device,
                               "preds[0]['heatmap']")
    return batch, height, width, with_velocity, device


def _stacked_logits(dicts: list, classes: list, batch: int, height: int, width: int) -> torch.Tensor:
    """(B * T, Cmax, H, W) heatmap logits of every task, classes padded with -inf (one ``cat``)."""
    widest = max(classes)
    dtype = dicts[0]["heatmap"].dtype  # cat promotes the other tasks' dtypes
    parts = []
    for entry, count in zip(dicts, classes):
        parts.append(entry["heatmap"].to(dtype))
        if count < widest:
            filler = torch.full((1, 1, 1, 1), float("-inf"), dtype=dtype, device=entry["heatmap"].device)
            parts.append(filler.expand(batch, widest - count, height, width))
    return torch.cat(parts, 1).view(batch * len(dicts), widest, height, width)


def _gathered_regressions(dicts: list, with_velocity: bool, indices: torch.Tensor) -> torch.Tensor:
    """(B, T, R, K) regression channels (reg, height, dim, rot[, vel]) of every task at its peaks'
    pixels ``indices`` (B, T, K) (one ``cat``, one ``gather``)."""
    batch, tasks, k = indices.shape
    parts = [entry[name] for entry in dicts for name, _ in REGRESSIONS if name != "vel" or with_velocity]
    maps = torch.cat(parts, 1)
    maps = maps.view(batch, tasks, maps.shape[1] // tasks, -1)
    return maps.gather(3, indices.unsqueeze(2).expand(-1, -1, maps.shape[2], -1))


def _valid_first(valid: torch.Tensor) -> tuple:
    """(order, counts): for each row of ``valid`` (S, K), the positions of its valid entries first
    (in their order), then the others (in theirs): a stable partition by prefix sums; and how many
    are valid."""
    counts = valid.sum(1)
    before = torch.cumsum(valid, 1) - valid.long()  # valid entries before each
    positions = torch.arange(valid.shape[1], device=valid.device)
    target = torch.where(valid, before, counts.unsqueeze(1) + positions - before)
    order = torch.empty_like(target).scatter_(1, target, positions.expand_as(target))
    return order, counts


def _candidates(dicts: list, classes: list, with_velocity: bool, k: int, decoding: tuple, chosen, backend: str):
    """(boxes, scores, labels, counts) as :func:`~gaussdraw.ops.centerpoint_tasks.centerpoint_tasks_triton`
    gives them, by ops: the peaks of the stacked logits, the regressions gathered at them, mmdet3d's
    expressions (the candidates op), the valid ones moved to the front (any dtype, torch.compile, CPU)."""
    batch, _, height, width = dicts[0]["heatmap"].shape
    num_tasks = len(dicts)
    peaks = heatmap_peaks(_stacked_logits(dicts, classes, batch, height, width), k, 1, per_class_k=k,
                          backend=backend)
    scores = torch.sigmoid(peaks.scores)  # the top-k of the logits: the top-k of their sigmoid
    gathered = _gathered_regressions(dicts, with_velocity, peaks.indices.view(batch, num_tasks, k)).flatten(0, 1)
    norm_bbox = decoding[-1]
    dims = torch.exp(gathered[:, 3:6]) if norm_bbox else gathered[:, 3:6].contiguous()
    yaw = torch.atan2(gathered[:, 6], gathered[:, 7])
    offsets, bounds, threshold, *geometry = decoding[:-1]
    arguments = (gathered, dims, yaw, scores, peaks.xs, peaks.ys, peaks.labels, offsets, *geometry, bounds, threshold)
    if gathered.dtype == torch.float32:
        boxes, valid, labels = run(CENTERPOINT_CANDIDATES, chosen, *arguments)
    else:  # mmdet3d's expressions in the predictions' dtype
        boxes, valid, labels = CENTERPOINT_CANDIDATES.torch(*arguments)
    order, counts = _valid_first(valid)
    boxes = boxes.gather(1, order.unsqueeze(2).expand(-1, -1, boxes.shape[2]))
    return boxes, scores.gather(1, order), labels.gather(1, order), counts


def _bev_for_nms(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 5) [x, y, dx, dy, yaw] as mmdet3d hands them to ``nms_rotated``: through ``xywhr2xyxyr``
    and back (``nms_bev``), in the boxes' float arithmetic."""
    x, y, dx, dy, yaw = boxes[..., 0], boxes[..., 1], boxes[..., 3], boxes[..., 4], boxes[..., 6]
    x1, y1, x2, y2 = x - dx / 2, y - dy / 2, x + dx / 2, y + dy / 2
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, yaw), -1)


def _checked_options(nms, min_radius, num_tasks: int, max_num: int, height: int, width: int, post_center_range,
                     point_cloud_range, voxel_size, post_max_size) -> None:
    if nms not in NMS_TYPES:
        raise ValueError(f"nms must be 'circle', 'rotate', 'none' or None; got {nms!r}")
    if nms == "circle" and (not isinstance(min_radius, (list, tuple)) or len(min_radius) != num_tasks):
        raise ValueError(f"min_radius must be a list of {num_tasks} numbers (one per task) for nms='circle'; "
                         f"got {min_radius!r}")
    if type(max_num) is not int or not 1 <= max_num <= height * width:
        raise ValueError(f"max_num must be an integer in [1, H * W = {height * width}] (CenterPoint's per-class "
                         f"top-k takes max_num pixels of each class); got {max_num!r}")
    if nms in ("circle", "rotate") and post_max_size is not None and (type(post_max_size) is not int or post_max_size < 0):
        raise ValueError(f"post_max_size must be an integer >= 0 or None; got {post_max_size!r}")
    if post_center_range is not None and len(post_center_range) != 6:
        raise ValueError(f"post_center_range must be 6 numbers [x0, y0, z0, x1, y1, z1] or None; got "
                         f"{post_center_range!r}")
    if len(point_cloud_range) < 2 or len(voxel_size) < 2:
        raise ValueError(f"point_cloud_range and voxel_size need their x and y values; got {point_cloud_range!r} "
                         f"and {voxel_size!r}")


def _circle_thresholds(min_radius, tasks: int, problems: int, device) -> torch.Tensor:
    """(S,) float32 circle NMS thresholds of the problems (sample-major: task s % T's ``min_radius``)."""
    return _threshold_tensor([float(min_radius[s % tasks]) for s in range(problems)], problems, device)


def _kept(candidates: dict, nms, *, tasks: int, min_radius, nms_thr, pre_max_size, post_max_size, route_, backend):
    """(indices (S, P) into the compacted candidates, padded with -1, counts (S,)): each problem's
    kept boxes in keep order."""
    boxes, scores, counts = candidates["boxes"], candidates["scores"], candidates["counts"]
    if nms == "circle":
        thresholds = [float(min_radius[s % tasks]) for s in range(scores.shape[0])]
        if route_.use_triton and not route_.traced and sorted_walk_fits(scores.shape[1]):  # the walk's launch alone
            size = min(post_max_size, scores.shape[1]) if post_max_size is not None else scores.shape[1]
            kept, kept_counts, _ = circle_nms_sorted_triton(scores, boxes[..., :2], counts, _circle_thresholds(
                min_radius, tasks, scores.shape[0], scores.device), size)
            return kept, kept_counts
        kept = circle_nms_batched(boxes[..., :2], scores, thresholds, post_max_size=post_max_size, counts=counts,
                                  backend=backend)
        return kept.indices, kept.counts
    if nms == "rotate":
        from .rotated_nms import rotated_nms_batched  # noqa: PLC0415 (an optional module)

        kept = rotated_nms_batched(_bev_for_nms(boxes), scores, nms_thr, pre_max_size=pre_max_size,
                                   post_max_size=post_max_size, counts=counts, backend=backend)
        return kept.indices, kept.counts
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    return torch.where(positions < counts.unsqueeze(1), positions, -1), counts


def centerpoint_decode(preds, tasks, *, point_cloud_range, voxel_size, out_size_factor, post_center_range,
                       max_num: int = 500, score_threshold: float | None = 0.1, nms: str | None = "circle",
                       min_radius=None, nms_thr: float = 0.2, pre_max_size: int | None = 1000,
                       post_max_size: int | None = 83, norm_bbox: bool = True,
                       backend: str = "auto") -> CenterPointDetections:
    """mmdet3d 1.4's ``CenterHead.predict_by_feat`` for every task and sample at once, no host sync.

    Per task: sigmoid heatmap; CenterPoint's two-stage top-k (``max_num`` per class, then ``max_num``);
    boxes from the regressions at the peaks (``CenterPointBBoxCoder.decode``: x = (x_pixel + reg_x) *
    out_size_factor * voxel_size[0] + point_cloud_range[0], likewise y; exp(dim) with ``norm_bbox``;
    yaw = atan2(rot[0], rot[1]); velocity where ``vel`` is given); scores above ``score_threshold``
    (when it is not 0/None) and centers inside ``post_center_range``; then circle NMS with
    ``min_radius[task]`` and ``post_max_size`` (``nms="circle"``), rotated BEV NMS (``"rotate"``:
    ``nms_thr``, ``pre_max_size``, ``post_max_size``, mmcv's ``nms_rotated`` rule), or none. The tasks'
    boxes are merged in task order, labels offset by the classes of the tasks before, z moved to the
    box bottom (z - dz / 2).

    Args:
        preds: a list over tasks of dicts of (B, *, H, W) tensors: ``heatmap`` (B, C_t, H, W) logits,
            ``reg`` (2 channels), ``height`` (1), ``dim`` (3), ``rot`` (2: sin, cos), optional ``vel``
            (2); or mmdet3d's ``preds_dicts`` (a tuple over tasks of one-element lists of such dicts).
        tasks: the config's tasks, dicts with ``num_class`` and/or ``class_names``.
        point_cloud_range, voxel_size, out_size_factor: the config's values (x and y used).
        post_center_range: [x0, y0, z0, x1, y1, z1] box centers must lie in (mmdet3d requires it;
            None here keeps every center).
        max_num: peaks per task (at most H * W). score_threshold: strict lower bound on scores.
        nms: "circle", "rotate" or "none"/None. min_radius: per-task circle threshold (compared with
            the squared center distance, as mmdet3d does).
        backend: "auto" (Triton on CUDA, torch on CPU), "triton" or "torch".

    A repeated eager call with the layout (tensor dtypes, shapes, strides, devices), options and backend
    of an earlier one repeats that call's launches (:mod:`gaussdraw.decode.centerpoint_plans`: the
    float32 Triton path with circle NMS or none), skipping the checks.

    Returns:
        :class:`CenterPointDetections`, P = T * min(post_max_size, max_num) rows (T * max_num without NMS).

    Heatmap logits that are NaN rank first in the top-k (as torch.topk ranks them); their scores are NaN,
    which no score threshold passes: they take top-k places and give no box. With a threshold of 0/None
    such rows are kept, their order in NMS left open. A sample with no box has ``counts[b] == 0``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> head = {name: torch.randn(1, c, 8, 8, generator=g) for name, c in
        ...         [("heatmap", 2), ("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2)]}
        >>> out = centerpoint_decode([head], [dict(num_class=2, class_names=["car", "truck"])],
        ...                          point_cloud_range=[-8, -8, -5, 8, 8, 3], voxel_size=[0.5, 0.5, 8],
        ...                          out_size_factor=4, post_center_range=[-10, -10, -10, 10, 10, 10],
        ...                          max_num=20, score_threshold=0.5, min_radius=[1.0])
        >>> out.boxes.shape, int(out.counts[0]) > 0
        (torch.Size([1, 20, 9]), True)
    """
    options = None if backend == "torch" else option_key(  # the torch path is never planned
        tasks, point_cloud_range, voxel_size, out_size_factor, post_center_range, max_num, score_threshold, nms,
        min_radius, nms_thr, pre_max_size, post_max_size, norm_bbox)
    key = None if options is None else plan_key(options, backend, False, (preds,), None)  # no value checks
    plan = planned(key)
    detections = None if plan is None else plan(preds)  # a repeated eager call of a planned layout
    if detections is not None:
        return detections
    check_backend(backend)
    dicts = _task_dicts(preds)
    classes = _task_classes(tasks, len(dicts))
    batch, height, width, with_velocity, device = _check_task_tensors(dicts, classes)
    _checked_options(nms, min_radius, len(dicts), max_num, height, width, post_center_range, point_cloud_range,
                     voxel_size, post_max_size)
    num_tasks, k = len(dicts), max_num
    chosen = route(backend, device)
    bounds = (device_constant(tuple(float(v) for v in post_center_range), torch.float32, device)
              if post_center_range is not None else torch.empty(0, dtype=torch.float32, device=device))
    offsets = device_constant(tuple(sum(classes[:t]) for t in range(num_tasks)), torch.int64, device)
    decoding = (offsets, bounds, float(score_threshold) if score_threshold else float("nan"),
                float(out_size_factor), float(voxel_size[0]), float(voxel_size[1]), float(point_cloud_range[0]),
                float(point_cloud_range[1]), norm_bbox)
    if chosen.use_triton and not chosen.traced and tasks_fit(dicts, classes, k, height, width):  # 2 launches
        class_counts = device_constant(tuple(classes), torch.int64, device)
        nms = nms if nms != "none" else None
        if key is not None and plannable(dicts, nms, k) and len({type(entry) for entry in preds}) == 1:
            thresholds = _circle_thresholds(min_radius, num_tasks, batch * num_tasks, device) if nms else None
            detections, plan = decode_and_plan(dicts, classes, k, offsets, class_counts, decoding[1:], thresholds,
                                               post_max_size, type(preds[0]) is not dict, CenterPointDetections)
            remember(key, plan)
            return detections
        boxes, scores, labels, counts = centerpoint_tasks_triton(dicts, classes, k, offsets, class_counts, *decoding[1:])
    else:
        boxes, scores, labels, counts = _candidates(dicts, classes, with_velocity, k, decoding, chosen, backend)
    candidates = dict(boxes=boxes, scores=scores, counts=counts)
    kept, kept_counts = _kept(candidates, nms if nms != "none" else None, tasks=num_tasks, min_radius=min_radius,
                              nms_thr=nms_thr, pre_max_size=pre_max_size, post_max_size=post_max_size,
                              route_=chosen, backend=backend)
    merged = run(CENTERPOINT_MERGE, chosen, boxes, scores, labels, kept, kept_counts, num_tasks)
    return CenterPointDetections(*merged)

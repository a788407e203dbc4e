"""CenterPoint's per-task decoding up to NMS in two launches, reading each task's tensors in place.

1. top (:func:`.kernels.centerpoint_tasks.centerpoint_top_kernel`): one program a (sample, class,
   task) plane: the plane's ``k`` best logits as int64 keys (as :mod:`.class_peaks`' first kernel);
2. candidates (:func:`.kernels.centerpoint_tasks.centerpoint_task_candidates_kernel`): one program a
   (sample, task): the k best of its classes' keys, sorted (CenterPoint's second top-k, equal logits
   smallest index first), then per peak ``CenterPointBBoxCoder.decode``'s box (the regressions read
   at the peak's pixel; exp as CUDA's expf, the yaw libdevice's atan2f: within an ulp of torch's, the
   same bits in 99.5 % of rows on the H200), the sigmoid score and the label over all tasks; the
   valid ones (score threshold, post-center range) first, in peak order (a prefix sum), then the rest.

No ``cat`` of the maps, no torch op between: the tasks' tensors are the kernels' pointer arguments,
up to :data:`GROUP` tasks a launch. Eager Triton only (the kernels are not a registered op): the
caller takes its other path under ``torch.compile``, for other dtypes and for planes, or classes x
k, over :data:`~.class_peaks.PLANE_LIMIT`.

Outputs (S = B * T problems, sample-major, K = k): boxes (S, K, 9 or 7) float32, scores (S, K)
float32, labels (S, K) int64, counts (S,) int64 of the valid rows at the front of each problem.
"""

from __future__ import annotations

import math

import torch

from ._triton import check_device, digit_bits, interpreting, next_power_of_2
from .class_peaks import KEEP_LIMIT, PLANE_LIMIT

GROUP = 6  # tasks a launch takes (the kernels' pointer arguments): kernels.centerpoint_tasks.GROUP
REGRESSIONS = ("reg", "height", "dim", "rot", "vel")
POINTER_NAMES = (("reg", "reg"), ("height", "hei"), ("dim", "dim"), ("rot", "rot"), ("vel", "vel"))
# the kernels' leading parameters, repeated with new tensors by a plan (bind=True)
TOP_RELAUNCHED = ("keys_ptr", *(f"heat{slot}" for slot in range(GROUP)))
CANDIDATES_RELAUNCHED = ("keys_ptr", "best_ptr", "boxes_ptr", "scores_ptr", "labels_ptr", "counts_ptr",
                         *(f"{short}{slot}" for _, short in POINTER_NAMES for slot in range(GROUP)))


def tasks_fit(dicts: list, classes: list, k: int, height: int, width: int) -> bool:
    """Whether :func:`centerpoint_tasks_triton` takes these tasks: float32 tensors, planes and each
    task's classes x k within one program's reach, k within one sort."""
    plane = height * width
    return (plane <= PLANE_LIMIT and max(classes) * k <= PLANE_LIMIT and k <= KEEP_LIMIT and
            max(classes) * plane < 2**31 and
            all(t.dtype == torch.float32 for entry in dicts for t in entry.values() if isinstance(t, torch.Tensor)))


def _task_tensors(entry: dict, native_math: bool) -> dict:
    """A task's maps as the kernels read them: contiguous; in the interpreter (no atan2 there) ``rot``
    as the (B, 1, H, W) atan2 of its channels, torch's."""
    tensors = {name: entry[name].contiguous() for name in REGRESSIONS if name in entry}
    tensors.setdefault("vel", tensors["reg"])  # not read without velocity
    if not native_math:
        tensors["rot"] = torch.atan2(tensors["rot"][:, 0:1], tensors["rot"][:, 1:2]).contiguous()
    return tensors


def _pointers(group: list, name: str) -> dict:
    """The kernel's six pointer arguments ``name``0..5 of a group of tasks' tensors (task 0's in unused slots)."""
    return {f"{name}{slot}": group[min(slot, len(group) - 1)] for slot in range(GROUP)}


def centerpoint_tasks_triton(dicts: list, classes: list, k: int, offsets: torch.Tensor, class_counts: torch.Tensor,
                             bounds: torch.Tensor, threshold: float, out_size_factor: float, voxel_x: float,
                             voxel_y: float, origin_x: float, origin_y: float, norm_bbox: bool, bind: bool = False):
    """(boxes, scores, labels, counts) of the module docstring, from the tasks' dicts (float32 (B, *, H, W)
    tensors); ``offsets`` and ``class_counts`` (T,) int64 each task's first label and classes; ``bounds``
    (6,) float32 or (0,) for no range; ``threshold`` NaN for none. ``bind``: and (the two launches'
    :class:`~gaussdraw.ops.launch.Relaunch` (:data:`TOP_RELAUNCHED`, :data:`CANDIDATES_RELAUNCHED`), the
    scratch tensors keys and best), or None where a launch was not direct or the tasks took more than one
    launch each."""
    first = dicts[0]["heatmap"]
    check_device(first.device)
    from .kernels.centerpoint_tasks import centerpoint_task_candidates_kernel, centerpoint_top_kernel
    from .launch import launch

    batch, _, height, width = first.shape
    tasks, widest, plane, device = len(dicts), max(classes), height * width, first.device
    columns = 9 if "vel" in dicts[0] else 7
    problems = batch * tasks
    boxes = torch.empty((problems, k, columns), dtype=torch.float32, device=device)
    scores = torch.empty((problems, k), dtype=torch.float32, device=device)
    labels = torch.empty((problems, k), dtype=torch.int64, device=device)
    counts = torch.empty(problems, dtype=torch.int64, device=device)
    if problems == 0:
        return (boxes, scores, labels, counts, None) if bind else (boxes, scores, labels, counts)
    bound = bind and tasks <= GROUP  # one launch of each kernel: a plan repeats them
    keep = max(16, next_power_of_2(k))
    keys = torch.empty((problems, widest * k), dtype=torch.int64, device=device)
    best = torch.empty((problems, keep), dtype=torch.int64, device=device)
    native = not interpreting()
    block = next_power_of_2(plane)
    top_warps = min(16, max(4, block // 1024))
    for start in range(0, tasks, GROUP):
        group = dicts[start:start + GROUP]
        heats = [entry["heatmap"].contiguous() for entry in group]
        top = launch(centerpoint_top_kernel, (batch * widest, len(group)), num_warps=top_warps,
                     relaunch=TOP_RELAUNCHED if bound else (), keys_ptr=keys, **_pointers(heats, "heat"),
                     classes_ptr=class_counts, first_task=start, tasks=tasks, max_classes=widest, plane=plane,
                     per_class_k=k, BLOCK=block, BITS=digit_bits(block, top_warps))
    sort_block = next_power_of_2(widest * k)
    sort_warps = min(16, max(4, sort_block // 1024))
    for start in range(0, tasks, GROUP):
        maps = [_task_tensors(entry, native) for entry in dicts[start:start + GROUP]]
        pointers = {}
        for name, short in POINTER_NAMES:
            pointers.update(_pointers([m[name] for m in maps], short))
        candidates = launch(
            centerpoint_task_candidates_kernel, (batch, len(maps)), num_warps=sort_warps,
            compile_options={"enable_fp_fusion": False}, relaunch=CANDIDATES_RELAUNCHED if bound else (),
            keys_ptr=keys, best_ptr=best, boxes_ptr=boxes, scores_ptr=scores, labels_ptr=labels, counts_ptr=counts,
            **pointers, classes_ptr=class_counts, offsets_ptr=offsets, bounds_ptr=bounds if bounds.numel() else offsets,
            first_task=start, tasks=tasks, max_classes=widest, k=k, plane=plane, width=width,
            out_size_factor=float(out_size_factor), voxel_x=voxel_x, voxel_y=voxel_y, origin_x=origin_x,
            origin_y=origin_y, threshold=0.0 if math.isnan(threshold) else threshold,
            HAS_RANGE=bounds.numel() > 0, HAS_THRESHOLD=not math.isnan(threshold), NORM_BBOX=bool(norm_bbox),
            COLUMNS=columns, BLOCK=sort_block, KEEP=keep, KEEP_DIMS=keep.bit_length() - 1, NATIVE_MATH=native,
            BITS=digit_bits(sort_block, sort_warps))
    if not bind:
        return boxes, scores, labels, counts
    return boxes, scores, labels, counts, (top, candidates, keys, best) if bound and top and candidates else None

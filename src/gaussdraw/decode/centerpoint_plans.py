"""Repeated CenterPoint decodes: the launches of an earlier call with the same layout.

A detector decodes the same head layout with the same configuration every step. An eager
:func:`~gaussdraw.decode.centerpoint.centerpoint_decode` call is keyed by its options (frozen:
:func:`gaussdraw.targets.common.freeze`), backend and the layouts of its ``preds`` (the dicts' names and
each tensor's dtype, shape, strides and device: :func:`gaussdraw.targets.plans.plan_key`). The first
call of a key whose four launches — the per-class top-k, the candidates, circle NMS's sorted walk, the
merge — were all direct (:mod:`gaussdraw.ops.launch`) leaves a :class:`CenterPointDecodePlan`; later
calls of the key skip the checks, the option conversions and the constant look-ups, allocate the
outputs and scratch and repeat those launches with their own tensors.

Planned: the float32 fast path (:mod:`gaussdraw.ops.centerpoint_tasks`, at most
:data:`~gaussdraw.ops.centerpoint_tasks.GROUP` tasks, contiguous maps) with circle NMS in one sorted walk
or no NMS. Not planned (every call checked): rotated NMS, other dtypes, the torch path, torch.compile.
``centerpoint_decode`` checks no values (its checks are of types and shapes only), so every eager
call of a planned layout may take the plan.
"""

from __future__ import annotations

import torch

from ..ops._triton import interpreting
from ..ops.centerpoint_merge import centerpoint_merge_triton
from ..ops.centerpoint_tasks import GROUP, _task_tensors, centerpoint_tasks_triton
from ..ops.circle_nms import circle_nms_sorted_triton, sorted_walk_fits
from ..targets.common import cached, freeze


def _frozen(*options):
    """The hashable key of ``options`` (:func:`~gaussdraw.targets.common.freeze`), None where one cannot be frozen."""
    try:
        return tuple([freeze(option) for option in options])
    except TypeError:
        return None


option_key = cached(_frozen)  # the same option objects as the last call, unchanged: no freezing


def plannable(dicts: list, nms, k: int) -> bool:
    """Whether a fast-path call may leave a plan: one launch of each kernel, contiguous maps, circle NMS
    in one walk or none."""
    return (len(dicts) <= GROUP and (nms is None or (nms == "circle" and sorted_walk_fits(k))) and
            all(t.is_contiguous() for entry in dicts for t in entry.values() if isinstance(t, torch.Tensor)))


class CenterPointDecodePlan:
    """A call's allocations and launches, repeated for new ``preds`` of its layout: returns fresh
    detections (``detections``' type), or None where a heatmap's 16-byte alignment is not the first
    call's (the top-k kernel is compiled for it; the regression maps' are not specialized on)."""

    __slots__ = ("wrapped", "slots", "names", "native", "device", "shapes", "relaunches", "positions", "detections",
                 "aligned")

    def __init__(self, wrapped, tasks, with_velocity, native, tensors, relaunches, positions, detections, heats):
        self.wrapped, self.native, self.relaunches = wrapped, native, relaunches
        self.slots = [min(slot, tasks - 1) for slot in range(GROUP)]  # the kernels' six pointers of each kind
        self.aligned = [heats[i].data_ptr() % 16 == 0 for i in self.slots]
        self.names = ("reg", "height", "dim", "rot", "vel" if with_velocity else "reg")
        self.device = tensors[0].device
        self.shapes = [(t.shape, t.dtype) for t in tensors]
        self.positions, self.detections = positions, detections

    def __call__(self, preds):
        dicts = [entry[0] for entry in preds] if self.wrapped else preds
        if not self.native:  # the interpreter's kernels read atan2's values (ops.centerpoint_tasks)
            dicts = [dict(_task_tensors(entry, False), heatmap=entry["heatmap"]) for entry in dicts]
        slots, device = self.slots, self.device
        heats = [dicts[i]["heatmap"] for i in slots]
        if [heat.data_ptr() % 16 == 0 for heat in heats] != self.aligned:
            return None
        top, candidates, nms, merge = self.relaunches
        (keys, best, boxes, scores, labels, counts, *rest) = [torch.empty(shape, dtype=dtype, device=device)
                                                            for shape, dtype in self.shapes]
        top(keys, *heats)
        candidates(keys, best, boxes, scores, labels, counts, *[dicts[i][name] for name in self.names for i in slots])
        if nms is not None:
            kept, kept_counts, *outputs = rest
            nms(kept, kept_counts, scores, boxes, counts)  # boxes: the centers' pointer (the strides are the launch's)
        else:
            outputs, kept_counts = rest, counts
            kept = torch.where(self.positions < counts.unsqueeze(1), self.positions, -1)
        merge(boxes, scores, labels, kept, kept_counts, *outputs)
        return self.detections(*outputs)


def decode_and_plan(dicts: list, classes: list, k: int, offsets, class_counts, decoding: tuple, thresholds,
                    post_max_size, wrapped: bool, detections):
    """(detections, plan) of the fast path's launches with circle NMS (``thresholds`` (S,) float32) or none
    (``thresholds`` None): a :class:`CenterPointDecodePlan` of them, or None where a launch was not direct."""
    boxes, scores, labels, counts, bound = centerpoint_tasks_triton(dicts, classes, k, offsets, class_counts,
                                                                     *decoding, bind=True)
    if thresholds is not None:
        size = min(post_max_size, k) if post_max_size is not None else k
        kept, kept_counts, nms = circle_nms_sorted_triton(scores, boxes[..., :2], counts, thresholds, size, bind=True)
        positions, nms_outputs = None, [kept, kept_counts]
    else:
        positions = torch.arange(k, device=scores.device).expand_as(scores)
        kept, kept_counts, nms = torch.where(positions < counts.unsqueeze(1), positions, -1), counts, None
        nms_outputs = []
    *outputs, merge = centerpoint_merge_triton(boxes, scores, labels, kept, kept_counts, len(dicts), bind=True)
    result = detections(*outputs)
    if bound is None or merge is None or (thresholds is not None and nms is None):
        return result, None
    top, candidates, keys, best = bound
    tensors = [keys, best, boxes, scores, labels, counts, *nms_outputs, *outputs]
    plan = CenterPointDecodePlan(wrapped, len(dicts), "vel" in dicts[0], not interpreting(), tensors,
                                 (top, candidates, nms, merge), positions, detections,
                                 [entry["heatmap"] for entry in dicts])
    return result, plan

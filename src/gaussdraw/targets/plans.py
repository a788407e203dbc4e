"""Repeated target calls (keypoint encodes, CenterPoint decodes): an earlier call's launches, same layout.

A head builds its targets with the same configuration and batch layout every step (a pose
model its keypoint heatmaps, :mod:`gaussdraw.keypoints.plans`; a detector decodes its head's
outputs, :mod:`gaussdraw.decode.centerpoint_plans`). The
first call of a layout checks its arguments, pads its inputs, allocates and launches; an
unchecked eager call whose inputs have the types, dtypes, shapes, strides and devices of an
earlier one, with the same checked options and backend, passed those checks already, so it
repeats that call's launches with its own tensors (:class:`~gaussdraw.ops.launch.Relaunch`)
and carves its outputs the same way: ``PLANS`` maps such a key to the plan of its first call.
A plan exists only where that call took the direct CUDA launch for each kernel
(:mod:`gaussdraw.ops.launch`); elsewhere every call takes the checked path.
"""

from __future__ import annotations

import torch

from ..checks import resolve_validate
from ..dispatch import route, run
from ..draw_plans import layout

PLANS: dict = {}


def _input_layout(value, in_sequence: bool = False) -> tuple:
    """What the input layer reads of a padded tensor, a ragged batch, or a structure of tensors (dicts
    of tensors, non-empty lists or tuples of such dicts: a head's outputs per task); TypeError for
    other forms (lists of tensors or of ragged batches are padded anew on every call)."""
    kind = type(value)
    if kind is torch.Tensor and not in_sequence:
        return value.dtype, value.shape, value.stride(), value.device
    if kind is dict:
        return dict, tuple([(name, _input_layout(item)) for name, item in value.items()])
    if (kind is list or kind is tuple) and value:
        return kind, tuple([_input_layout(item, True) for item in value])
    if in_sequence or isinstance(value, (list, tuple)) or not hasattr(value, "tensor"):
        raise TypeError
    return kind, layout(value.tensor), layout(value.sample_sizes)


def _device_of(value) -> torch.device:
    """The device of an input's first tensor (forms of :func:`_input_layout`)."""
    if type(value) is dict:
        return _device_of(next(iter(value.values())))
    if type(value) is list or type(value) is tuple:
        return _device_of(value[0])
    return value.device if type(value) is torch.Tensor else value.tensor.device


def plan_key(options, backend: str, validate, inputs: tuple, counts):
    """The key of an unchecked eager call (``options`` checked and hashable, the inputs' layouts,
    ``counts``'s, the backend), or None where the call must take the checked path (checks on,
    torch.compile tracing, inputs that are not plain tensors, ragged batches of them or dicts (lists
    of dicts) of them)."""
    if (validate is not None and validate is not False) or torch.compiler.is_compiling():
        return None
    try:
        layouts = tuple([_input_layout(value) for value in inputs])
        if validate is None and resolve_validate(None, _device_of(inputs[0])):
            return None
        return options, backend, layouts, None if counts is None else layout(counts)
    except (TypeError, AttributeError, StopIteration):
        return None


def planned(key):
    """The plan of ``key`` (None for no key, a key that cannot be hashed, or no plan yet)."""
    if key is None:
        return None
    try:
        return PLANS.get(key)
    except TypeError:  # options that are not hashable
        return None


def tensors_of(inputs: tuple, counts):
    """(padded tensors, counts) of a planned call's inputs, as the checked call took them: the
    given ``counts``, else the first ragged input's sample sizes."""
    tensors = tuple([v if type(v) is torch.Tensor else v.tensor for v in inputs])
    if counts is None:
        counts = next(v.sample_sizes for v in inputs if type(v) is not torch.Tensor)
    return tensors, counts


def unsliced(batch) -> bool:
    """Whether every padded input of ``batch`` (:class:`~gaussdraw.inputs.Batch`) is used whole, not
    cut to a shorter input's length (plans repeat only such calls)."""
    return all(tensor.shape[1] == batch.boxes_per_sample for tensor in batch.tensors.values())


def remember(key, plan) -> None:
    """Keep ``plan`` for calls of ``key`` (at most 64 layouts)."""
    if key is not None and plan is not None:
        try:
            hash(key)
        except TypeError:
            return
        if len(PLANS) >= 64:
            PLANS.clear()
        PLANS[key] = plan


def run_and_plan(key, batch, backend: str, implementations, planned_op, args: tuple):
    """The op's output for a checked call: ``planned_op(*args)``'s (its plan remembered under ``key``)
    where the call may be repeated — a key, the direct Triton route, inputs used whole —, else the
    op through the dispatcher (``implementations``, :func:`gaussdraw.dispatch.run`)."""
    chosen = route(backend, args[0].device)
    if key is not None and chosen.use_triton and not chosen.traced and unsliced(batch):
        output, plan = planned_op(*args)
        remember(key, plan)
        return output
    return run(implementations, chosen, *args)

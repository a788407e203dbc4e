"""Repeated draw calls: the launch of an earlier call with the same layout.

A training loop draws the same layout every step. The first call of a layout checks its
arguments and launches; an unchecked CUDA call whose tensors have the dtypes, shapes,
strides and devices (and options) of an earlier one passed those checks already, so it
repeats that launch with its own tensors: ``PLANS`` maps a layout key to the
:class:`~gaussdraw.ops.launch.Relaunch` of its first direct launch.
"""

from __future__ import annotations

import torch

from .checks import resolve_validate

PLANS: dict = {}


def layout(tensor) -> tuple:
    """What the checks and the launch read of a tensor; TypeError for anything but a plain tensor."""
    if type(tensor) is not torch.Tensor:
        raise TypeError
    return tensor.dtype, tensor.shape, tensor.stride(), tensor.device


def ragged_layout(value) -> tuple:
    """(layout of the padded tensor, layout of the sample sizes or None) of a batched input."""
    if type(value) is torch.Tensor:  # (layout(value), inline: this runs for each input of every call)
        return (value.dtype, value.shape, value.stride(), value.device), None
    if isinstance(value, (list, tuple)):
        raise TypeError  # padded anew on every call
    return layout(value.tensor), layout(value.sample_sizes)


def planned(heatmap, validate, zeroed: bool, layout_key):
    """(key, relaunch) of an unchecked CUDA call: the layout's key (with ``zeroed``, whether the
    heatmap is zeros gaussdraw made: then no NaN can be in it, and the kernel need not keep one,
    see ``keep_nan`` in :func:`gaussdraw.ops.draw_gaussians.launch`) and the relaunch planned for
    it, if any; (None, None) where the call
    must take the checked path (CPU, checks on, torch.compile, inputs that are not plain tensors)."""
    if (type(heatmap) is not torch.Tensor or not heatmap.is_cuda or (validate is not None and validate is not False)
            or torch.compiler.is_compiling() or (validate is None and resolve_validate(None, heatmap.device))):
        return None, None
    try:
        key = (*layout_key(), zeroed)
    except (TypeError, AttributeError):
        return None, None
    return key, PLANS.get(key)


def written(heatmap: torch.Tensor) -> None:
    """Tell autograd that ``heatmap`` changed (kernels write it behind autograd's back), so that a
    backward through a graph that saved it raises, as after any in-place op."""
    if not torch.compiler.is_compiling() and not heatmap.is_inference():  # compiled: the op's mutation says it
        torch.autograd.graph.increment_version(heatmap)


def relaunched(heatmap: torch.Tensor) -> None:
    """:func:`written` for a planned call (:func:`planned` found it eager)."""
    if not heatmap.is_inference():
        torch.autograd.graph.increment_version(heatmap)


def remember(key, relaunch) -> None:
    """Keep ``relaunch`` for calls of ``key``'s layout (at most 256 layouts)."""
    if key is not None and relaunch is not None:
        if len(PLANS) >= 256:
            PLANS.clear()
        PLANS[key] = relaunch

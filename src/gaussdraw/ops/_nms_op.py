"""The torch.library registration shared by the NMS ops (:mod:`gaussdraw.ops.circle_nms`,
:mod:`gaussdraw.ops.rotated_nms`): each takes (boxes, order, counts, thresholds, post_max_size) and
returns (kept (S, post_max_size) int64, kept counts (S,) int64)."""

from __future__ import annotations

from typing import Callable

import torch

from ..dispatch import Implementations


def nms_implementations(name: str, triton: Callable, torch_impl: Callable) -> Implementations:
    """``Implementations`` of the NMS op ``gaussdraw::<name>``, registered here with its fake: the
    registered op runs the Triton implementation or the torch one, as ``use_triton`` says
    (:mod:`gaussdraw.dispatch`)."""
    implementations = Implementations(triton=triton, torch=torch_impl, registered=None)

    def registered(boxes: torch.Tensor, order: torch.Tensor, counts: torch.Tensor, thresholds: torch.Tensor,
                   post_max_size: int, use_triton: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return implementations.pick(use_triton)(boxes, order, counts, thresholds, post_max_size)

    registered.__doc__ = (f"The {name} op as torch.compile and the dispatcher see it: the Triton kernels or the "
                          "torch loop, as ``use_triton`` says (:mod:`gaussdraw.dispatch`).")
    op = torch.library.custom_op(f"gaussdraw::{name}", mutates_args=())(registered)

    @op.register_fake
    def _fake(boxes, order, counts, thresholds, post_max_size, use_triton):
        num_problems = order.shape[0]
        return (order.new_empty((num_problems, post_max_size)), order.new_empty((num_problems,)))

    implementations.registered = op
    return implementations

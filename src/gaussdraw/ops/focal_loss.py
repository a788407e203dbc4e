"""The Gaussian focal loss ops: a fused forward (with the gradient, on request) and a backward.

Per element, with probability p and Gaussian target t (mmdet's ``gaussian_focal_loss``):

    loss = pos_weight * [t == 1] * -log(p + eps) * (1 - p)^alpha
         + neg_weight * (1 - t)^gamma * -log(1 - p + eps) * p^alpha,      eps = 1e-12

and from logits x (p = sigmoid(x)), with log-sigmoid in place of log(p + eps) and
log(1 - p + eps), stable for every x.

Kernels:
- forward: one pass; per-program partial sums of the loss (their order depends on the
  shape only, so the total is deterministic) or the elementwise loss; the number of
  positives; optionally d(loss)/d(pred) times a scale (the "stored" gradient).
- finalize: one program sums the partials and applies the scale and divisor.
- scale_gradient: the stored gradient times the upstream gradient, in place; nothing
  is read or written when that factor is exactly 1.
- backward: recomputes d(loss)/d(pred) from the inputs (the registered op, float16,
  the elementwise loss, a second backward).

The kernels are in :mod:`.kernels.focal_loss`; the torch implementations of the same
formulas in :mod:`.focal_loss_torch`.

Math is in float32 (float64 for float64 inputs); a float16 gradient saturates at
+-65504 rather than overflow (at p exactly 0 or 1 the eps-limited gradient is ~1e12).
Scales are passed as float32 kernel arguments (relative 6e-8 for float64 inputs).
"""

from __future__ import annotations

import dataclasses

import torch

from ..dispatch import Implementations
from ._triton import check_device
from .focal_loss_torch import backward_torch, forward_torch


@dataclasses.dataclass(frozen=True)
class LossLaunchShape:
    """A launch shape of the loss kernels: elements per program step (``block``), programs (0: one
    per block, else at most this many, each stepping over every programs-th block), warps, and
    whether each step loads the next block before computing its own; ``chunk``: the finalize's
    lanes (forward only)."""

    block: int
    programs: int
    warps: int
    prefetch: bool
    chunk: int = 2048


# From the H100 grid in benchmarks/NOTES.md: the forward's per-program sums favour few
# programs that step and prefetch; the backward, without sums, one program per block.
FORWARD = LossLaunchShape(block=1024, programs=4096, warps=8, prefetch=True)
BACKWARD = LossLaunchShape(block=1024, programs=0, warps=4, prefetch=False)
SCALE = LossLaunchShape(block=1024, programs=1024, warps=4, prefetch=False)


# ----------------------------------------------------------------------------
# Triton launch (the kernels: kernels/focal_loss.py)
# ----------------------------------------------------------------------------


def _small_int(a: float) -> int:
    """``a`` as a small non-negative integer constexpr, or -1 (general power)."""
    return int(a) if float(a).is_integer() and 0 <= a <= 8 else -1


def _programs(n: int, shape: LossLaunchShape) -> int:
    """Programs of a launch over ``n`` elements: it depends on n only, so the partial sums' order does too."""
    blocks = max(1, -(-n // shape.block))
    return min(blocks, shape.programs) if shape.programs else blocks


def _math(alpha, gamma, pos_weight, neg_weight, logits) -> dict:
    """The forward and backward kernels' loss options, by their parameter names."""
    return dict(alpha=float(alpha), gamma=float(gamma), pos_weight=float(pos_weight), neg_weight=float(neg_weight),
                A_INT=_small_int(alpha), G_INT=_small_int(gamma), LOGITS=logits)


def focal_loss_triton(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce, *,
                      scale=1.0, avg_factor=None, divide_by_positives=False, loss_dtype=None, write_grad=False,
                      shape: LossLaunchShape = FORWARD):
    """One pass over the inputs and one small reduction; returns (loss, positives, grad_pred, divisor).

    loss: with ``reduce``, a 0-d ``loss_dtype`` tensor ``sum / divisor * scale``, where the
    divisor is ``avg_factor + eps`` (a 0-d tensor), ``max(1, positives) + eps``
    (``divide_by_positives``) or 1; else the elementwise loss in pred's dtype (unscaled).
    positives: 0-d int64. grad_pred (``write_grad``): d(sum)/d(pred) * scale in pred's
    dtype, or None. divisor: the 0-d divisor used, or None. ``shape``: the forward's launch
    shape (benchmarks, tests).
    """
    check_device(pred.device)
    from .kernels import focal_loss as kernels
    from .launch import launch

    n = pred.numel()
    programs = _programs(n, shape)
    acc_dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    partial = torch.empty(programs, dtype=acc_dtype, device=pred.device)
    positives = torch.empty(programs, dtype=torch.int32, device=pred.device)
    num_pos = torch.empty((), dtype=torch.int64, device=pred.device)
    loss = torch.empty((), dtype=loss_dtype or acc_dtype, device=pred.device) if reduce else torch.empty_like(pred)
    grad_pred = torch.empty_like(pred) if write_grad else None
    divisor_mode = 1 if avg_factor is not None else 2 if divide_by_positives else 0
    divisor = torch.empty((), dtype=acc_dtype, device=pred.device) if divisor_mode else None
    launch(kernels.focal_loss_forward_kernel, (programs,), num_warps=shape.warps,
           pred_ptr=pred, target_ptr=target, weight_ptr=pred if weight is None else weight, loss_ptr=loss,
           grad_pred_ptr=pred if grad_pred is None else grad_pred, partial_ptr=partial, positives_ptr=positives,
           n=n, grad_scale=float(scale), **_math(alpha, gamma, pos_weight, neg_weight, logits),
           HAS_WEIGHT=weight is not None, REDUCE=reduce, WRITE_GRAD=write_grad, BLOCK=shape.block,
           PREFETCH=shape.prefetch)
    launch(kernels.focal_loss_finalize_kernel, (1,), num_warps=8,
           partial_ptr=partial, positives_ptr=positives, parts=programs,
           avg_factor_ptr=partial if avg_factor is None else avg_factor, loss_ptr=loss, num_pos_ptr=num_pos,
           divisor_ptr=partial if divisor is None else divisor, scale=float(scale),
           REDUCE=reduce, DIVISOR=divisor_mode, CHUNK=min(shape.chunk, max(16, 1 << (programs - 1).bit_length())))
    return loss, num_pos, grad_pred, divisor


def scale_gradient_triton(grad_pred, grad, divisor=None, *, shape: LossLaunchShape = SCALE):
    """``grad_pred *= grad / divisor`` in place (0-d ``grad``, ``divisor``); no memory traffic when that is 1."""
    from .kernels import focal_loss as kernels
    from .launch import launch

    n = grad_pred.numel()
    launch(kernels.focal_loss_scale_gradient_kernel, (_programs(n, shape),), num_warps=shape.warps,
           grad_pred_ptr=grad_pred, grad_ptr=grad, divisor_ptr=grad if divisor is None else divisor, n=n,
           HAS_DIVISOR=divisor is not None, BLOCK=shape.block)
    return grad_pred


def forward_triton(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce):
    loss, positives, _, _ = focal_loss_triton(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits,
                                              reduce)
    return loss, positives


def backward_triton(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, *,
                    shape: LossLaunchShape = BACKWARD):
    check_device(pred.device)
    from .kernels import focal_loss as kernels
    from .launch import launch

    n = pred.numel()
    grad_pred = torch.empty_like(pred)
    launch(kernels.focal_loss_backward_kernel, (_programs(n, shape),), num_warps=shape.warps,
           grad_ptr=grad, pred_ptr=pred, target_ptr=target, weight_ptr=pred if weight is None else weight,
           grad_pred_ptr=grad_pred, n=n, **_math(alpha, gamma, pos_weight, neg_weight, logits),
           HAS_WEIGHT=weight is not None, GRAD_IS_SCALAR=grad.dim() == 0, BLOCK=shape.block,
           PREFETCH=shape.prefetch)
    return grad_pred


# ----------------------------------------------------------------------------
# torch.library registration
# ----------------------------------------------------------------------------


@torch.library.custom_op("gaussdraw::gaussian_focal_loss_forward", mutates_args=())
def focal_loss_forward_op(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
    alpha: float, gamma: float, pos_weight: float, neg_weight: float, logits: bool, reduce: bool, use_triton: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the loss as a 0-d fp32/fp64 tensor, or the elementwise loss; number of positives), by the
    Triton kernels or the torch formulas as ``use_triton`` says. Its gradient is
    :func:`focal_loss_backward_op` (``gaussdraw.loss`` differentiates the pair)."""
    return FOCAL_LOSS_FORWARD.pick(use_triton)(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits,
                                               reduce)


@focal_loss_forward_op.register_fake
def _forward_fake(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce, use_triton):
    acc = torch.float64 if pred.dtype == torch.float64 else torch.float32
    loss = pred.new_empty((), dtype=acc) if reduce else torch.empty_like(pred)
    return loss, pred.new_empty((), dtype=torch.int64)


@torch.library.custom_op("gaussdraw::gaussian_focal_loss_backward", mutates_args=())
def focal_loss_backward_op(
    grad: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
    alpha: float, gamma: float, pos_weight: float, neg_weight: float, logits: bool, use_triton: bool,
) -> torch.Tensor:
    """d(loss)/d(pred) times ``grad`` (0-d for a reduced loss, else pred's shape)."""
    return FOCAL_LOSS_BACKWARD.pick(use_triton)(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight,
                                                logits)


@focal_loss_backward_op.register_fake
def _backward_fake(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, use_triton):
    return torch.empty_like(pred)


FOCAL_LOSS_FORWARD = Implementations(triton=forward_triton, torch=forward_torch, registered=focal_loss_forward_op)
FOCAL_LOSS_BACKWARD = Implementations(triton=backward_triton, torch=backward_torch, registered=focal_loss_backward_op)

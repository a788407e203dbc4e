"""The Gaussian focal loss (CornerNet / CenterNet; mmdet's ``GaussianFocalLoss``), fused.

On the Triton backend the forward pass computes the reduced, scaled loss in one pass
over ``pred`` and ``target`` (and ``weight``) and, when ``pred`` needs a gradient,
writes that gradient in the same pass; backward only rescales it, and not at all for
an upstream gradient of 1. See ``_FocalLossFunction`` and benchmarks/NOTES.md.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .checks import resolve_validate, uses_triton
from .ops.focal_loss import backward_triton, focal_loss_forward_op, focal_loss_triton, scale_gradient_triton
from .ops.focal_loss_torch import backward_torch, forward_torch

REDUCTIONS = ("none", "mean", "sum")
_FLOAT32_EPS = torch.finfo(torch.float32).eps


def _check(pred, target, weight, alpha, gamma, reduction, avg_factor, backend, validate, logits):
    name = "logits" if logits else "pred"
    for arg, value in ((name, pred), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{arg} must be a torch.Tensor; got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{arg} must be a floating tensor; got {value.dtype}")
    if target.device != pred.device:
        raise ValueError(f"target is on {target.device} but {name} is on {pred.device}")
    if target.shape != pred.shape:
        raise ValueError(f"target must have {name}'s shape {tuple(pred.shape)}; got {tuple(target.shape)}")
    if target.requires_grad:
        raise ValueError("target requires grad; Gaussian heatmap targets are constants: pass target.detach()")
    if weight is not None:
        if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
            raise TypeError(f"weight must be a floating tensor; got {type(weight).__name__}")
        if weight.device != pred.device:
            raise ValueError(f"weight is on {weight.device} but {name} is on {pred.device}")
        try:
            broadcast = torch.broadcast_shapes(weight.shape, pred.shape)
        except RuntimeError:
            broadcast = None
        if broadcast != pred.shape:
            raise ValueError(
                f"weight of shape {tuple(weight.shape)} does not broadcast to {name}'s {tuple(pred.shape)}"
            )
        if weight.requires_grad:
            raise ValueError("weight requires grad; the loss does not differentiate its weights: pass "
                             "weight.detach()")
    for arg, value in (("alpha", alpha), ("gamma", gamma)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{arg} must be a finite number >= 0; got {value!r}")
    if isinstance(avg_factor, str) and avg_factor != "num_pos":
        raise ValueError(f'avg_factor must be a number, a tensor, None or "num_pos"; got {avg_factor!r}')
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
    if avg_factor is not None and reduction == "sum":
        raise ValueError('avg_factor can not be used with reduction="sum"')
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(f"backend must be 'auto', 'triton' or 'torch'; got {backend!r}")
    if resolve_validate(validate, pred.device):
        bad = (target < 0) | (target > 1) | target.isnan()
        if bool(bad.any()):
            first = int(bad.reshape(-1).nonzero()[0, 0])
            raise ValueError(f"target must be in [0, 1]; got {target.reshape(-1)[first].item()} at flat index {first}")


def _fused_avg_factor(avg_factor, device):
    """avg_factor as the fused path takes it: None, a float, "num_pos", or a 0-d tensor on ``device``;
    or ``False`` where only the composed path applies (a tensor that needs grad or holds several values)."""
    if not isinstance(avg_factor, torch.Tensor):
        return avg_factor
    if avg_factor.requires_grad or avg_factor.numel() != 1:
        return False
    return avg_factor.reshape(()).to(device)


def _focal_loss(pred, target, alpha, gamma, pos_weight, neg_weight, reduction, avg_factor, weight, backend,
                validate, logits, loss_weight=1.0):
    """(loss_weight * loss, number of positives)."""
    _check(pred, target, weight, alpha, gamma, reduction, avg_factor, backend, validate, logits)
    backend = "triton" if uses_triton(backend, pred.device) else "torch"
    if weight is not None and weight.shape != pred.shape:
        weight = weight.expand_as(pred)
    pred, target = pred.contiguous(), target.contiguous()
    weight = weight.contiguous() if weight is not None else None
    reduce = reduction != "none"
    options = (float(alpha), float(gamma), float(pos_weight), float(neg_weight), logits)
    fused_avg = _fused_avg_factor(avg_factor, pred.device) if backend == "triton" else False
    if fused_avg is not False and not torch.compiler.is_compiling():
        # one pass computes the scaled loss (and the gradient, when pred needs one)
        scale, divide_by_positives = float(loss_weight), False
        if reduction != "mean":  # avg_factor is ignored by "none", an error with "sum"
            fused_avg = None
        elif fused_avg is None:
            scale = scale / pred.numel() if pred.numel() else float("nan")  # the mean of nothing is NaN
        elif isinstance(fused_avg, str):
            fused_avg, divide_by_positives = None, True
        elif not isinstance(fused_avg, torch.Tensor):
            scale, fused_avg = scale / (fused_avg + _FLOAT32_EPS), None
        config = (options, reduce, scale, divide_by_positives)
        if torch.is_grad_enabled() and pred.requires_grad:
            loss, positives = _FocalLossFunction.apply(pred, target, weight, fused_avg, config)
        else:  # no graph to record: skip the autograd.Function's own cost
            loss, positives, _, _ = focal_loss_triton(pred, target, weight, *options, reduce, scale=scale,
                                                      avg_factor=fused_avg, divide_by_positives=divide_by_positives,
                                                      loss_dtype=pred.dtype)
        if reduction == "mean" and isinstance(avg_factor, torch.Tensor) and avg_factor.dim():
            loss = loss.reshape(avg_factor.shape)  # the shape of sum / avg_factor, as in mmdet
        return (loss * loss_weight if not reduce and loss_weight != 1 else loss), positives
    if backend == "torch" and not torch.compiler.is_compiling():
        if torch.is_grad_enabled() and pred.requires_grad:
            loss, positives = _TorchFocalLossFunction.apply(pred, target, weight, options, reduce)
        else:
            loss, positives = forward_torch(pred, target, weight, *options, reduce)
    else:
        loss, positives = focal_loss_forward_op(pred, target, weight, *options, reduce, backend)
    if avg_factor == "num_pos":
        avg_factor = positives.clamp(min=1)
    if reduction == "mean":
        # over no elements the mean is NaN, as torch.mean and mmdet give
        loss = loss / (avg_factor + _FLOAT32_EPS) if avg_factor is not None else loss / pred.numel()
    if reduce:
        loss = loss.to(pred.dtype)
    return (loss * loss_weight if loss_weight != 1 else loss), positives


class _TorchFocalLossFunction(torch.autograd.Function):
    """Eager calls of the torch backend: its formulas without the custom op's dispatch, whose first
    call in a process imports torch's compiler stack (~1 s, in every data-loader or CPU worker).
    torch.compile uses the registered ops."""

    @staticmethod
    def forward(ctx, pred, target, weight, options, reduce):
        loss, positives = forward_torch(pred, target, weight, *options, reduce)
        ctx.save_for_backward(pred, target, weight)
        ctx.options = options
        ctx.mark_non_differentiable(positives)
        return loss, positives

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, grad_positives):
        pred, target, weight = ctx.saved_tensors
        return backward_torch(grad_loss.contiguous(), pred, target, weight, *ctx.options), None, None, None, None


class _FocalLossFunction(torch.autograd.Function):
    """Eager calls of the Triton backend: the launchers without the custom-op dispatch (which
    costs about 1 ms per forward + backward on an H100 host, benchmarks/NOTES.md).

    A reduced loss whose ``pred`` needs a gradient gets it from the forward pass, already
    scaled as the loss is; backward multiplies it in place by the upstream gradient, and
    when that factor is exactly 1 (``loss.backward()`` on a sum of losses) reads and writes
    nothing. float16 ``pred`` (whose stored gradient would underflow before an AMP scale),
    the elementwise loss and a second backward recompute the gradient from the inputs.
    torch.compile uses the registered ops."""

    @staticmethod
    def forward(ctx, pred, target, weight, avg_factor, config):
        options, reduce, scale, divide_by_positives = config
        save_gradient = reduce and ctx.needs_input_grad[0] and pred.dtype != torch.float16
        loss, positives, grad_pred, divisor = focal_loss_triton(
            pred, target, weight, *options, reduce, scale=scale, avg_factor=avg_factor,
            divide_by_positives=divide_by_positives, loss_dtype=pred.dtype, write_grad=save_gradient,
        )
        ctx.save_for_backward(pred, target, weight)
        ctx.grad_pred, ctx.divisor = grad_pred, divisor
        ctx.options, ctx.reduce, ctx.scale = options, reduce, scale
        ctx.mark_non_differentiable(positives)
        return loss, positives

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, grad_positives):
        grad_pred, ctx.grad_pred = ctx.grad_pred, None  # handed over: a second backward recomputes
        if grad_pred is not None:
            scale_gradient_triton(grad_pred, grad_loss.contiguous(), ctx.divisor)
        else:
            pred, target, weight = ctx.saved_tensors
            factor = grad_loss.contiguous()
            if ctx.reduce:
                factor = factor.to(torch.float64 if pred.dtype == torch.float64 else torch.float32) * ctx.scale
                factor = factor / ctx.divisor if ctx.divisor is not None else factor
            grad_pred = backward_triton(factor, pred, target, weight, *ctx.options)
        return grad_pred, None, None, None, None


def gaussian_focal_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 2.0,
    gamma: float = 4.0,
    pos_weight: float = 1.0,
    neg_weight: float = 1.0,
    reduction: str = "mean",
    avg_factor: float | torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    *,
    backend: str = "auto",
    validate: bool | None = None,
) -> torch.Tensor:
    """Gaussian focal loss of probabilities ``pred`` against Gaussian heatmaps ``target``.

    Same values as mmdet 3.x's ``gaussian_focal_loss`` with its ``weighted_loss``
    reduction: positives where ``target == 1``, eps = 1e-12,

        loss = pos_weight * [t == 1] * -log(p + eps) * (1 - p)^alpha
             + neg_weight * (1 - t)^gamma * -log(1 - p + eps) * p^alpha

    Args:
        pred: (...) probabilities in [0, 1], float16/bfloat16/float32/float64
            (computed in float32, float64 for float64).
        target: Gaussian heatmap of ``pred``'s shape, values in [0, 1] (other values
            are the caller's bug, found by ``validate``).
        alpha, gamma: powers of the prediction and of the negatives' (1 - target), >= 0.
        pos_weight, neg_weight: weights of the positive and negative terms.
        reduction: "mean", "sum" or "none" (elementwise, in ``pred``'s dtype).
        avg_factor: with "mean", divide the sum by ``avg_factor + eps(float32)``
            instead of the element count; an error with "sum", as in mmdet. A number
            or a one-element tensor (read on the device, no sync); a tensor that
            needs a gradient gets one, through the unfused path.
        weight: elementwise weights, broadcastable to ``pred``.
        backend: "auto" (Triton on CUDA, torch on CPU), "triton" (on CPU tensors
            only under ``TRITON_INTERPRET=1``) or "torch".
        validate: check that ``target`` lies in [0, 1] and raise ``ValueError`` if not. The
            default, ``None``, checks on the CPU and not on a GPU, where the check reads
            values (a host sync); ``GAUSSDRAW_VALIDATE=1`` or
            :func:`gaussdraw.set_default_validate` makes it check everywhere.

    Returns:
        The loss: a 0-d tensor, or ``pred``'s shape for ``reduction="none"``.

    Example:
        >>> pred = torch.tensor([[0.9, 0.2], [0.1, 0.05]])
        >>> target = torch.tensor([[1.0, 0.5], [0.0, 0.1]])
        >>> round(gaussian_focal_loss(pred, target).item(), 6)
        0.000687
    """
    loss, _ = _focal_loss(pred, target, alpha, gamma, pos_weight, neg_weight, reduction, avg_factor, weight,
                          backend, validate, logits=False)
    return loss


def gaussian_focal_loss_with_logits(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 2.0,
    gamma: float = 4.0,
    pos_weight: float = 1.0,
    neg_weight: float = 1.0,
    reduction: str = "mean",
    avg_factor: float | str | torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    *,
    return_num_pos: bool = False,
    backend: str = "auto",
    validate: bool | None = None,
):
    """The Gaussian focal loss from logits: ``pred = sigmoid(logits)``, with
    ``log(p) = logsigmoid(x)`` and ``log(1 - p) = logsigmoid(-x)`` (no eps, no clamp:
    stable for any logit).

    Args:
        logits: (...) raw scores; other arguments as in :func:`gaussian_focal_loss`.
        avg_factor: also ``"num_pos"``: divide the sum by max(1, number of positives),
            counted in the same pass (CenterNet's usual normalization).
        return_num_pos: also return the number of positives (``target == 1``), a 0-d
            int64 tensor from the same pass.

    Returns:
        The loss, or ``(loss, num_pos)`` with ``return_num_pos=True``.

    Example:
        >>> logits = torch.tensor([[2.0, -1.0], [-3.0, -4.0]])
        >>> target = torch.tensor([[1.0, 0.5], [0.0, 0.1]])
        >>> loss, num_pos = gaussian_focal_loss_with_logits(logits, target, avg_factor="num_pos", return_num_pos=True)
        >>> round(loss.item(), 6), num_pos.item()
        (0.003333, 1)
    """
    loss, positives = _focal_loss(logits, target, alpha, gamma, pos_weight, neg_weight, reduction, avg_factor,
                                  weight, backend, validate, logits=True)
    return (loss, positives) if return_num_pos else loss


class GaussianFocalLoss(nn.Module):
    """mmdet 3.x's ``GaussianFocalLoss`` module, computed by :func:`gaussian_focal_loss`.

    Args:
        alpha, gamma, pos_weight, neg_weight: as in :func:`gaussian_focal_loss`.
        reduction: "mean" (default), "sum" or "none".
        loss_weight: multiplies the loss.
        backend: as in :func:`gaussian_focal_loss`.

    Example:
        >>> criterion = GaussianFocalLoss(loss_weight=2.0)
        >>> pred = torch.tensor([[0.9, 0.2], [0.1, 0.05]])
        >>> target = torch.tensor([[1.0, 0.5], [0.0, 0.1]])
        >>> round(criterion(pred, target, avg_factor=1).item(), 6)
        0.005498
    """

    def __init__(self, alpha: float = 2.0, gamma: float = 4.0, reduction: str = "mean", loss_weight: float = 1.0,
                 pos_weight: float = 1.0, neg_weight: float = 1.0, *, backend: str = "auto") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
        self.alpha, self.gamma, self.reduction, self.loss_weight = alpha, gamma, reduction, loss_weight
        self.pos_weight, self.neg_weight, self.backend = pos_weight, neg_weight, backend

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                avg_factor: float | None = None, reduction_override: str | None = None) -> torch.Tensor:
        if reduction_override not in (None, *REDUCTIONS):
            raise ValueError(f"reduction_override must be None or one of {REDUCTIONS}; got {reduction_override!r}")
        reduction = reduction_override or self.reduction
        loss, _ = _focal_loss(pred, target, self.alpha, self.gamma, self.pos_weight, self.neg_weight, reduction,
                              avg_factor, weight, self.backend, validate=None, logits=False,
                              loss_weight=self.loss_weight)
        return loss

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}, "
                f"loss_weight={self.loss_weight}, pos_weight={self.pos_weight}, neg_weight={self.neg_weight}")

"""The Gaussian focal loss (CornerNet / CenterNet; mmdet's ``GaussianFocalLoss``), fused.

One autograd path, :class:`_FocalLoss`, serves every backend, eager and compiled: its
forward and backward run the route :mod:`gaussdraw.dispatch` chooses (the registered ops
while torch.compile traces). Eager on the Triton backend, the forward pass computes the
reduced, scaled loss in one pass over ``pred`` and ``target`` (and ``weight``) and, when
``pred`` needs a gradient, writes that gradient in the same pass; backward only rescales
it, and not at all for an upstream gradient of 1 (benchmarks/NOTES.md).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import torch
from torch import nn

from .checks import raise_first, resolve_validate
from .dispatch import Route, check_backend, route, run
from .ops.focal_loss import FOCAL_LOSS_BACKWARD, FOCAL_LOSS_FORWARD, focal_loss_triton, scale_gradient_triton

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
    check_backend(backend)
    if resolve_validate(validate, pred.device):
        _check_values(pred, target, logits)


def _check_values(pred, target, logits: bool) -> None:
    """Raise for a target, or a probability ``pred``, outside [0, 1] or NaN (one host sync on a GPU)."""
    checks = [(~((target >= 0) & (target <= 1)), target, "target must be in [0, 1]")]
    if not logits:
        checks.append((~((pred >= 0) & (pred <= 1)), pred.detach(),
                       "pred must be probabilities in [0, 1] (for logits, use gaussian_focal_loss_with_logits)"))
    raise_first(checks)


class _Config(NamedTuple):
    """How :class:`_FocalLoss` computes: the loss's options, whether it is reduced, the scale of a
    reduced loss, whether it is divided by max(1, positives), whether a reduced loss stays in the
    float32/float64 it is summed in (to be divided afterwards), and the route."""

    options: tuple  # alpha, gamma, pos_weight, neg_weight, logits
    reduce: bool
    scale: float
    divide_by_positives: bool
    keep_accumulator: bool
    chosen: Route


def _inner_avg_factor(avg_factor, device):
    """avg_factor as :class:`_FocalLoss` takes it (a 0-d tensor on ``device``), or None where the
    division happens outside it (a tensor that needs grad or holds several values: autograd
    differentiates that division)."""
    if not isinstance(avg_factor, torch.Tensor) or avg_factor.requires_grad or avg_factor.numel() != 1:
        return None
    return avg_factor.reshape(()).to(device)


def _plan(pred, reduction, avg_factor, loss_weight, chosen, options):
    """(config, avg_factor for :class:`_FocalLoss` or None, avg_factor to divide by afterwards or None)."""
    reduce, scale, divide_by_positives, inner, outer = reduction != "none", float(loss_weight), False, None, None
    if reduction == "mean":  # avg_factor is ignored by "none", an error with "sum"
        if avg_factor is None:
            scale = scale / pred.numel() if pred.numel() else float("nan")  # the mean of nothing is NaN
        elif isinstance(avg_factor, str):
            divide_by_positives = True
        elif not isinstance(avg_factor, torch.Tensor):
            scale = scale / (avg_factor + _FLOAT32_EPS)
        else:
            inner = _inner_avg_factor(avg_factor, pred.device)
            outer = avg_factor if inner is None else None
    return _Config(options, reduce, scale, divide_by_positives, outer is not None, chosen), inner, outer


def _forward(pred, target, weight, avg_factor, config: _Config, write_grad: bool):
    """(loss, positives, d(loss)/d(pred) or None, divisor or None): the reduced loss is
    ``sum / divisor * scale`` in pred's dtype, the divisor ``avg_factor + eps``, ``max(1, positives)
    + eps`` or none; the elementwise loss is unscaled."""
    chosen = config.chosen
    if chosen.use_triton and not chosen.traced:  # one pass, the gradient on request
        return focal_loss_triton(pred, target, weight, *config.options, config.reduce, scale=config.scale,
                                 avg_factor=avg_factor, divide_by_positives=config.divide_by_positives,
                                 loss_dtype=None if config.keep_accumulator else pred.dtype, write_grad=write_grad)
    loss, positives = run(FOCAL_LOSS_FORWARD, chosen, pred, target, weight, *config.options, config.reduce)
    if not config.reduce:
        return loss, positives, None, None
    divisor = None
    if config.divide_by_positives:
        divisor = positives.clamp(min=1).to(loss.dtype) + _FLOAT32_EPS
    elif avg_factor is not None:
        divisor = _cast(avg_factor, loss.dtype) + _FLOAT32_EPS
    if divisor is not None:
        loss = loss / divisor
    loss = loss * config.scale
    return (loss if config.keep_accumulator else _cast(loss, pred.dtype)), positives, None, divisor


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` in ``dtype``; never ``.to()`` to its own dtype, whose result (the tensor itself)
    made torch 2.11's compiled autograd.Function pass the loss a zero gradient."""
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


class _FocalLoss(torch.autograd.Function):
    """The loss and its gradient, on the route of ``config`` (see :func:`_forward`).

    Eager on the Triton backend, a reduced loss whose ``pred`` needs a gradient gets it from the
    forward pass, already scaled as the loss is; backward multiplies it in place by the upstream
    gradient, and when that factor is exactly 1 (``loss.backward()`` on a sum of losses) reads
    and writes nothing. float16 ``pred`` (whose stored gradient would underflow before an AMP
    scale), the elementwise loss, other routes and a second backward recompute the gradient
    from the inputs."""

    @staticmethod
    def forward(ctx, pred, target, weight, avg_factor, config):
        chosen = config.chosen
        stored = (config.reduce and chosen.use_triton and not chosen.traced and ctx.needs_input_grad[0]
                  and pred.dtype != torch.float16)
        loss, positives, grad_pred, divisor = _forward(pred, target, weight, avg_factor, config, stored)
        ctx.save_for_backward(pred, target, weight, divisor)
        ctx.grad_pred, ctx.config = grad_pred, config
        return loss, positives  # positives: int64, not differentiable

    @staticmethod
    def backward(ctx, grad_loss, grad_positives):
        grad_pred, ctx.grad_pred = ctx.grad_pred, None  # handed over: a second backward recomputes
        pred, target, weight, divisor = ctx.saved_tensors
        config = ctx.config
        if grad_pred is not None:
            scale_gradient_triton(grad_pred, grad_loss.contiguous(), divisor)
            return grad_pred, None, None, None, None
        factor = grad_loss.contiguous()
        if config.reduce:
            factor = factor.to(torch.float64 if pred.dtype == torch.float64 else torch.float32) * config.scale
            factor = factor / divisor if divisor is not None else factor
        grad_pred = run(FOCAL_LOSS_BACKWARD, config.chosen, factor, pred, target, weight, *config.options)
        return grad_pred, None, None, None, None


def _focal_loss(pred, target, alpha, gamma, pos_weight, neg_weight, reduction, avg_factor, weight, backend,
                validate, logits, loss_weight=1.0):
    """(loss_weight * loss, number of positives)."""
    _check(pred, target, weight, alpha, gamma, reduction, avg_factor, backend, validate, logits)
    if weight is not None and weight.shape != pred.shape:
        weight = weight.expand_as(pred)
    pred, target = pred.contiguous(), target.contiguous()
    weight = weight.contiguous() if weight is not None else None
    options = (float(alpha), float(gamma), float(pos_weight), float(neg_weight), logits)
    config, inner, outer = _plan(pred, reduction, avg_factor, loss_weight, route(backend, pred.device), options)
    if torch.is_grad_enabled() and pred.requires_grad:
        loss, positives = _FocalLoss.apply(pred, target, weight, inner, config)
    else:  # no graph to record: skip the autograd.Function's own cost
        loss, positives, _, _ = _forward(pred, target, weight, inner, config, write_grad=False)
    if outer is not None:  # autograd differentiates this division (avg_factor needs grad)
        loss = _cast(loss / (outer + _FLOAT32_EPS), pred.dtype)
    elif reduction == "mean" and isinstance(avg_factor, torch.Tensor) and avg_factor.dim():
        loss = loss.reshape(avg_factor.shape)  # the shape of sum / avg_factor, as in mmdet
    return (loss * loss_weight if not config.reduce and loss_weight != 1 else loss), positives


def gaussian_focal_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, gamma: float = 4.0,
                        pos_weight: float = 1.0, neg_weight: float = 1.0, reduction: str = "mean",
                        avg_factor: float | torch.Tensor | None = None, weight: torch.Tensor | None = None, *,
                        backend: str = "auto", validate: bool | None = None) -> torch.Tensor:
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
            needs a gradient gets one (the division by it is left to autograd).
        weight: elementwise weights, broadcastable to ``pred``.
        backend: "auto" (Triton on CUDA, torch on CPU), "triton" (on CPU tensors
            only under ``TRITON_INTERPRET=1``) or "torch".
        validate: check that ``target`` and ``pred`` lie in [0, 1] (not NaN) and raise
            ``ValueError`` if not (``pred`` outside it is logits: use
            :func:`gaussian_focal_loss_with_logits`). The default, ``None``, checks on
            the CPU and not on a GPU, where the check reads values (one host sync for
            both); ``GAUSSDRAW_VALIDATE=1`` or
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
        validate: as there, for ``target`` only (every logit is valid).
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

"""The Gaussian focal loss ops: forward (reduced or elementwise) and backward, one pass each.

Per element, with probability p and Gaussian target t (mmdet's ``gaussian_focal_loss``):

    loss = pos_weight * [t == 1] * -log(p + eps) * (1 - p)^alpha
         + neg_weight * (1 - t)^gamma * -log(1 - p + eps) * p^alpha,      eps = 1e-12

and from logits x (p = sigmoid(x)), with log-sigmoid in place of log(p + eps) and
log(1 - p + eps), stable for every x. The forward op returns per-program partial sums
(a fixed order for a given shape, so the total is deterministic) or the elementwise
loss, plus the number of positives counted in the same pass. The backward op
recomputes d(loss)/d(pred) from the inputs, so nothing but the inputs is saved.
Math is in float32 (float64 for float64 inputs); a float16 gradient saturates at
+-65504 rather than overflow (at p exactly 0 or 1 the eps-limited gradient is ~1e12).
"""

from __future__ import annotations

import contextlib

import torch

from ._triton import check_device, jit, tl

EPS = 1e-12
BLOCK = 1024


# ----------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------


@jit
def _pow(x, a, A_INT: tl.constexpr):
    """x ** a for x >= 0 (0 ** 0 = 1), by repeated products when a is a small integer."""
    if A_INT >= 0:
        result = tl.full(x.shape, 1.0, x.dtype)
        for _ in tl.static_range(A_INT):
            result = result * x
    else:
        result = tl.where(x > 0, tl.exp2(a * tl.log2(tl.maximum(x, 1e-38))), tl.where(a == 0, 1.0, 0.0))
    return result


@jit
def _softplus(z):
    """log(1 + exp(z)), stable for any z."""
    e = tl.exp(-tl.abs(z))
    log1p_e = tl.where(e < 1e-4, e - 0.5 * e * e, tl.log(1.0 + e))
    return tl.maximum(z, 0.0) + log1p_e


@jit
def _terms(x, t, alpha, gamma, A_INT: tl.constexpr, G_INT: tl.constexpr, LOGITS: tl.constexpr):
    """(log p, log(1 - p), p, 1 - p, (1 - p)^alpha, p^alpha, (1 - t)^gamma, [t == 1])."""
    if LOGITS:
        log_p = -_softplus(-x)
        log_q = -_softplus(x)
        p = tl.exp(log_p)
        q = tl.exp(log_q)
    else:
        p = x
        q = 1.0 - x
        log_p = tl.log(p + 1e-12)
        log_q = tl.log(q + 1e-12)
    return log_p, log_q, p, q, _pow(q, alpha, A_INT), _pow(p, alpha, A_INT), _pow(1.0 - t, gamma, G_INT), t == 1.0


@jit
def _load_terms(pred_ptr, target_ptr, o, m, alpha, gamma, A_INT: tl.constexpr, G_INT: tl.constexpr,
                LOGITS: tl.constexpr):
    """Load a block of pred and target (float32, float64 for float64 pred) and compute its terms."""
    c_dtype = tl.float64 if pred_ptr.dtype.element_ty == tl.float64 else tl.float32
    x = tl.load(pred_ptr + o, mask=m, other=0.5).to(c_dtype)
    t = tl.load(target_ptr + o, mask=m, other=0.0).to(c_dtype)
    return _terms(x, t, alpha, gamma, A_INT, G_INT, LOGITS)


@jit
def _focal_loss_forward_kernel(
    pred_ptr, target_ptr, weight_ptr, loss_ptr, partial_ptr, positives_ptr, n,
    alpha, gamma, pos_weight, neg_weight,
    A_INT: tl.constexpr, G_INT: tl.constexpr, LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr,
    REDUCE: tl.constexpr, BLOCK: tl.constexpr,
):
    # One program = BLOCK consecutive elements: their loss (stored, or summed into
    # one partial) and their count of positives.
    pid = tl.program_id(0)
    o = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    log_p, log_q, p, q, q_a, p_a, neg_w, pos = _load_terms(pred_ptr, target_ptr, o, m, alpha, gamma, A_INT, G_INT,
                                                           LOGITS)
    c_dtype = log_p.dtype
    b_loss = pos_weight * tl.where(pos, -log_p * q_a, 0.0) + neg_weight * (-log_q * p_a * neg_w)
    if HAS_WEIGHT:
        b_loss = b_loss * tl.load(weight_ptr + o, mask=m, other=0.0).to(c_dtype)
    b_loss = tl.where(m, b_loss, 0.0)
    if REDUCE:
        tl.store(partial_ptr + pid, tl.sum(b_loss, axis=0))
    else:
        tl.store(loss_ptr + o, b_loss.to(loss_ptr.dtype.element_ty), mask=m)
    tl.store(positives_ptr + pid, tl.sum((pos & m).to(tl.int32), axis=0))


@jit
def _focal_loss_backward_kernel(
    grad_ptr, pred_ptr, target_ptr, weight_ptr, grad_pred_ptr, n,
    alpha, gamma, pos_weight, neg_weight,
    A_INT: tl.constexpr, G_INT: tl.constexpr, LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr,
    GRAD_IS_SCALAR: tl.constexpr, BLOCK: tl.constexpr,
):
    # One program = BLOCK consecutive elements of d(loss)/d(pred), recomputed from the inputs.
    pid = tl.program_id(0)
    o = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    log_p, log_q, p, q, q_a, p_a, neg_w, pos = _load_terms(pred_ptr, target_ptr, o, m, alpha, gamma, A_INT, G_INT,
                                                           LOGITS)
    c_dtype = log_p.dtype
    if LOGITS:
        d_pos = q_a * (alpha * p * log_p - q)
        d_neg = p_a * (p - alpha * q * log_q) * neg_w
    else:
        # d/dp of x^alpha uses x^(alpha - 1): the integer shortcut one lower, if any
        q_a1 = _pow(q, alpha - 1.0, A_INT - 1 if A_INT >= 1 else -1)
        p_a1 = _pow(p, alpha - 1.0, A_INT - 1 if A_INT >= 1 else -1)
        d_pos = -q_a / (p + 1e-12) + alpha * log_p * q_a1
        d_neg = (p_a / (q + 1e-12) - alpha * log_q * p_a1) * neg_w
    b_grad = pos_weight * tl.where(pos, d_pos, 0.0) + neg_weight * d_neg
    if HAS_WEIGHT:
        b_grad = b_grad * tl.load(weight_ptr + o, mask=m, other=0.0).to(c_dtype)
    if GRAD_IS_SCALAR:
        b_grad = b_grad * tl.load(grad_ptr).to(c_dtype)
    else:
        b_grad = b_grad * tl.load(grad_ptr + o, mask=m, other=0.0).to(c_dtype)
    if grad_pred_ptr.dtype.element_ty == tl.float16:  # saturate: eps-limited gradients at p = 0 or 1 reach 1e12
        b_grad = tl.minimum(tl.maximum(b_grad, -65504.0), 65504.0)
    tl.store(grad_pred_ptr + o, b_grad.to(grad_pred_ptr.dtype.element_ty), mask=m)


def _small_int(a: float) -> int:
    """``a`` as a small non-negative integer constexpr, or -1 (general power)."""
    return int(a) if float(a).is_integer() and 0 <= a <= 8 else -1


def forward_triton(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce):
    check_device(pred.device)
    n = pred.numel()
    programs = max(1, -(-n // BLOCK))
    acc_dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    partial = torch.empty(programs if reduce else 1, dtype=acc_dtype, device=pred.device)
    positives = torch.zeros(programs, dtype=torch.int32, device=pred.device)
    loss = partial if reduce else torch.empty_like(pred)
    if n:
        with torch.cuda.device(pred.device) if pred.is_cuda else contextlib.nullcontext():
            _focal_loss_forward_kernel[(programs,)](
                pred, target, weight if weight is not None else pred, loss, partial, positives, n,
                float(alpha), float(gamma), float(pos_weight), float(neg_weight),
                A_INT=_small_int(alpha), G_INT=_small_int(gamma), LOGITS=logits, HAS_WEIGHT=weight is not None,
                REDUCE=reduce, BLOCK=BLOCK, num_warps=4,
            )
    else:
        partial.zero_()
    return (partial.sum() if reduce else loss), positives.sum()


def backward_triton(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits):
    check_device(pred.device)
    n = pred.numel()
    grad_pred = torch.empty_like(pred)
    if n:
        with torch.cuda.device(pred.device) if pred.is_cuda else contextlib.nullcontext():
            _focal_loss_backward_kernel[(-(-n // BLOCK),)](
                grad, pred, target, weight if weight is not None else pred, grad_pred, n,
                float(alpha), float(gamma), float(pos_weight), float(neg_weight),
                A_INT=_small_int(alpha), G_INT=_small_int(gamma), LOGITS=logits, HAS_WEIGHT=weight is not None,
                GRAD_IS_SCALAR=grad.dim() == 0, BLOCK=BLOCK, num_warps=4,
            )
    return grad_pred


# ----------------------------------------------------------------------------
# torch implementations (the same formulas, elementwise)
# ----------------------------------------------------------------------------


def _terms_torch(pred, target, alpha, gamma, logits):
    c_dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    x, t = pred.to(c_dtype), target.to(c_dtype)
    if logits:
        log_p, log_q = torch.nn.functional.logsigmoid(x), torch.nn.functional.logsigmoid(-x)
        p, q = log_p.exp(), log_q.exp()
    else:
        p, q = x, 1 - x
        log_p, log_q = (p + EPS).log(), (q + EPS).log()
    return log_p, log_q, p, q, q.pow(alpha), p.pow(alpha), (1 - t).pow(gamma), t == 1


def forward_torch(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce):
    log_p, log_q, p, q, q_a, p_a, neg_w, pos = _terms_torch(pred, target, alpha, gamma, logits)
    loss = pos_weight * torch.where(pos, -log_p * q_a, 0.0) + neg_weight * (-log_q * p_a * neg_w)
    if weight is not None:
        loss = loss * weight.to(loss.dtype)
    positives = pos.sum()
    return (loss.sum() if reduce else loss.to(pred.dtype)), positives


def backward_torch(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits):
    log_p, log_q, p, q, q_a, p_a, neg_w, pos = _terms_torch(pred, target, alpha, gamma, logits)
    if logits:
        d_pos = q_a * (alpha * p * log_p - q)
        d_neg = p_a * (p - alpha * q * log_q) * neg_w
    else:
        d_pos = -q_a / (p + EPS) + alpha * log_p * q.pow(alpha - 1)
        d_neg = (p_a / (q + EPS) - alpha * log_q * p.pow(alpha - 1)) * neg_w
    out = pos_weight * torch.where(pos, d_pos, 0.0) + neg_weight * d_neg
    if weight is not None:
        out = out * weight.to(out.dtype)
    out = out * grad.to(out.dtype)
    if pred.dtype == torch.float16:  # saturate, as the Triton kernel does
        out = out.clamp(-65504.0, 65504.0)
    return out.to(pred.dtype)


# ----------------------------------------------------------------------------
# torch.library registration
# ----------------------------------------------------------------------------


@torch.library.custom_op("gaussdraw::gaussian_focal_loss_forward", mutates_args=())
def focal_loss_forward_op(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
    alpha: float, gamma: float, pos_weight: float, neg_weight: float, logits: bool, reduce: bool, backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the loss as a 0-d fp32/fp64 tensor, or the elementwise loss; number of positives)."""
    impl = forward_triton if backend == "triton" else forward_torch
    return impl(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce)


@focal_loss_forward_op.register_fake
def _forward_fake(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce, backend):
    acc = torch.float64 if pred.dtype == torch.float64 else torch.float32
    loss = pred.new_empty((), dtype=acc) if reduce else torch.empty_like(pred)
    return loss, pred.new_empty((), dtype=torch.int64)


@torch.library.custom_op("gaussdraw::gaussian_focal_loss_backward", mutates_args=())
def focal_loss_backward_op(
    grad: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
    alpha: float, gamma: float, pos_weight: float, neg_weight: float, logits: bool, backend: str,
) -> torch.Tensor:
    """d(loss)/d(pred) times ``grad`` (0-d for a reduced loss, else pred's shape)."""
    impl = backward_triton if backend == "triton" else backward_torch
    return impl(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits)


@focal_loss_backward_op.register_fake
def _backward_fake(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, backend):
    return torch.empty_like(pred)


def _setup_context(ctx, inputs, output):
    pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce, backend = inputs
    ctx.save_for_backward(pred, target, weight)
    ctx.options = (alpha, gamma, pos_weight, neg_weight, logits, backend)


def _backward(ctx, grad_loss, grad_positives):
    pred, target, weight = ctx.saved_tensors
    alpha, gamma, pos_weight, neg_weight, logits, backend = ctx.options
    grad_pred = focal_loss_backward_op(grad_loss.contiguous(), pred, target, weight, alpha, gamma, pos_weight,
                                       neg_weight, logits, backend)
    return grad_pred, None, None, None, None, None, None, None, None, None


focal_loss_forward_op.register_autograd(_backward, setup_context=_setup_context)

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

The torch implementations of the same formulas are in :mod:`.focal_loss_torch`.

Math is in float32 (float64 for float64 inputs); a float16 gradient saturates at
+-65504 rather than overflow (at p exactly 0 or 1 the eps-limited gradient is ~1e12).
Scales are passed as float32 kernel arguments (relative 6e-8 for float64 inputs).
"""

from __future__ import annotations

import torch

from ..dispatch import Implementations
from ._triton import Launcher, check_device, jit, tl
from .focal_loss_torch import backward_torch, forward_torch

# Launch shapes: elements per program step, programs (0: one per block, else at most this
# many, each stepping over every programs-th block), warps, and whether each step loads
# the next block before computing its own; chunk: the finalize's lanes. From the H100
# grid in benchmarks/NOTES.md: the forward's per-program sums favour few programs that
# step and prefetch; the backward, without sums, one program per block.
DEFAULT_SHAPES = {
    "forward": dict(block=1024, programs=4096, warps=8, prefetch=True, chunk=2048),
    "backward": dict(block=1024, programs=0, warps=4, prefetch=False),
    "scale": dict(block=1024, programs=1024, warps=4, prefetch=False),
}
# Overrides of the loss kernels' shape, for `gaussdraw bench --loss-variants`.
TUNING: dict = {}


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
        result = tl.where(x > 0, tl.exp2(a * tl.log2(tl.maximum(x, 1.1754943508222875e-38))), tl.where(a == 0, 1.0, 0.0))
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
def _loss(log_p, log_q, q_a, p_a, neg_w, pos, pos_weight, neg_weight):
    # a zero weight is zero loss, also where log(1 - p) is -inf (an infinite logit): no 0 * inf
    neg = p_a * neg_w
    return pos_weight * tl.where(pos, -log_p * q_a, 0.0) + neg_weight * tl.where(neg == 0.0, 0.0, -log_q * neg)


@jit
def _gradient(log_p, log_q, p, q, q_a, p_a, neg_w, pos, alpha, pos_weight, neg_weight, A_INT: tl.constexpr,
              LOGITS: tl.constexpr):
    """d(loss)/d(pred) of one element: pred is a logit (LOGITS) or a probability."""
    if LOGITS:  # x log x -> 0 as x -> 0 (infinite logits)
        d_pos = q_a * (alpha * tl.where(p == 0.0, 0.0, p * log_p) - q)
        d_neg = p_a * (p - alpha * tl.where(q == 0.0, 0.0, q * log_q)) * neg_w
    else:
        # d/dp of x^alpha uses x^(alpha - 1): the integer shortcut one lower, if any
        q_a1 = _pow(q, alpha - 1.0, A_INT - 1 if A_INT >= 1 else -1)
        p_a1 = _pow(p, alpha - 1.0, A_INT - 1 if A_INT >= 1 else -1)
        d_pos = -q_a / (p + 1e-12) + alpha * log_p * q_a1
        d_neg = (p_a / (q + 1e-12) - alpha * log_q * p_a1) * neg_w
    return pos_weight * tl.where(pos, d_pos, 0.0) + neg_weight * d_neg


@jit
def _store_gradient(grad_pred_ptr, o, m, b_grad):
    if grad_pred_ptr.dtype.element_ty == tl.float16:  # saturate: eps-limited gradients at p = 0 or 1 reach 1e12
        b_grad = tl.minimum(tl.maximum(b_grad, -65504.0), 65504.0)
    tl.store(grad_pred_ptr + o, b_grad.to(grad_pred_ptr.dtype.element_ty), mask=m)


@jit
def _load_block(pred_ptr, target_ptr, weight_ptr, o, n, HAS_WEIGHT: tl.constexpr):
    m = o < n
    x = tl.load(pred_ptr + o, mask=m, other=0.5)
    t = tl.load(target_ptr + o, mask=m, other=0.0)
    w = tl.load(weight_ptr + o, mask=m, other=0.0) if HAS_WEIGHT else x
    return x, t, w


@jit
def _first_block(pred_ptr, target_ptr, weight_ptr, first, n, HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr,
                 PREFETCH: tl.constexpr):
    """What a stepping loop carries in: the first block's inputs when prefetching, else placeholders."""
    if PREFETCH:
        x, t, w = _load_block(pred_ptr, target_ptr, weight_ptr, first + tl.arange(0, BLOCK), n, HAS_WEIGHT)
    else:
        x = tl.zeros([BLOCK], dtype=pred_ptr.dtype.element_ty)
        t, w = x, x
    return x, t, w


@jit
def _block_inputs(pred_ptr, target_ptr, weight_ptr, o, step, n, x_next, t_next, w_next, HAS_WEIGHT: tl.constexpr,
                  PREFETCH: tl.constexpr):
    """This block's inputs in the math dtype, and what the loop carries on: when
    prefetching, the next block's loads, issued before this block's math."""
    if PREFETCH:
        x, t, w = x_next, t_next, w_next
        x_next, t_next, w_next = _load_block(pred_ptr, target_ptr, weight_ptr, o + step, n, HAS_WEIGHT)
    else:
        x, t, w = _load_block(pred_ptr, target_ptr, weight_ptr, o, n, HAS_WEIGHT)
    c_dtype = tl.float64 if pred_ptr.dtype.element_ty == tl.float64 else tl.float32
    return x.to(c_dtype), t.to(c_dtype), w.to(c_dtype), x_next, t_next, w_next


@jit
def _focal_loss_forward_kernel(
    pred_ptr, target_ptr, weight_ptr, loss_ptr, grad_pred_ptr, partial_ptr, positives_ptr, n, grad_scale,
    alpha, gamma, pos_weight, neg_weight,
    A_INT: tl.constexpr, G_INT: tl.constexpr, LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr,
    REDUCE: tl.constexpr, WRITE_GRAD: tl.constexpr, BLOCK: tl.constexpr, PREFETCH: tl.constexpr,
):
    # One program = blocks pid, pid + programs, ... of BLOCK elements: their loss (stored,
    # or summed into the program's partial), their count of positives, and with WRITE_GRAD
    # d(loss)/d(pred) * grad_scale. PREFETCH loads the next block before computing this one.
    # The partials' order depends on the shape only.
    pid = tl.program_id(0)
    step = tl.num_programs(0).to(tl.int64) * BLOCK
    c_dtype = tl.float64 if pred_ptr.dtype.element_ty == tl.float64 else tl.float32
    b_sum = tl.zeros([BLOCK], dtype=c_dtype)
    b_positives = tl.zeros([BLOCK], dtype=tl.int32)
    first = pid.to(tl.int64) * BLOCK
    x_next, t_next, w_next = _first_block(pred_ptr, target_ptr, weight_ptr, first, n, HAS_WEIGHT, BLOCK, PREFETCH)
    for start in range(first, n, step):
        o = start + tl.arange(0, BLOCK)
        m = o < n
        x, t, w, x_next, t_next, w_next = _block_inputs(pred_ptr, target_ptr, weight_ptr, o, step, n, x_next, t_next,
                                                        w_next, HAS_WEIGHT, PREFETCH)
        log_p, log_q, p, q, q_a, p_a, neg_w, pos = _terms(x, t, alpha, gamma, A_INT, G_INT, LOGITS)
        b_loss = _loss(log_p, log_q, q_a, p_a, neg_w, pos, pos_weight, neg_weight)
        if HAS_WEIGHT:
            b_loss = b_loss * w
        if REDUCE:
            b_sum += tl.where(m, b_loss, 0.0)
        else:
            tl.store(loss_ptr + o, b_loss.to(loss_ptr.dtype.element_ty), mask=m)
        b_positives += (pos & m).to(tl.int32)
        if WRITE_GRAD:
            b_grad = _gradient(log_p, log_q, p, q, q_a, p_a, neg_w, pos, alpha, pos_weight, neg_weight, A_INT, LOGITS)
            if HAS_WEIGHT:
                b_grad = b_grad * w
            _store_gradient(grad_pred_ptr, o, m, b_grad * grad_scale)
    if REDUCE:
        tl.store(partial_ptr + pid, tl.sum(b_sum, axis=0))
    tl.store(positives_ptr + pid, tl.sum(b_positives, axis=0))


@jit
def _focal_loss_finalize_kernel(
    partial_ptr, positives_ptr, parts, avg_factor_ptr, loss_ptr, num_pos_ptr, divisor_ptr, scale,
    REDUCE: tl.constexpr, DIVISOR: tl.constexpr, CHUNK: tl.constexpr,
):
    # One program: the partials and counts summed in a fixed order (CHUNK lanes, then a
    # tree); loss = sum / divisor * scale with DIVISOR 0: none, 1: avg_factor + eps (a
    # tensor), 2: max(1, positives) + eps.
    b_total = tl.zeros([CHUNK], dtype=partial_ptr.dtype.element_ty)
    b_positives = tl.zeros([CHUNK], dtype=tl.int64)
    for start in range(0, parts, CHUNK):
        o = start + tl.arange(0, CHUNK)
        m = o < parts
        b_positives += tl.load(positives_ptr + o, mask=m, other=0).to(tl.int64)
        if REDUCE:
            b_total += tl.load(partial_ptr + o, mask=m, other=0.0)
    num_pos = tl.sum(b_positives, axis=0)
    tl.store(num_pos_ptr, num_pos)
    if REDUCE:
        total = tl.sum(b_total, axis=0)
        if DIVISOR == 1:
            divisor = tl.load(avg_factor_ptr).to(total.dtype) + 1.1920928955078125e-07
        if DIVISOR == 2:
            divisor = tl.maximum(num_pos, 1).to(total.dtype) + 1.1920928955078125e-07
        if DIVISOR != 0:
            total = total / divisor
            tl.store(divisor_ptr, divisor)
        tl.store(loss_ptr, (total * scale).to(loss_ptr.dtype.element_ty))


@jit
def _focal_loss_backward_kernel(
    grad_ptr, pred_ptr, target_ptr, weight_ptr, grad_pred_ptr, n,
    alpha, gamma, pos_weight, neg_weight,
    A_INT: tl.constexpr, G_INT: tl.constexpr, LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr,
    GRAD_IS_SCALAR: tl.constexpr, BLOCK: tl.constexpr, PREFETCH: tl.constexpr,
):
    # One program = blocks pid, pid + programs, ... of d(loss)/d(pred), recomputed from the inputs.
    pid = tl.program_id(0)
    step = tl.num_programs(0).to(tl.int64) * BLOCK
    c_dtype = tl.float64 if pred_ptr.dtype.element_ty == tl.float64 else tl.float32
    first = pid.to(tl.int64) * BLOCK
    x_next, t_next, w_next = _first_block(pred_ptr, target_ptr, weight_ptr, first, n, HAS_WEIGHT, BLOCK, PREFETCH)
    for start in range(first, n, step):
        o = start + tl.arange(0, BLOCK)
        m = o < n
        x, t, w, x_next, t_next, w_next = _block_inputs(pred_ptr, target_ptr, weight_ptr, o, step, n, x_next, t_next,
                                                        w_next, HAS_WEIGHT, PREFETCH)
        log_p, log_q, p, q, q_a, p_a, neg_w, pos = _terms(x, t, alpha, gamma, A_INT, G_INT, LOGITS)
        b_grad = _gradient(log_p, log_q, p, q, q_a, p_a, neg_w, pos, alpha, pos_weight, neg_weight, A_INT, LOGITS)
        if HAS_WEIGHT:
            b_grad = b_grad * w
        if GRAD_IS_SCALAR:
            b_grad = b_grad * tl.load(grad_ptr).to(c_dtype)
        else:
            b_grad = b_grad * tl.load(grad_ptr + o, mask=m, other=0.0).to(c_dtype)
        _store_gradient(grad_pred_ptr, o, m, b_grad)


@jit
def _focal_loss_scale_gradient_kernel(grad_pred_ptr, grad_ptr, divisor_ptr, n, HAS_DIVISOR: tl.constexpr,
                                      BLOCK: tl.constexpr):
    # One program = blocks pid, pid + programs, ... of the gradient saved by the forward pass,
    # scaled in place by grad / divisor; when that factor is exactly 1 nothing is read or written.
    pid = tl.program_id(0)
    programs = tl.num_programs(0)
    c_dtype = tl.float64 if grad_pred_ptr.dtype.element_ty == tl.float64 else tl.float32
    factor = tl.load(grad_ptr).to(c_dtype)
    if HAS_DIVISOR:
        factor = factor / tl.load(divisor_ptr).to(c_dtype)
    if factor != 1.0:
        for start in range(pid.to(tl.int64) * BLOCK, n, programs.to(tl.int64) * BLOCK):
            o = start + tl.arange(0, BLOCK)
            m = o < n
            _store_gradient(grad_pred_ptr, o, m, tl.load(grad_pred_ptr + o, mask=m, other=0.0).to(c_dtype) * factor)


# ----------------------------------------------------------------------------
# launchers
# ----------------------------------------------------------------------------


def _small_int(a: float) -> int:
    """``a`` as a small non-negative integer constexpr, or -1 (general power)."""
    return int(a) if float(a).is_integer() and 0 <= a <= 8 else -1


def _launch_shape(n: int, kernel: str) -> tuple[int, int, int, bool]:
    """(elements per step, programs, warps, prefetch). The programs count depends on n only,
    so the partial sums' order does too."""
    tuning = {**DEFAULT_SHAPES[kernel], **TUNING} if TUNING and kernel != "scale" else DEFAULT_SHAPES[kernel]
    blocks = max(1, -(-n // tuning["block"]))
    programs = min(blocks, tuning["programs"]) if tuning["programs"] else blocks
    return tuning["block"], programs, tuning["warps"], bool(tuning["prefetch"])


def _finalize_chunk(parts: int) -> int:
    return min(TUNING.get("chunk", DEFAULT_SHAPES["forward"]["chunk"]), max(16, 1 << (parts - 1).bit_length()))


_launch_forward = Launcher(_focal_loss_forward_kernel)
_launch_finalize = Launcher(_focal_loss_finalize_kernel)
_launch_backward = Launcher(_focal_loss_backward_kernel)
_launch_scale = Launcher(_focal_loss_scale_gradient_kernel)


def focal_loss_triton(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce, *,
                      scale=1.0, avg_factor=None, divide_by_positives=False, loss_dtype=None, write_grad=False):
    """One pass over the inputs and one small reduction; returns (loss, positives, grad_pred, divisor).

    loss: with ``reduce``, a 0-d ``loss_dtype`` tensor ``sum / divisor * scale``, where the
    divisor is ``avg_factor + eps`` (a 0-d tensor), ``max(1, positives) + eps``
    (``divide_by_positives``) or 1; else the elementwise loss in pred's dtype (unscaled).
    positives: 0-d int64. grad_pred (``write_grad``): d(sum)/d(pred) * scale in pred's
    dtype, or None. divisor: the 0-d divisor used, or None.
    """
    check_device(pred.device)
    n = pred.numel()
    block, programs, warps, prefetch = _launch_shape(n, "forward")
    acc_dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    partial = torch.empty(programs, dtype=acc_dtype, device=pred.device)
    positives = torch.empty(programs, dtype=torch.int32, device=pred.device)
    num_pos = torch.empty((), dtype=torch.int64, device=pred.device)
    loss = torch.empty((), dtype=loss_dtype or acc_dtype, device=pred.device) if reduce else torch.empty_like(pred)
    grad_pred = torch.empty_like(pred) if write_grad else None
    divisor_mode = 1 if avg_factor is not None else 2 if divide_by_positives else 0
    divisor = torch.empty((), dtype=acc_dtype, device=pred.device) if divisor_mode else None
    _launch_forward(
        (programs,),
        (pred, target, pred if weight is None else weight, loss, pred if grad_pred is None else grad_pred, partial,
         positives, n, float(scale), float(alpha), float(gamma), float(pos_weight), float(neg_weight)),
        dict(A_INT=_small_int(alpha), G_INT=_small_int(gamma), LOGITS=logits, HAS_WEIGHT=weight is not None,
             REDUCE=reduce, WRITE_GRAD=write_grad, BLOCK=block, PREFETCH=prefetch),
        warps,
    )
    _launch_finalize(
        (1,),
        (partial, positives, programs, partial if avg_factor is None else avg_factor, loss, num_pos,
         partial if divisor is None else divisor, float(scale)),
        dict(REDUCE=reduce, DIVISOR=divisor_mode, CHUNK=_finalize_chunk(programs)),
        8,
    )
    return loss, num_pos, grad_pred, divisor


def scale_gradient_triton(grad_pred, grad, divisor=None):
    """``grad_pred *= grad / divisor`` in place (0-d ``grad``, ``divisor``); no memory traffic when that is 1."""
    n = grad_pred.numel()
    block, programs, warps, _ = _launch_shape(n, "scale")
    _launch_scale((programs,), (grad_pred, grad, grad if divisor is None else divisor, n),
                  dict(HAS_DIVISOR=divisor is not None, BLOCK=block), warps)
    return grad_pred


def forward_triton(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce):
    loss, positives, _, _ = focal_loss_triton(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits,
                                              reduce)
    return loss, positives


def backward_triton(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits):
    check_device(pred.device)
    n = pred.numel()
    block, programs, warps, prefetch = _launch_shape(n, "backward")
    grad_pred = torch.empty_like(pred)
    _launch_backward(
        (programs,),
        (grad, pred, target, pred if weight is None else weight, grad_pred, n,
         float(alpha), float(gamma), float(pos_weight), float(neg_weight)),
        dict(A_INT=_small_int(alpha), G_INT=_small_int(gamma), LOGITS=logits, HAS_WEIGHT=weight is not None,
             GRAD_IS_SCALAR=grad.dim() == 0, BLOCK=block, PREFETCH=prefetch),
        warps,
    )
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
    return FOCAL_LOSS_FORWARD.pick(use_triton)(pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, reduce)


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
    return FOCAL_LOSS_BACKWARD.pick(use_triton)(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits)


@focal_loss_backward_op.register_fake
def _backward_fake(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits, use_triton):
    return torch.empty_like(pred)


FOCAL_LOSS_FORWARD = Implementations(triton=forward_triton, torch=forward_torch, registered=focal_loss_forward_op)
FOCAL_LOSS_BACKWARD = Implementations(triton=backward_triton, torch=backward_torch, registered=focal_loss_backward_op)

"""The Gaussian focal loss kernels: forward, finalize, scale_gradient and backward (see
:mod:`gaussdraw.ops.focal_loss`), and their shared per-element math."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _pow(x, a, A_INT: tl.constexpr):
    """x ** a for x >= 0 (0 ** 0 = 1), by repeated products when a is a small integer."""
    if A_INT >= 0:
        result = tl.full(x.shape, 1.0, x.dtype)
        for _ in tl.static_range(A_INT):
            result = result * x
    else:
        result = tl.where(x > 0, tl.exp2(a * tl.log2(tl.maximum(x, 1.1754943508222875e-38))), tl.where(a == 0, 1.0, 0.0))
    return result


@triton.jit
def _softplus(z):
    """log(1 + exp(z)), stable for any z."""
    e = tl.exp(-tl.abs(z))
    log1p_e = tl.where(e < 1e-4, e - 0.5 * e * e, tl.log(1.0 + e))
    return tl.maximum(z, 0.0) + log1p_e


@triton.jit
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


@triton.jit
def _loss(log_p, log_q, q_a, p_a, neg_w, pos, pos_weight, neg_weight):
    # a zero weight is zero loss, also where log(1 - p) is -inf (an infinite logit): no 0 * inf
    neg = p_a * neg_w
    return pos_weight * tl.where(pos, -log_p * q_a, 0.0) + neg_weight * tl.where(neg == 0.0, 0.0, -log_q * neg)


@triton.jit
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


@triton.jit
def _store_gradient(grad_pred_ptr, o, m, b_grad):
    if grad_pred_ptr.dtype.element_ty == tl.float16:  # saturate: eps-limited gradients at p = 0 or 1 reach 1e12
        b_grad = tl.minimum(tl.maximum(b_grad, -65504.0), 65504.0)
    tl.store(grad_pred_ptr + o, b_grad.to(grad_pred_ptr.dtype.element_ty), mask=m)


@triton.jit
def _load_block(pred_ptr, target_ptr, weight_ptr, o, n, HAS_WEIGHT: tl.constexpr):
    m = o < n
    x = tl.load(pred_ptr + o, mask=m, other=0.5)
    t = tl.load(target_ptr + o, mask=m, other=0.0)
    w = tl.load(weight_ptr + o, mask=m, other=0.0) if HAS_WEIGHT else x
    return x, t, w


@triton.jit
def _first_block(pred_ptr, target_ptr, weight_ptr, first, n, HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr,
                 PREFETCH: tl.constexpr):
    """What a stepping loop carries in: the first block's inputs when prefetching, else placeholders."""
    if PREFETCH:
        x, t, w = _load_block(pred_ptr, target_ptr, weight_ptr, first + tl.arange(0, BLOCK), n, HAS_WEIGHT)
    else:
        x = tl.zeros([BLOCK], dtype=pred_ptr.dtype.element_ty)
        t, w = x, x
    return x, t, w


@triton.jit
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


@triton.jit
def _program_blocks(pred_ptr, target_ptr, weight_ptr, n, HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr,
                    PREFETCH: tl.constexpr):
    """(program id, its first element, the step between its blocks, the first block's prefetched
    loads): this program takes blocks pid, pid + programs, ..."""
    pid = tl.program_id(0)
    step = tl.num_programs(0).to(tl.int64) * BLOCK
    first = pid.to(tl.int64) * BLOCK
    x_next, t_next, w_next = _first_block(pred_ptr, target_ptr, weight_ptr, first, n, HAS_WEIGHT, BLOCK, PREFETCH)
    return pid, first, step, x_next, t_next, w_next


@triton.jit
def _block_terms(pred_ptr, target_ptr, weight_ptr, start, step, n, x_next, t_next, w_next, alpha, gamma,
                 A_INT: tl.constexpr, G_INT: tl.constexpr, LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr,
                 BLOCK: tl.constexpr, PREFETCH: tl.constexpr):
    """The block at ``start``: its offsets and mask, its weights, its terms (:func:`_terms`), and
    the next block's loads that the loop carries on."""
    o = start + tl.arange(0, BLOCK)
    x, t, w, x_next, t_next, w_next = _block_inputs(pred_ptr, target_ptr, weight_ptr, o, step, n, x_next, t_next,
                                                    w_next, HAS_WEIGHT, PREFETCH)
    log_p, log_q, p, q, q_a, p_a, neg_w, pos = _terms(x, t, alpha, gamma, A_INT, G_INT, LOGITS)
    return o, o < n, w, log_p, log_q, p, q, q_a, p_a, neg_w, pos, x_next, t_next, w_next


@triton.jit
def _weighted_gradient(log_p, log_q, p, q, q_a, p_a, neg_w, pos, w, alpha, pos_weight, neg_weight,
                       A_INT: tl.constexpr, LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr):
    b_grad = _gradient(log_p, log_q, p, q, q_a, p_a, neg_w, pos, alpha, pos_weight, neg_weight, A_INT, LOGITS)
    if HAS_WEIGHT:
        b_grad = b_grad * w
    return b_grad


@triton.jit
def focal_loss_forward_kernel(
    pred_ptr, target_ptr, weight_ptr, loss_ptr, grad_pred_ptr, partial_ptr, positives_ptr, n, grad_scale,
    alpha, gamma, pos_weight, neg_weight,
    A_INT: tl.constexpr, G_INT: tl.constexpr, LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr,
    REDUCE: tl.constexpr, WRITE_GRAD: tl.constexpr, BLOCK: tl.constexpr, PREFETCH: tl.constexpr,
):
    # One program = blocks pid, pid + programs, ... of BLOCK elements: their loss (stored,
    # or summed into the program's partial), their count of positives, and with WRITE_GRAD
    # d(loss)/d(pred) * grad_scale. PREFETCH loads the next block before computing this one.
    # The partials' order depends on the shape only.
    pid, first, step, x_next, t_next, w_next = _program_blocks(pred_ptr, target_ptr, weight_ptr, n, HAS_WEIGHT,
                                                               BLOCK, PREFETCH)
    c_dtype = tl.float64 if pred_ptr.dtype.element_ty == tl.float64 else tl.float32
    b_sum = tl.zeros([BLOCK], dtype=c_dtype)
    b_positives = tl.zeros([BLOCK], dtype=tl.int32)
    for start in range(first, n, step):
        o, m, w, log_p, log_q, p, q, q_a, p_a, neg_w, pos, x_next, t_next, w_next = _block_terms(
            pred_ptr, target_ptr, weight_ptr, start, step, n, x_next, t_next, w_next, alpha, gamma, A_INT, G_INT,
            LOGITS, HAS_WEIGHT, BLOCK, PREFETCH)
        b_loss = _loss(log_p, log_q, q_a, p_a, neg_w, pos, pos_weight, neg_weight)
        if HAS_WEIGHT:
            b_loss = b_loss * w
        if REDUCE:
            b_sum += tl.where(m, b_loss, 0.0)
        else:
            tl.store(loss_ptr + o, b_loss.to(loss_ptr.dtype.element_ty), mask=m)
        b_positives += (pos & m).to(tl.int32)
        if WRITE_GRAD:
            b_grad = _weighted_gradient(log_p, log_q, p, q, q_a, p_a, neg_w, pos, w, alpha, pos_weight, neg_weight,
                                        A_INT, LOGITS, HAS_WEIGHT)
            _store_gradient(grad_pred_ptr, o, m, b_grad * grad_scale)
    if REDUCE:
        tl.store(partial_ptr + pid, tl.sum(b_sum, axis=0))
    tl.store(positives_ptr + pid, tl.sum(b_positives, axis=0))


@triton.jit
def focal_loss_finalize_kernel(
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


@triton.jit
def focal_loss_backward_kernel(
    grad_ptr, pred_ptr, target_ptr, weight_ptr, grad_pred_ptr, n,
    alpha, gamma, pos_weight, neg_weight,
    A_INT: tl.constexpr, G_INT: tl.constexpr, LOGITS: tl.constexpr, HAS_WEIGHT: tl.constexpr,
    GRAD_IS_SCALAR: tl.constexpr, BLOCK: tl.constexpr, PREFETCH: tl.constexpr,
):
    # One program = blocks pid, pid + programs, ... of d(loss)/d(pred), recomputed from the inputs.
    _, first, step, x_next, t_next, w_next = _program_blocks(pred_ptr, target_ptr, weight_ptr, n, HAS_WEIGHT, BLOCK,
                                                             PREFETCH)
    c_dtype = tl.float64 if pred_ptr.dtype.element_ty == tl.float64 else tl.float32
    for start in range(first, n, step):
        o, m, w, log_p, log_q, p, q, q_a, p_a, neg_w, pos, x_next, t_next, w_next = _block_terms(
            pred_ptr, target_ptr, weight_ptr, start, step, n, x_next, t_next, w_next, alpha, gamma, A_INT, G_INT,
            LOGITS, HAS_WEIGHT, BLOCK, PREFETCH)
        b_grad = _weighted_gradient(log_p, log_q, p, q, q_a, p_a, neg_w, pos, w, alpha, pos_weight, neg_weight,
                                    A_INT, LOGITS, HAS_WEIGHT)
        if GRAD_IS_SCALAR:
            b_grad = b_grad * tl.load(grad_ptr).to(c_dtype)
        else:
            b_grad = b_grad * tl.load(grad_ptr + o, mask=m, other=0.0).to(c_dtype)
        _store_gradient(grad_pred_ptr, o, m, b_grad)


@triton.jit
def focal_loss_scale_gradient_kernel(grad_pred_ptr, grad_ptr, divisor_ptr, n, HAS_DIVISOR: tl.constexpr,
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

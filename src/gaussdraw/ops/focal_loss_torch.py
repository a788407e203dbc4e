"""The Gaussian focal loss in torch: the same formulas as the Triton kernels of
:mod:`.focal_loss`, elementwise (the CPU path and the reference)."""

from __future__ import annotations

import torch

EPS = 1e-12


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
    neg = p_a * neg_w  # a zero weight is zero loss, also where log(1 - p) is -inf (an infinite logit)
    loss = pos_weight * torch.where(pos, -log_p * q_a, 0.0) + neg_weight * torch.where(neg == 0, 0.0, -log_q * neg)
    if weight is not None:
        loss = loss * weight.to(loss.dtype)
    positives = pos.sum()
    return (loss.sum() if reduce else loss.to(pred.dtype)), positives


def backward_torch(grad, pred, target, weight, alpha, gamma, pos_weight, neg_weight, logits):
    log_p, log_q, p, q, q_a, p_a, neg_w, pos = _terms_torch(pred, target, alpha, gamma, logits)
    if logits:  # x log x -> 0 as x -> 0 (infinite logits)
        d_pos = q_a * (alpha * torch.where(p == 0, 0.0, p * log_p) - q)
        d_neg = p_a * (p - alpha * torch.where(q == 0, 0.0, q * log_q)) * neg_w
    else:
        # d/dp of x^alpha is alpha * x^(alpha - 1): 0 for alpha = 0, also at x = 0 (as autograd's pow)
        d_pos = -q_a / (p + EPS) + (alpha * log_p * q.pow(alpha - 1) if alpha else 0.0)
        d_neg = (p_a / (q + EPS) - (alpha * log_q * p.pow(alpha - 1) if alpha else 0.0)) * neg_w
    out = pos_weight * torch.where(pos, d_pos, 0.0) + neg_weight * d_neg
    if weight is not None:
        out = out * weight.to(out.dtype)
    out = out * grad.to(out.dtype)
    if pred.dtype == torch.float16:  # saturate, as the Triton kernel does
        out = out.clamp(-65504.0, 65504.0)
    return out.to(pred.dtype)

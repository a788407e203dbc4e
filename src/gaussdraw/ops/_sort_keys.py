"""One int64 key per (score, index) pair, so that one plain sort or top-k orders by score and then
by index (no stable sort needed: the keys are distinct).

The key is ``(order(score) << 32) | tie``: ``order`` maps a float32 score's bits to an int32 that
sorts as the score does (negative floats have their magnitude bits flipped), after -0.0 is made
+0.0 (equal scores, equal keys) and NaN a positive NaN (above every number, as ``torch.topk`` puts
it); ``tie`` is a 32-bit value derived from the index. Scores of float16/bfloat16/float32 are
exact in float32. The same order in a Triton kernel: :func:`gaussdraw.ops.kernels.common.ordered_bits`.
"""

from __future__ import annotations

import torch

LOW = 0xFFFFFFFF


def score_keys(scores: torch.Tensor, ties: torch.Tensor) -> torch.Tensor:
    """(...,) int64 keys of float ``scores`` (at most 32 bits) and ``ties`` (int64 in [0, 2^32))."""
    value = scores.float() + 0.0  # -0.0 + 0.0 = +0.0
    value = torch.where(value.isnan(), float("nan"), value)  # one NaN, sign bit clear
    bits = value.view(torch.int32).to(torch.int64)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (ordered << 32) | ties


def key_scores(keys: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The scores back from :func:`score_keys`' keys, in ``dtype`` (exact: they came from it)."""
    ordered = keys >> 32
    bits = torch.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered).to(torch.int32)
    return bits.view(torch.float32).to(dtype)

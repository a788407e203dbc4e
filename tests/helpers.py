"""Comparison helpers that say where tensors differ."""

from __future__ import annotations

import re

import pytest
import torch

# One unit in the last place at 1.0, the largest value drawn with k_scale = 1.
ULP_AT_ONE = {torch.float16: 2**-10, torch.bfloat16: 2**-7, torch.float32: 2**-23, torch.float64: 2**-52}


def tolerance(dtype: torch.dtype) -> float:
    """Absolute tolerance between two correct results in ``dtype`` (values in [0, k]).

    fp32/fp64: 1e-6 (the agreed bound with mmdet; exp differs by an ulp between
    libraries). 16-bit: one ulp at 1.0 (rounding of a value that differs by an fp32 ulp)."""
    return max(1e-6, ULP_AT_ONE[dtype]) if dtype in (torch.float16, torch.bfloat16) else 1e-6


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float, what: str = "") -> None:
    """Assert |actual - expected| <= atol everywhere, reporting the first mismatches."""
    assert actual.shape == expected.shape, f"{what} shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    diff = (a - e).abs()
    bad = ~(diff <= atol)  # NaN counts as bad
    if bad.any():
        where = bad.nonzero()[:5].tolist()
        lines = [f"  at {tuple(i)}: actual {a[tuple(i)].item():.9g}, expected {e[tuple(i)].item():.9g}" for i in where]
        raise AssertionError(
            f"{what} {int(bad.sum())} of {bad.numel()} elements differ by more than {atol:g} "
            f"(max {diff[~diff.isnan()].max().item() if (~diff.isnan()).any() else float('nan'):.3g}):\n"
            + "\n".join(lines)
        )


def raises_text(error: type, text: str):
    """``pytest.raises`` for a message that contains ``text`` as it is (no pattern)."""
    return pytest.raises(error, match=re.escape(text))

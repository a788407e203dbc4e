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


def tensors_of(result) -> list:
    """The tensors of a result: a tensor, or (nested) tuples and lists of them."""
    if isinstance(result, torch.Tensor):
        return [result]
    return [tensor for item in result for tensor in tensors_of(item)]


def capture_and_replay(call, poison: float = -7.0):
    """Run ``call`` with syncs as errors, capture it in a CUDA graph, poison the captured outputs, replay,
    and return (eager result, replayed result): a GPU op's proof that it neither syncs nor misses a write."""
    expected = call()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        call()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        call()  # warm up on the side stream
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = call()
    torch.cuda.current_stream().wait_stream(stream)
    for output in tensors_of(captured):
        output.fill_(poison)
    graph.replay()
    torch.cuda.synchronize()
    return expected, captured

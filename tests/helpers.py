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


class _Interpreted:
    """A 'compiled' kernel whose launcher runs Triton's interpreter on the values it is given."""

    function, packed_metadata = "function", "metadata"

    def __init__(self, kernel, names, num_warps, compile_options):
        self.kernel, self.names, self.num_warps, self.compile_options = kernel, names, num_warps, compile_options

    def run(self, grid_x, grid_y, grid_z, stream, function, metadata, hook_args, enter, exit_, *values):
        self.kernel[(grid_x, grid_y, grid_z)](**dict(zip(self.names, values)), num_warps=self.num_warps,
                                              **self.compile_options)


def cpu_as_cuda(monkeypatch) -> None:
    """CPU tensors pass for CUDA ones on device None, and the direct launch applies (a tested Triton,
    enabled, no hooks) unless a test changes that."""
    from gaussdraw.ops import launch as launching

    monkeypatch.setattr(launching, "_plain_cuda", lambda tensor: type(tensor) is torch.Tensor)
    monkeypatch.setattr(launching, "_current_device", lambda: None)
    monkeypatch.setattr(launching, "_raw_stream", lambda index: "stream")
    monkeypatch.setattr(launching._DIRECT, "tested", True)
    monkeypatch.setattr(launching._DIRECT, "enabled", True)
    monkeypatch.setattr(launching, "_KNOBS", None)


def stand_in_direct_launch(monkeypatch) -> None:
    """CPU tensors take the CUDA direct launch of gaussdraw.ops.launch, with no launchers yet: Triton's
    launch compiles nothing here (the interpreter runs the kernel) and returns a 'compiled' kernel whose
    launcher runs the interpreter again with the arguments it is given, in the kernel's order; so planned
    calls' relaunches compute real values (needs TRITON_INTERPRET=1)."""
    from gaussdraw.ops import launch as launching

    cpu_as_cuda(monkeypatch)
    monkeypatch.setattr(launching, "_LAUNCHERS", {})

    def public(self, grid, device, num_warps, compile_options, arguments):
        self.check(arguments)
        self.path = "public"
        self.kernel[grid](**arguments, num_warps=num_warps, **compile_options)
        return _Interpreted(self.kernel, self.names, num_warps, compile_options)

    monkeypatch.setattr(launching.Launcher, "public", public)


def calls_of(monkeypatch, *classes) -> list:
    """A list that gets each instance of ``classes`` when it is called (plans that served a call)."""
    calls = []
    for kind in classes:
        call = kind.__call__
        monkeypatch.setattr(kind, "__call__", lambda self, *a, _call=call: calls.append(self) or _call(self, *a))
    return calls


def plans_served(monkeypatch, *classes) -> list:
    """CPU tensors take the direct launch (which runs the interpreter); no plans or launchers yet. Returns
    the list of plans of ``classes`` that served a call, one entry per call."""
    from gaussdraw.targets import plans

    stand_in_direct_launch(monkeypatch)
    monkeypatch.setattr(plans, "PLANS", {})
    return calls_of(monkeypatch, *classes)

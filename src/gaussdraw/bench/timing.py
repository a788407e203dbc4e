"""Timing helpers and floors shared by the suites.

- wall time: back-to-back calls as Python sees them, one sync (median of rounds);
- GPU time: a CUDA graph of the calls, replayed (the host left out);
- floors: an empty Triton kernel launched the normal way, a native torch op, a zero fill,
  the bandwidth of a device copy.
"""

from __future__ import annotations

import sys
import time

import torch


def chosen_configs(table: dict, names, shrink=None) -> list:
    """The configurations of ``table`` named in ``names`` (all of them for None), each passed through
    ``shrink`` (a quick run's smaller form) where one is given."""
    configs = [table[name] for name in (names or table)]
    return [shrink(config) for config in configs] if shrink else configs


def on_each_device(device, cpu: bool, cpu_threads: int, cases: list, measure) -> list[dict]:
    """The rows ``measure(case, dev)`` of every ``(label, case)`` in ``cases`` on ``device``, then (``cpu``
    and ``device`` a GPU) on the CPU with ``cpu_threads`` threads; the label shown on stderr meanwhile."""
    devices = [device] + ([torch.device("cpu")] if cpu and device.type == "cuda" else [])
    rows, threads = [], torch.get_num_threads()
    for dev in devices:
        torch.set_num_threads(cpu_threads if dev.type == "cpu" else threads)
        for label, case in cases:
            print(f"\r{label} on {dev.type} ...".ljust(60), end="", file=sys.stderr, flush=True)
            rows.append(measure(case, dev))
    torch.set_num_threads(threads)
    print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    return rows


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def wall_time(fn, device, calls: int) -> float:
    """Seconds per call over ``calls`` back-to-back calls with one sync (median of 5 rounds)."""
    fn()
    sync(device)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync(device)
        rounds.append((time.perf_counter() - start) / calls)
    return sorted(rounds)[len(rounds) // 2]


def graph_time(fn, calls: int = 20) -> float:
    """Seconds per call, kernel only: a CUDA graph of ``calls`` calls, replayed (median)."""
    import triton.testing

    fn()
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(calls):
                fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench(graph.replay, warmup=25, rep=200, return_mode="median") * 1e-3 / calls


def floors(device, shape) -> dict:
    """Empty Triton kernel (normal launch), a native torch op, and torch.zeros of the heatmap: wall per call."""
    out = {}
    small = torch.zeros(16, device=device)
    out["torch_op_wall_us"] = wall_time(lambda: small.add_(1.0), device, 2000 if device.type == "cuda" else 200) * 1e6
    out["zeros_wall_us"] = wall_time(lambda: torch.zeros(shape, device=device), device, 200 if device.type == "cuda" else 5) * 1e6
    if device.type == "cuda":
        out["empty_triton_wall_us"] = wall_time(lambda: empty_kernel[(1,)](small), device, 2000) * 1e6
        out["zeros_kernel_us"] = graph_time(lambda: torch.zeros(shape, device=device)) * 1e6
    return out


try:
    import triton

    @triton.jit
    def empty_kernel(x_ptr):
        pass

except ImportError:  # pragma: no cover
    empty_kernel = None


def copy_bandwidth(device) -> float:
    """Bytes per second of a large device-to-device copy (read + write counted)."""
    import triton.testing

    src = torch.empty(2**28, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), warmup=25, rep=200, return_mode="median")
    return 2 * src.numel() * 4 / (ms * 1e-3)


def graph_time_or_none(fn, calls: int = 5):
    """GPU time per call in µs with the host out of the way (CUDA-graph replay), or None if capture fails."""
    try:
        return graph_time(fn, calls) * 1e6
    except Exception as error:  # a variant that cannot be captured is reported, not fatal
        print(f"CUDA-graph capture failed: {type(error).__name__}: {error}", file=sys.stderr)
        return None

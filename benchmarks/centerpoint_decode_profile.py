"""Where a CenterPoint decode's time goes, kernel by kernel, and its host path against its GPU time. One GPU call:

    PYTHONPATH=src python benchmarks/centerpoint_decode_profile.py [--sizes 128x1 180x1 ...] [--nms circle]

For each (map side, batch) of ``gaussdraw bench --decode``'s nuScenes rows (six tasks of 1, 2, 2, 1, 2, 2
classes): the GPU time of one call (CUDA-graph replay), each kernel's mean time over 20 eager calls
(``torch.profiler``, CUDA activity), and the wall time of back-to-back eager calls with and without a
sync after each (the host path shows as the wall time where it is longer than the GPU's); whether the
calls were served by a plan (:mod:`gaussdraw.decode.centerpoint_plans`).
"""

from __future__ import annotations

import argparse
import collections
import time

import torch

from gaussdraw import centerpoint_decode
from gaussdraw.bench.head_decode import NUSCENES, NUSCENES_CLASSES, centerpoint_heads
from gaussdraw.bench.timing import graph_time_or_none
from gaussdraw.decode.centerpoint_plans import CenterPointDecodePlan
from gaussdraw.targets import plans


def kernel_times(fn, calls: int = 20) -> dict:
    """{kernel name: mean µs a call} of ``calls`` eager calls."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as profiler:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    times = collections.Counter()
    for event in profiler.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            times[event.name] += event.device_time / calls
    return dict(times.most_common())


def wall_us(fn, calls: int = 200, sync_each: bool = False) -> float:
    """µs a call over ``calls`` back-to-back calls (fastest of 5 rounds)."""
    best = float("inf")
    for _ in range(5):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
            if sync_each:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def served_by_a_plan(call) -> bool:
    """Whether a call of ``call`` was served by a :class:`CenterPointDecodePlan`."""
    served, original = [], CenterPointDecodePlan.__call__
    CenterPointDecodePlan.__call__ = lambda self, *a: served.append(self) or original(self, *a)
    try:
        call()
    finally:
        CenterPointDecodePlan.__call__ = original
    return bool(served)


def profile_row(size: int, batch: int, nms: str) -> None:
    heads = centerpoint_heads(batch, size, torch.device("cuda"))
    tasks = [dict(num_class=c, class_names=[f"c{t}_{i}" for i in range(c)]) for t, c in enumerate(NUSCENES_CLASSES)]
    call = lambda: centerpoint_decode(heads, tasks, nms=nms, **NUSCENES)  # noqa: E731
    plans.PLANS.clear()
    call()
    gpu = graph_time_or_none(call)
    print(f"{size}x{size}, B={batch}, nms={nms}: a repeated call served by a plan: {served_by_a_plan(call)}")
    print(f"  GPU (graph replay) {'-' if gpu is None else f'{gpu:.1f}'} us; wall back to back {wall_us(call):.1f} "
          f"us, with a sync after each {wall_us(call, sync_each=True):.1f} us")
    for name, us in kernel_times(call).items():
        print(f"  {us:8.1f} us  {name[:100]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["128x1", "128x4", "180x1", "180x4"],
                        help="map side x batch (default: the bench's rows)")
    parser.add_argument("--nms", default="circle", choices=["circle", "rotate", "none"])
    args = parser.parse_args()
    for item in args.sizes:
        side, count = (int(v) for v in item.split("x"))
        profile_row(side, count, args.nms)

"""Counts of one ``centerpoint_decode`` call on nuScenes' layout (6 tasks of 1, 2, 2, 1, 2, 2 classes,
circle NMS), independent of load: Triton launches (``launch`` and ``Relaunch`` calls), aten ops that
would launch a CUDA kernel (a TorchDispatchMode on CPU tensors, the Triton path in the interpreter,
the launches' own interpreter work left out), and the Python function calls of the host path
(cProfile, paused inside launches). Run with TRITON_INTERPRET=1 on a CPU:

    PYTHONPATH=src TRITON_INTERPRET=1 python benchmarks/centerpoint_decode_counts.py

``--host``: the host path of a repeated call on nuScenes' real layout (B=1 and 4, 128² and 180², max_num
500, post_max_size 83), as ``targets_host_cpu.py`` measures it: CPU tensors take the direct launch of
CUDA ones, every launch does nothing (the kernels' native variants: no interpreter work), so what is
timed is the Python and the allocations. Rows: the planned repeated call
(:mod:`gaussdraw.decode.centerpoint_plans`) and the checked path (plans off: every call checks, as
before plans); µs per call (fastest of 9 rounds), aten ops, Python calls (cProfile).
"""

from __future__ import annotations

import collections
import cProfile
import pstats

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

import gaussdraw.ops.launch as launch_module
from gaussdraw import centerpoint_decode

CLASSES = [1, 2, 2, 1, 2, 2]
MIN_RADIUS = [4, 12, 10, 1, 0.85, 0.175]
CHANNELS = [("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2)]
# aten ops that allocate or only make views: no CUDA kernel
NO_KERNEL = {"empty", "empty_strided", "view", "_unsafe_view", "expand", "slice", "select", "unsqueeze", "squeeze",
             "t", "transpose", "permute", "as_strided", "alias", "detach", "lift_fresh", "_reshape_alias", "unbind",
             "split", "split_with_sizes", "reshape", "flatten", "contiguous", "new_empty", "empty_like", "unfold"}


def heads(batch: int = 2, size: int = 16):
    g = torch.Generator().manual_seed(0)
    return [{"heatmap": torch.randn(batch, c, size, size, generator=g) * 2,
             **{name: torch.randn(batch, n, size, size, generator=g) for name, n in CHANNELS}} for c in CLASSES]


def call(preds):
    return centerpoint_decode(preds, [dict(num_class=c) for c in CLASSES],
                              point_cloud_range=[-8.0, -6.4, -5.0, 8.0, 6.4, 3.0], voxel_size=[0.2, 0.2, 8],
                              out_size_factor=4, post_center_range=[-10.0, -10.0, -10.0, 10.0, 10.0, 10.0],
                              max_num=40, min_radius=MIN_RADIUS, post_max_size=20, backend="triton")


class AtenCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def counted_launches(profile=None):
    """Patch launch: count calls, run the kernel outside the dispatch mode and the profile (``profile``
    paused: the interpreter's work is not the host path's)."""
    original = launch_module.launch
    counts = collections.Counter()

    def counting(kernel, grid, /, **arguments):
        counts[getattr(kernel, "__name__", None) or kernel.fn.__name__] += 1
        if profile is not None:
            profile.disable()
        try:
            with _disable_current_modes():
                return original(kernel, grid, **arguments)
        finally:
            if profile is not None:
                profile.enable()

    launch_module.launch = counting
    return counts, lambda: setattr(launch_module, "launch", original)


def main():
    preds = heads()
    call(preds)  # compile / warm
    launches, restore = counted_launches()
    counter = AtenCounter()
    with counter:
        call(preds)
    restore()
    kernels = {op: n for op, n in counter.ops.items() if op not in NO_KERNEL}
    print(f"launches: {sum(launches.values())} {dict(launches)}")
    print(f"aten ops that launch: {sum(kernels.values())} {dict(sorted(kernels.items()))}")
    print(f"aten ops in all: {sum(counter.ops.values())}")
    profile = cProfile.Profile()
    _, restore = counted_launches(profile)
    profile.enable()
    call(preds)
    profile.disable()
    restore()
    stats = pstats.Stats(profile)
    print(f"python calls (launches' interpreter work left out): {stats.total_calls} ({stats.prim_calls} primitive)")


def host_calls(batch: int, size: int):
    """(planned call, checked call) of nuScenes' decode on CPU tensors, launches stubbed."""
    import functools

    from gaussdraw.decode import centerpoint as decode_module

    preds = heads(batch, size)
    options = dict(point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], voxel_size=[0.2, 0.2, 8],
                   out_size_factor=4 * 128 // size, post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0],
                   max_num=500, score_threshold=0.1, min_radius=MIN_RADIUS, post_max_size=83, backend="triton")
    tasks = [dict(num_class=c) for c in CLASSES]
    planned = functools.partial(centerpoint_decode, preds, tasks, **options)
    real_key = getattr(decode_module, "plan_key", None)

    def checked():
        decode_module.plan_key = lambda *args: None  # plans off
        try:
            return planned()
        finally:
            decode_module.plan_key = real_key

    return planned, checked


def host_main(calls: int) -> None:
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from targets_host_cpu import counted, per_call, stand_in_for_cuda

    from gaussdraw.decode import centerpoint_plans
    from gaussdraw.ops import centerpoint_merge, centerpoint_tasks, circle_nms
    from gaussdraw.targets import plans

    torch.set_num_threads(1)
    stand_in_for_cuda(centerpoint_tasks, centerpoint_merge, circle_nms)
    for module in (centerpoint_tasks, centerpoint_plans, circle_nms):  # the native kernels' arguments
        module.interpreting = lambda: False
    print(f"torch {torch.__version__}, 1 thread, launches stubbed; nuScenes 6 tasks, max_num 500, circle NMS")
    for batch, size in ((1, 128), (4, 180)):
        planned, checked = host_calls(batch, size)
        planned(), planned()  # compiles (stub), then plans
        assert plans.PLANS, "the decode did not plan"
        for name, fn in (("planned", planned), ("checked", checked)):
            us = per_call(fn, calls)
            print(f"B={batch} {size}²: {name} {us:.1f} us; %d aten ops returning %d tensors, "
                  f"%d Python function calls" % counted(fn))


if __name__ == "__main__":
    import sys

    if "--host" in sys.argv:
        host_main(int(sys.argv[sys.argv.index("--calls") + 1]) if "--calls" in sys.argv else 300)
    else:
        main()

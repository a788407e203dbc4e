"""Counts of one ``centerpoint_decode`` call on nuScenes' layout (6 tasks of 1, 2, 2, 1, 2, 2 classes,
circle NMS), independent of load: Triton launches (``launch`` and ``Relaunch`` calls), aten ops that
would launch a CUDA kernel (a TorchDispatchMode on CPU tensors, the Triton path in the interpreter,
the launches' own interpreter work left out), and the Python function calls of the host path
(cProfile, paused inside launches). Run with TRITON_INTERPRET=1 on a CPU:

    PYTHONPATH=src TRITON_INTERPRET=1 python benchmarks/centerpoint_decode_counts.py
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


if __name__ == "__main__":
    main()

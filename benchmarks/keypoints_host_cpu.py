"""Host (Python + dispatcher) time of a repeated ``keypoint_heatmaps`` call, measured on the CPU without a GPU.

As ``targets_host_cpu.py`` (whose stand-ins and timers this reuses): CPU tensors take the
direct-launch path of CUDA ones and every kernel launch does nothing, so what is timed is the
public layer, the input layer, the allocations and the launch's Python. The call is the COCO
encode of ``gaussdraw bench --keypoints`` (64 samples, one instance, 17 keypoints, a 48×64 map,
σ=2, padded (B, 1, K, 2) float32 keypoints + (B, 1, K) visible + counts, validate=False);
the outputs are allocated and never written (``torch.empty``), so the map's size costs nothing.
A relaunched ``draw_heatmap_batched`` call is timed the same way, as the yardstick; and the
first call of a layout (the key's plans forgotten before each call: the checked path, which
makes the plan). ``torch.empty`` of the 13 MB map costs more on the CPU (fresh pages from the
OS) than from the H200's caching allocator.

    TRITON_INTERPRET=1 PYTHONPATH=src python benchmarks/keypoints_host_cpu.py [--calls N] [--profile]

Numbers: µs per call, the fastest of 9 rounds of back-to-back calls; counts of one call.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

import gaussdraw  # noqa: E402
from gaussdraw.bench.keypoints import KEYPOINT_CONFIGS, keypoint_inputs  # noqa: E402
from gaussdraw.ops import keypoint_heatmaps as keypoint_op  # noqa: E402
from gaussdraw.targets import plans  # noqa: E402
from targets_host_cpu import counted, draw_call, per_call, stand_in_for_cuda  # noqa: E402


def keypoint_call(method: str = "msra", config: str = "coco", seed: int = 0):
    """The bench's repeated padded + counts call (``bench_keypoints``) on CPU tensors."""
    config = KEYPOINT_CONFIGS[config]
    keypoints, visible = keypoint_inputs(config, seed)
    counts = torch.full((config.samples,), config.instances)
    size = (config.width, config.height)

    def call():
        return gaussdraw.keypoint_heatmaps(keypoints, visible, size, config.sigma, method=method, counts=counts,
                                           backend="triton", validate=False)

    return call


def profile(fn, calls: int, top: int = 20) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="cProfile the repeated call")
    args = parser.parse_args()
    torch.set_num_threads(1)
    stand_in_for_cuda(keypoint_op)
    print(f"torch {torch.__version__}, Python {sys.version.split()[0]}, 1 thread, launches stubbed")
    draw = draw_call()
    calls = {"draw_heatmap_batched seed-classwise (relaunch)": draw}
    for method in ("msra", "udp", "dark"):
        calls[f"keypoint_heatmaps coco {method}"] = keypoint_call(method)
    repeated = calls["keypoint_heatmaps coco msra"]
    calls["keypoint_heatmaps coco msra, a layout's first call"] = lambda: plans.PLANS.clear() or repeated()
    for name, fn in calls.items():
        fn(), fn()  # the first call compiles, the second launches directly
        print(f"{name}: {per_call(fn, args.calls):.1f} us; %d aten ops returning %d tensors, "
              f"%d Python function calls" % counted(fn))
    if args.profile:
        profile(calls["keypoint_heatmaps coco msra"], args.calls)


if __name__ == "__main__":
    main()

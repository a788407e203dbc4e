"""Host (Python + dispatcher) time of a repeated target call, measured on the CPU without a GPU.

The CUDA fast path is stood in for on CPU tensors: Triton's direct launch is taken (as on a GPU
with a tested Triton) and every kernel launch does nothing, so what is timed is the public
layer, the input layer, the allocations, the output views and the launches' Python. The zero
fill runs on the CPU, so the maps are tiny (8×8, few classes): the H200 host pays an
asynchronous memset instead. A ``draw_heatmap_batched`` call of the same batch is timed the same
way (its relaunch, with the heatmap's CUDA check stood in for), as the target's yardstick.

    TRITON_INTERPRET=1 PYTHONPATH=src python benchmarks/targets_host_cpu.py [--calls N] [--profile]

Numbers: µs per call, the fastest of 9 rounds of back-to-back calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

import gaussdraw  # noqa: E402
from gaussdraw import draw_plans  # noqa: E402
from gaussdraw.bench.targets import (NUSCENES_TASKS, TARGET_CONFIGS, _options, centernet_inputs,  # noqa: E402
                                     centerpoint_inputs)
from gaussdraw.ops import centernet_targets as centernet_op  # noqa: E402
from gaussdraw.ops import centerpoint_targets as centerpoint_op  # noqa: E402
from gaussdraw.ops import launch as launching  # noqa: E402
from gaussdraw.ragged import Ragged  # noqa: E402


class _Compiled:
    """A compiled kernel as the direct launch sees it: its launcher does nothing."""

    function, packed_metadata = "function", "metadata"

    @staticmethod
    def run(*args):
        return None


def stand_in_for_cuda(*op_modules):
    """CPU tensors take the direct-launch path of CUDA ones; launches do nothing. ``op_modules``: more op
    modules (besides the target ops') whose ``check_device`` to stand in for."""
    launching._plain_cuda = lambda tensor: type(tensor) is torch.Tensor
    launching._current_device = lambda: None
    launching._raw_stream = lambda index: 0
    launching._DIRECT.tested = launching._DIRECT.enabled = True
    launching._KNOBS = None

    def public(self, grid, device, num_warps, compile_options, arguments):
        self.check(arguments)
        self.path = "public"
        return _Compiled()

    launching.Launcher.public = public
    for module in (centernet_op, centerpoint_op, *op_modules):  # what check_device costs on CUDA tensors
        module.check_device = lambda device: None


def per_call(fn, calls: int) -> float:
    """µs per call: the fastest of 9 rounds of ``calls`` back-to-back calls (after 3 warm-up calls): this
    machine's other load only adds time."""
    for _ in range(3):
        fn()
    rounds = []
    for _ in range(9):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls)
    return min(rounds) * 1e6


def target_calls(name: str):
    """(padded call, list call, op alone) of a target config on CPU tensors with a small map."""
    config = TARGET_CONFIGS[name]
    if config.head == "centernet":
        config = type(config)(**{**config.__dict__, "classes": 3, "feat": 8, "img": 64})
        boxes, labels = centernet_inputs(config)
        options = _options(config)
    else:
        boxes, labels = centerpoint_inputs(config)
        options = dict(_options(config), grid_size=[64, 64, 40], max_objs=16)  # an 8×8 map, 16 slots
    padded, padded_labels = Ragged.from_list(boxes), Ragged.from_list(labels)
    counts = padded.sample_sizes
    common = dict(counts=counts, backend="triton", validate=False)
    if config.head == "centernet":
        def as_padded():
            return gaussdraw.centernet_targets(padded.tensor, padded_labels.tensor, **options, **common)

        def as_list():
            return gaussdraw.centernet_targets(boxes, labels, **options, backend="triton", validate=False)

        feat = options["feat_size"]
        op_args = (padded.tensor, padded_labels.tensor, counts, options["num_classes"], *feat,
                   *options["img_size"], 0.3)
        op = centernet_op.centernet_targets_triton
    else:
        def as_padded():
            return gaussdraw.centerpoint_targets(padded.tensor, padded_labels.tensor, NUSCENES_TASKS, **options,
                                                 **common)

        def as_list():
            return gaussdraw.centerpoint_targets(boxes, labels, NUSCENES_TASKS, **options, backend="triton",
                                                 validate=False)

        side = options["grid_size"][0] // options["out_size_factor"]
        op_args = (padded.tensor, padded_labels.tensor, counts, [1, 2, 2, 1, 2, 2], side, side,
                   options["point_cloud_range"][:2], options["voxel_size"][:2], options["out_size_factor"],
                   options["gaussian_overlap"], options["min_radius"], 16, True)
        op = centerpoint_op.centerpoint_targets_triton
    return as_padded, as_list, lambda: op(*op_args)


def draw_call():
    """A repeated seed-classwise ``draw_heatmap_batched`` call (padded + counts), its plan's relaunch
    reached on CPU tensors: ``draw_plans.planned``'s CUDA, compile and validate tests are left out (a
    few attribute reads), and the first call launches through the eager fast path's launch."""
    from gaussdraw.bench.draw import CONFIGS, make_inputs

    inputs = make_inputs(CONFIGS["seed-classwise"], torch.device("cpu"))
    heatmap = torch.zeros(CONFIGS["seed-classwise"].shape)
    def as_cuda_planned(heatmap, validate, zeroed, layout_key):
        key = (*layout_key(), zeroed)
        return key, draw_plans.PLANS.get(key)

    gaussdraw.draw.planned = as_cuda_planned

    def draw_fast(heatmap, *args):  # the first call's launch, with bind=True, through the fast path's launch
        from gaussdraw.ops.draw_gaussians import launch as launch_draw
        num_planes, centers, radii, index, counts, planes_per_sample, boxes_per_sample, factor, k_scale = args[:9]
        return launch_draw(heatmap, plane_stride=heatmap.stride(1), num_planes=num_planes, centers=centers,
                           centers_strides=centers.stride(), radii=radii, radii_strides=radii.stride(), index=index,
                           index_strides=index.stride(), counts=counts, counts_stride=counts.stride(0),
                           num_samples=radii.shape[0], boxes_per_sample=boxes_per_sample,
                           planes_per_sample=planes_per_sample, sigma_factor=float(factor), k_scale=float(k_scale),
                           bind=True, keep_nan=True)

    gaussdraw.draw._draw = draw_fast

    def call():
        gaussdraw.draw_heatmap_batched(heatmap, inputs.centers, inputs.radii, labels=inputs.labels,
                                       counts=inputs.counts, validate=False)

    call()
    call()
    assert draw_plans.PLANS, "the draw call did not plan"
    return call


def counted(fn) -> tuple[int, int, int]:
    """(aten ops, tensors they return, Python function calls) of one call of ``fn``: host work that does not
    depend on the machine's load."""
    import cProfile
    import pstats

    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        ops = tensors = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            Count.ops += 1
            Count.tensors += len(out) if isinstance(out, (list, tuple)) else 1
            return out

    fn()
    with Count():
        fn()
    profile = cProfile.Profile()
    profile.runcall(fn)
    return Count.ops, Count.tensors, pstats.Stats(profile).total_calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="cProfile the padded calls")
    args = parser.parse_args()
    torch.set_num_threads(1)
    stand_in_for_cuda()
    print(f"torch {torch.__version__}, Python {sys.version.split()[0]}, 1 thread, launches stubbed")
    small = torch.zeros(16)
    print(f"floors: a native torch op (add_) {per_call(lambda: small.add_(1.0), 3000):.2f} us, "
          f"torch.zeros(16) {per_call(lambda: torch.zeros(16), 3000):.2f} us, "
          f"a view {per_call(lambda: small.view(4, 4), 3000):.2f} us")
    draw = draw_call()
    draw_us = per_call(draw, args.calls * 3)
    print(f"draw_heatmap_batched seed-classwise (relaunch): {draw_us:.1f} us")
    print("  %d aten ops returning %d tensors, %d Python function calls" % counted(draw))
    for name in ("centernet-coco", "centerpoint-nus"):
        as_padded, as_list, op = target_calls(name)
        padded_us, list_us, op_us = (per_call(f, args.calls) for f in (as_padded, as_list, op))
        print(f"{name}: padded {padded_us:.1f} us ({padded_us / draw_us:.1f}x the draw call), "
              f"lists {list_us:.1f} us, op alone {op_us:.1f} us")
        print("  padded call: %d aten ops returning %d tensors, %d Python function calls" % counted(as_padded))
        if args.profile:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.enable()
            for _ in range(args.calls):
                as_padded()
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(16)


if __name__ == "__main__":
    main()

"""The keypoints suite: heatmap encoding of a batch against mmpose's encoder looped over the batch.

For each config (mmpose's top-down case: one instance per sample) and method: gaussdraw's wall
time per call (padded + counts inputs) and GPU time (CUDA-graph replay); mmpose 1.3.2's own
encoder (``generate_gaussian_heatmaps`` / ``_udp_`` / ``_unbiased_``) called on each sample, on the
CPU (wall); and in the same run the floor, writing the outputs once: a float32 zero fill of their
bytes (wall, and GPU time). On a GPU machine the CPU rows follow (``cpu_threads`` torch threads:
the data-loader case), where gaussdraw runs its torch implementation.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time
from functools import cache

import numpy as np
import torch

from ..keypoints import keypoint_heatmaps
from ..ops.keypoint_heatmaps import LAUNCH_SHAPES, METHODS, keypoint_heatmaps_triton
from .report import markdown_table
from .timing import chosen_configs, graph_time, on_each_device, sync, wall_time


@dataclasses.dataclass(frozen=True)
class KeypointConfig:
    name: str
    samples: int
    keypoints: int
    width: int
    height: int
    sigma: float
    instances: int = 1  # per sample: mmpose's top-down encoders see one


KEYPOINT_CONFIGS = {c.name: c for c in [
    KeypointConfig("coco", 64, 17, 48, 64, 2.0),  # 192 x 256 input, heatmap 48 x 64
    KeypointConfig("wholebody", 64, 133, 72, 96, 3.0),  # 288 x 384 input, heatmap 72 x 96
]}


def quick_keypoints(config: KeypointConfig) -> KeypointConfig:
    """A CI-sized version: 4 samples, small maps."""
    return dataclasses.replace(config, samples=4, keypoints=min(config.keypoints, 5), width=12, height=16)


@cache
def mmpose_encoder(method: str):
    """mmpose's encoder of one sample, loaded from its file (which imports only NumPy); None
    where mmpose is not installed."""
    spec = importlib.util.find_spec("mmpose")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "codecs", "utils", "gaussian_heatmap.py")
    module_spec = importlib.util.spec_from_file_location("_bench_mmpose_gaussian_heatmap", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return dict(msra=module.generate_gaussian_heatmaps, udp=module.generate_udp_gaussian_heatmaps,
                dark=module.generate_unbiased_gaussian_heatmaps)[method]


def keypoint_inputs(config: KeypointConfig, seed: int = 0):
    """(keypoints (B, N, K, 2) float32, visible (B, N, K) float32): keypoints spread over the map
    and a little beyond it, about 1 in 6 not labelled (visibility 0), the others 1 or 2."""
    g = torch.Generator().manual_seed(seed)
    shape = (config.samples, config.instances, config.keypoints)
    size = torch.tensor([config.width, config.height], dtype=torch.float32)
    keypoints = torch.rand(*shape, 2, generator=g) * (size * 1.1) - size * 0.05
    visible = torch.randint(1, 3, shape, generator=g).float() * (torch.rand(shape, generator=g) > 1 / 6)
    return keypoints, visible


def _mmpose_loop(config: KeypointConfig, keypoints, visible, method):
    """mmpose's encoder on each sample (NumPy in, as its codecs call it): [(heatmaps, weights)]."""
    encode = mmpose_encoder(method)
    points, flags, size = keypoints.numpy(), visible.numpy(), (config.width, config.height)
    return [encode(size, points[b], flags[b], config.sigma) for b in range(config.samples)]


def _time_once(fn, runs: int) -> tuple[float, object]:
    """(best seconds of ``runs`` calls, the last result)."""
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_keypoints(config: KeypointConfig, method: str, device: torch.device, loop_runs: int = 2) -> dict:
    keypoints, visible = keypoint_inputs(config)
    counts = torch.full((config.samples,), config.instances)
    args = [t.to(device) for t in (keypoints, visible, counts)]
    size = (config.width, config.height)
    row = dict(config=config.name, method=method, device=device.type, threads=torch.get_num_threads(),
               samples=config.samples, keypoints=config.keypoints)

    def encode():
        return keypoint_heatmaps(args[0], args[1], size, config.sigma, method=method, counts=args[2],
                                 validate=False)

    ours = encode()
    sync(device)
    if mmpose_encoder(method) is not None:
        seconds, theirs = _time_once(lambda: _mmpose_loop(config, keypoints, visible, method), loop_runs)
        row["mmpose_loop_ms"] = seconds * 1e3
        heat = torch.from_numpy(np.stack([h for h, _ in theirs]))
        weights = torch.from_numpy(np.stack([w for _, w in theirs])).float()
        row["max_abs_diff_vs_mmpose"] = float((ours.heatmaps.cpu() - heat).abs().max())
        row["weights_equal"] = bool(torch.equal(ours.weights.cpu(), weights))
    cuda = device.type == "cuda"
    calls = 200 if cuda else 5
    row["wall_us"] = wall_time(encode, device, calls) * 1e6
    output_bytes = ours.heatmaps.numel() * 4 + ours.weights.numel() * 4
    row["output_mb"] = output_bytes / 2**20
    zeros = lambda: torch.zeros(-(-output_bytes // 4), dtype=torch.float32, device=device)  # noqa: E731
    row["zeros_wall_us"] = wall_time(zeros, device, calls) * 1e6
    if cuda:
        row["gpu_us"] = graph_time(encode) * 1e6
        row["zeros_gpu_us"] = graph_time(zeros) * 1e6
        row["gpu_over_zeros"] = row["gpu_us"] / row["zeros_gpu_us"]
    if "mmpose_loop_ms" in row:
        row["speedup_wall"] = row["mmpose_loop_ms"] * 1e3 / row["wall_us"]
    row["wall_over_zeros"] = row["wall_us"] / row["zeros_wall_us"]
    return row


def keypoints_bench(device, names=None, quick=False, cpu=True, cpu_threads=2) -> list[dict]:
    configs = chosen_configs(KEYPOINT_CONFIGS, names, quick_keypoints if quick else None)
    cases = [(f"{config.name} {method}", (config, method)) for config in configs for method in METHODS]
    return on_each_device(device, cpu, cpu_threads, cases,
                          lambda case, dev: bench_keypoints(*case, dev, loop_runs=1 if quick else 2))


VARIANT_SHAPES = ((512, 4), (1024, 4), (1024, 8), (2048, 2), (2048, 4), (2048, 8), (4096, 4), (4096, 8), (8192, 8))
"""(pixels a program, warps) that :func:`keypoint_variants` times."""


def keypoint_variants(device, names=None, shapes=VARIANT_SHAPES, methods=METHODS) -> list[dict]:
    """GPU time (CUDA-graph replay) of the kernel at each launch shape (``shapes``: (BLOCK, warps))
    for each config and method, with the zero fill's: one row per (config, method, shape); the
    default is the method's :data:`gaussdraw.ops.keypoint_heatmaps.LAUNCH_SHAPES`. Values checked against the
    default shape's."""
    rows = []
    for config in [KEYPOINT_CONFIGS[n] for n in (names or KEYPOINT_CONFIGS)]:
        keypoints, visible = keypoint_inputs(config)
        counts = torch.full((config.samples,), config.instances)
        args = [t.to(device) for t in (keypoints, visible, counts)]
        output_elements = config.samples * config.keypoints * (config.height * config.width + config.instances)
        zeros_us = graph_time(lambda: torch.zeros(output_elements, device=device)) * 1e6  # noqa: B023
        for method in methods:
            encode = lambda shape: keypoint_heatmaps_triton(  # noqa: E731, B023
                *args, None, config.sigma, config.height, config.width, method, shape=shape)
            expected = encode(None)[0]
            for shape in shapes:
                heat = encode(shape)[0]
                gpu_us = graph_time(lambda: encode(shape)) * 1e6  # noqa: B023
                rows.append(dict(config=config.name, method=method, block=shape[0], warps=shape[1],
                                 default=tuple(shape) == LAUNCH_SHAPES[method], gpu_us=gpu_us, zeros_gpu_us=zeros_us,
                                 gpu_over_zeros=gpu_us / zeros_us, same_values=bool(torch.equal(heat, expected))))
    return rows


def keypoint_variants_table(rows: list[dict]) -> str:
    return markdown_table(rows, [
        ("config", "config", 0), ("method", "method", 0), ("BLOCK", "block", 0), ("warps", "warps", 0),
        ("default", "default", 0), ("GPU (µs)", "gpu_us", 1), ("zero fill GPU (µs)", "zeros_gpu_us", 1),
        ("GPU / zero fill", "gpu_over_zeros", 2), ("same values", "same_values", 0)])


def keypoints_table(rows: list[dict]) -> str:
    return markdown_table(rows, [
        ("config", "config", 0), ("method", "method", 0), ("device", "device", 0), ("threads", "threads", 0),
        ("mmpose loop (ms)", "mmpose_loop_ms", 2), ("wall (µs)", "wall_us", 1), ("GPU (µs)", "gpu_us", 1),
        ("zero fill wall (µs)", "zeros_wall_us", 1), ("zero fill GPU (µs)", "zeros_gpu_us", 1),
        ("× mmpose (wall)", "speedup_wall", 1), ("GPU / zero fill", "gpu_over_zeros", 2),
        ("wall / zero fill", "wall_over_zeros", 2), ("output (MiB)", "output_mb", 1),
        ("max diff vs mmpose", "max_abs_diff_vs_mmpose", "g"), ("weights equal", "weights_equal", 0)])

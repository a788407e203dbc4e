"""The targets suite: whole target assignment against the heads' per-box loops.

For each config: the per-box loop of the head (:mod:`gaussdraw.reference`, mmdet's
``CenterNetHead.get_targets`` and mmdet3d's ``CenterHead.get_targets`` logic) on the same
device; gaussdraw's wall time per call (padded + counts inputs, and lists as the heads
hold them), its GPU time (CUDA-graph replay), and in the same run the floors: a float32
zero fill of the outputs' bytes and one ``draw_heatmap_batched`` call drawing the same
boxes on the same map.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch

from ..draw import draw_heatmap_batched
from ..ops.centernet_targets import centernet_boxes_torch
from ..ops.centerpoint_targets import centerpoint_boxes_torch
from ..ragged import Ragged
from ..reference import centernet_targets_per_box, centerpoint_targets_per_box
from ..targets import centernet_targets, centerpoint_targets
from .report import markdown_table
from .timing import chosen_configs, graph_time, on_each_device, sync, wall_time

NUSCENES_TASKS = [["car"], ["truck", "construction_vehicle"], ["bus", "trailer"], ["barrier"],
                  ["motorcycle", "bicycle"], ["pedestrian", "traffic_cone"]]
# nuScenes mean box sizes (dx, dy, dz) per class, in the order of the tasks above
NUSCENES_DIMS = [(4.6, 1.9, 1.7), (6.9, 2.5, 2.8), (6.4, 2.8, 3.2), (11.0, 2.9, 3.5), (12.3, 2.9, 3.9),
                 (0.5, 2.5, 1.0), (2.1, 0.8, 1.5), (1.7, 0.6, 1.3), (0.7, 0.7, 1.8), (0.4, 0.4, 1.1)]
CENTERPOINT_OPTIONS = dict(point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], voxel_size=[0.1, 0.1, 0.2],
                           grid_size=[1024, 1024, 40], out_size_factor=8, gaussian_overlap=0.1, min_radius=2,
                           max_objs=500, dense_reg=1, norm_bbox=True)


@dataclasses.dataclass(frozen=True)
class TargetConfig:
    name: str
    head: str  # "centernet" or "centerpoint"
    samples: int
    boxes: int  # per sample: the mean (centernet, at most 50) or the count (centerpoint)
    classes: int = 80  # centernet
    feat: int = 128  # centernet map side; centerpoint: grid_size // out_size_factor
    img: int = 512  # centernet input side


TARGET_CONFIGS = {c.name: c for c in [
    TargetConfig("centernet-coco", "centernet", 32, 7),
    TargetConfig("centerpoint-nus", "centerpoint", 4, 40),
    TargetConfig("centerpoint-nus-crowded", "centerpoint", 4, 300),
]}


def quick_target(config: TargetConfig) -> TargetConfig:
    """A CI-sized version: 2 samples, few boxes, small maps."""
    return dataclasses.replace(config, samples=2, boxes=min(config.boxes, 5), classes=3, feat=16, img=64)


def centernet_inputs(config: TargetConfig, seed: int = 0):
    """COCO-like boxes: per image an exponential number (mean ``boxes``, at most 50), sizes
    log-uniform from 4 px to the image side (many small), aspect 1:2 to 2:1, inside the image."""
    g = torch.Generator().manual_seed(seed)
    boxes, labels = [], []
    for _ in range(config.samples):
        count = min(50, int(-config.boxes * math.log(1 - torch.rand((), generator=g).item())))
        side = torch.exp(torch.empty(count).uniform_(math.log(4), math.log(config.img), generator=g))
        aspect = torch.exp(torch.empty(count).uniform_(-math.log(2), math.log(2), generator=g))
        wh = torch.stack([side * aspect.sqrt(), side / aspect.sqrt()], 1).clamp(max=config.img - 1)
        corner = torch.rand(count, 2, generator=g) * (config.img - wh)
        boxes.append(torch.cat([corner, corner + wh], 1))
        labels.append(torch.randint(0, config.classes, (count,), generator=g))
    return boxes, labels


def centerpoint_inputs(config: TargetConfig, seed: int = 0):
    """nuScenes-like boxes: ``boxes`` per sample in the point-cloud range, class sizes
    around nuScenes means, any yaw, velocities of a few m/s."""
    g = torch.Generator().manual_seed(seed)
    span = CENTERPOINT_OPTIONS["point_cloud_range"][3] if config.feat == 128 else config.feat * 0.4
    dims = torch.tensor(NUSCENES_DIMS)
    boxes, labels = [], []
    for _ in range(config.samples):
        label = torch.randint(0, 10, (config.boxes,), generator=g)
        xy = (torch.rand(config.boxes, 2, generator=g) * 2 - 1) * span
        z = torch.randn(config.boxes, 1, generator=g) - 1
        size = dims[label] * (0.8 + 0.4 * torch.rand(config.boxes, 3, generator=g))
        yaw = (torch.rand(config.boxes, 1, generator=g) * 2 - 1) * math.pi
        velocity = torch.randn(config.boxes, 2, generator=g) * 3
        boxes.append(torch.cat([xy, z, size, yaw, velocity], 1))
        labels.append(label)
    return boxes, labels


def _options(config: TargetConfig) -> dict:
    if config.head == "centernet":
        return dict(num_classes=config.classes, feat_size=(config.feat, config.feat), img_size=(config.img, config.img))
    options = dict(CENTERPOINT_OPTIONS)
    if config.feat != 128:  # quick: a small grid over a small range
        side = config.feat * 0.4
        options.update(grid_size=[config.feat * 8, config.feat * 8, 40],
                       point_cloud_range=[-side, -side, -5.0, side, side, 3.0])
    return options


def _calls(config: TargetConfig, boxes, labels, validate):
    """(list-form call, padded-form call, per-box loop) of the config's head."""
    options = _options(config)
    padded, padded_labels = Ragged.from_list(boxes), Ragged.from_list(labels)
    counts = padded.sample_sizes
    if config.head == "centernet":
        def as_list():
            return centernet_targets(boxes, labels, **options, validate=validate)

        def as_padded():
            return centernet_targets(padded.tensor, padded_labels.tensor, **options, counts=counts,
                                     validate=validate)

        def loop():
            return centernet_targets_per_box(boxes, labels, options["num_classes"], options["feat_size"],
                                             options["img_size"])
    else:
        tasks = NUSCENES_TASKS if config.feat == 128 else [[0], [1, 2], [3, 4], [5], [6, 7], [8, 9]]

        def as_list():
            return centerpoint_targets(boxes, labels, tasks, **options, validate=validate)

        def as_padded():
            return centerpoint_targets(padded.tensor, padded_labels.tensor, tasks, **options, counts=counts,
                                       validate=validate)

        def loop():
            return centerpoint_targets_per_box(boxes, labels, [len(t) for t in tasks], **options)
    return as_list, as_padded, loop


def _max_difference(ours, loop, head) -> float:
    """Largest absolute difference between gaussdraw's targets and the loop's (avg_factor included)."""
    if head == "centernet":
        mine, avg = ours.to_mmdet()
        theirs, their_avg = loop
        pairs = [(mine[k], theirs[k]) for k in mine] + [(avg, torch.as_tensor(float(their_avg)))]
    else:
        pairs = [(a, b) for mine, theirs in zip(ours, loop) for a, b in zip(mine, theirs)]
    return max(float((a.double().cpu() - b.double().cpu()).abs().max()) if a.numel() else 0.0 for a, b in pairs)


def _draw_floor(config: TargetConfig, boxes, labels, device):
    """One ``draw_heatmap_batched`` call that draws the boxes gaussdraw draws (same centers,
    radii and classes) into a zeroed map of the same size, (B, C, H, W)."""
    padded, padded_labels = Ragged.from_list(boxes), Ragged.from_list(labels)
    args = (padded.tensor, padded_labels.tensor, padded.sample_sizes)
    options = _options(config)
    if config.head == "centernet":
        classes, (height, width) = options["num_classes"], options["feat_size"]
        sample, label, _, _, x, y, _, _, radius = centernet_boxes_torch(
            *args, classes, height, width, *options["img_size"], 0.3)
    else:
        tasks = [len(t) for t in NUSCENES_TASKS]
        classes = sum(tasks)
        width, height = (g // options["out_size_factor"] for g in options["grid_size"][:2])
        rows = centerpoint_boxes_torch(
            *args, tasks, height, width, options["point_cloud_range"][:2], options["voxel_size"][:2],
            options["out_size_factor"], options["gaussian_overlap"], options["min_radius"],
            options["max_objs"] * options["dense_reg"], options["norm_bbox"])
        sample, label, x, y, radius = rows["sample"], rows["label"], rows["x_int"], rows["y_int"], rows["radius"]
    samples = len(boxes)
    order = torch.sort(sample, stable=True).indices
    sample, label, x, y, radius = sample[order], label[order], x[order], y[order], radius[order]
    counts = torch.bincount(sample, minlength=samples)
    position = torch.arange(sample.numel(), device=device) - (torch.cumsum(counts, 0) - counts)[sample]
    tmax = max(int(counts.max()) if counts.numel() else 0, 1)
    centers = torch.zeros(samples, tmax, 2, dtype=torch.long, device=device)
    radii = torch.zeros(samples, tmax, dtype=torch.long, device=device)
    classes_at = torch.zeros(samples, tmax, dtype=torch.long, device=device)
    centers[sample, position] = torch.stack([x, y], 1)
    radii[sample, position] = radius
    classes_at[sample, position] = label
    target = torch.zeros(samples, classes, height, width, device=device)

    def draw():
        draw_heatmap_batched(target, centers, radii, labels=classes_at, counts=counts, validate=False)

    return draw


def bench_targets(config: TargetConfig, device, loop_runs: int = 2) -> dict:
    boxes, labels = centernet_inputs(config) if config.head == "centernet" else centerpoint_inputs(config)
    boxes, labels = [b.to(device) for b in boxes], [lab.to(device) for lab in labels]
    cuda = device.type == "cuda"
    as_list, as_padded, loop = _calls(config, boxes, labels, validate=False)
    checked_list, _, _ = _calls(config, boxes, labels, validate=True)
    row = dict(config=config.name, device=device.type, samples=config.samples,
               boxes=sum(len(b) for b in boxes))

    ours = as_padded()
    sync(device)
    times = []
    for _ in range(loop_runs):
        start = time.perf_counter()
        expected = loop()
        sync(device)
        times.append(time.perf_counter() - start)
    row["loop_ms"] = min(times) * 1e3
    row["max_abs_diff_vs_loop"] = max(_max_difference(ours, expected, config.head),
                                      _max_difference(as_list(), expected, config.head))

    calls = 200 if cuda else 5
    row["wall_us"] = wall_time(as_padded, device, calls) * 1e6
    row["wall_list_us"] = wall_time(as_list, device, calls) * 1e6
    row["wall_validate_us"] = wall_time(checked_list, device, max(calls // 10, 2)) * 1e6
    output_bytes = _output_bytes(ours)
    row["output_mb"] = output_bytes / 2**20
    zeros = lambda: torch.zeros(-(-output_bytes // 4), dtype=torch.float32, device=device)  # noqa: E731
    draw = _draw_floor(config, boxes, labels, device)
    row["zeros_wall_us"] = wall_time(zeros, device, calls) * 1e6
    row["draw_wall_us"] = wall_time(draw, device, calls) * 1e6
    if cuda:
        row["gpu_us"] = graph_time(as_padded) * 1e6
        row["zeros_gpu_us"] = graph_time(zeros) * 1e6
        row["draw_gpu_us"] = graph_time(draw) * 1e6
        row["speedup_gpu"] = row["loop_ms"] * 1e3 / row["gpu_us"]
        row["gpu_over_zeros"] = row["gpu_us"] / row["zeros_gpu_us"]
    row["speedup_wall"] = row["loop_ms"] * 1e3 / row["wall_us"]
    row["wall_over_draw"] = row["wall_us"] / row["draw_wall_us"]
    return row


def _output_bytes(targets) -> int:
    tensors = targets if isinstance(targets[0], torch.Tensor) else [t for group in targets for t in group]
    return sum(t.numel() * t.element_size() for t in tensors)


def targets_bench(device, names=None, quick=False, cpu=True, cpu_threads=2) -> list[dict]:
    configs = chosen_configs(TARGET_CONFIGS, names, quick_target if quick else None)
    cases = [(config.name, config) for config in configs]
    return on_each_device(device, cpu, cpu_threads, cases,
                          lambda config, dev: bench_targets(config, dev, loop_runs=1 if quick else 2))


def targets_table(rows: list[dict]) -> str:
    return markdown_table(rows, [
        ("config", "config", 0), ("device", "device", 0), ("boxes", "boxes", 0), ("loop (ms)", "loop_ms", 2),
        ("wall (µs)", "wall_us", 1), ("wall, lists (µs)", "wall_list_us", 1), ("GPU (µs)", "gpu_us", 1),
        ("zero fill GPU (µs)", "zeros_gpu_us", 1), ("draw call GPU (µs)", "draw_gpu_us", 1),
        ("draw call wall (µs)", "draw_wall_us", 1), ("× loop (GPU)", "speedup_gpu", 0),
        ("× loop (wall)", "speedup_wall", 1), ("GPU / zero fill", "gpu_over_zeros", 2),
        ("wall / draw call", "wall_over_draw", 2), ("wall, validate (µs)", "wall_validate_us", 1),
        ("max diff vs loop", "max_abs_diff_vs_loop", "g")])

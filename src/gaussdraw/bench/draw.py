"""The draw suite: gaussdraw against the per-box loop, with the floors measured in the same run.

For each config: the per-box loop (mmdet3d's semantics, :mod:`gaussdraw.reference`),
gaussdraw's wall time per call as a Python caller sees it (many back-to-back calls,
one sync), its kernel-only time (CUDA-graph replay of the same call), the allocating
form, and the floors: an empty Triton kernel launched the normal way, a native torch
op, and ``torch.zeros`` of the heatmap. On CPU: the torch path against the loop.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import torch

from ..draw import draw_heatmap, draw_heatmap_batched, render_heatmaps, render_heatmaps_batched
from ..ragged import Ragged
from ..reference import draw_heatmap_per_box
from .reference import calls as reference_calls
from .report import environment, plot, table
from .timing import chosen_configs, empty_kernel, sync, floors, graph_time, wall_time


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    samples: int
    classes: int  # 0: one heatmap per sample
    height: int
    width: int
    max_boxes: int  # boxes per heatmap (concat) or per sample: uniform 0..max_boxes
    radius: tuple  # ("seed",) or ("uniform", lo, hi)
    form: str  # "concat" or "batched"

    @property
    def shape(self):
        lead = (self.samples, self.classes) if self.classes else (self.samples,)
        return (*lead, self.height, self.width)


CONFIGS = {
    c.name: c
    for c in [
        Config("seed-concat", 48, 0, 20, 50, 50, ("seed",), "concat"),
        Config("seed-batched", 48, 0, 20, 50, 50, ("seed",), "batched"),
        Config("seed-classwise", 48, 20, 20, 50, 50, ("seed",), "batched"),
        Config("centernet-coco", 32, 80, 128, 128, 100, ("uniform", 0, 40), "batched"),
        Config("centerpoint-nus", 4, 10, 180, 180, 500, ("uniform", 2, 8), "batched"),
        Config("large-radius", 8, 0, 512, 512, 200, ("uniform", 1, 100), "batched"),
        Config("dense", 64, 0, 256, 256, 1000, ("uniform", 1, 6), "batched"),
    ]
}


def quick(config: Config) -> Config:
    """A CI-sized version: fewer samples and boxes, smaller maps."""
    return dataclasses.replace(
        config,
        samples=min(config.samples, 2),
        classes=min(config.classes, 3),
        height=max(4, config.height // 8),
        width=max(4, config.width // 8),
        max_boxes=min(config.max_boxes, 6),
        radius=config.radius if config.radius[0] == "seed" else ("uniform", config.radius[1], max(config.radius[1], config.radius[2] // 8)),
    )


@dataclasses.dataclass
class Inputs:
    config: Config
    centers: torch.Tensor  # (B, Tmax, 2) padded, or (T, 2) for concat
    radii: torch.Tensor
    labels: torch.Tensor | None
    counts: torch.Tensor | None
    idxes: torch.Tensor | None  # concat only
    flat: tuple  # (centers (T, 2), radii (T,), heatmap_idxes (T,)) for the per-box loop

    @property
    def boxes(self) -> int:
        return int(self.flat[1].numel())

    def drawn_pixels(self) -> int:
        """Pixels the boxes cover after clipping (with multiplicity)."""
        c, r = self.flat[0].cpu().long(), self.flat[1].cpu().long()
        h, w = self.config.height, self.config.width
        span_x = ((c[:, 0] + r).clamp(max=w - 1) - (c[:, 0] - r).clamp(min=0) + 1).clamp(min=0)
        span_y = ((c[:, 1] + r).clamp(max=h - 1) - (c[:, 1] - r).clamp(min=0) + 1).clamp(min=0)
        return int((span_x * span_y).sum())


def make_inputs(config: Config, device, seed: int = 0) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    groups = config.samples if config.form == "batched" else config.samples * max(config.classes, 1)
    counts = torch.randint(0, config.max_boxes + 1, (groups,), generator=g)
    tmax = max(int(counts.max()), 1)
    x = torch.randint(0, config.width, (groups, tmax), generator=g)
    y = torch.randint(0, config.height, (groups, tmax), generator=g)
    if config.radius[0] == "seed":  # int(max(U(0, 1) * 5, 1)) -> 1..4
        radii = (torch.rand(groups, tmax, generator=g) * 5).clamp(min=1).long()
    else:
        radii = torch.randint(config.radius[1], config.radius[2] + 1, (groups, tmax), generator=g)
    labels = torch.randint(0, max(config.classes, 1), (groups, tmax), generator=g)
    centers = torch.stack([x, y], 2)
    valid = torch.arange(tmax) < counts[:, None]
    group = torch.arange(groups)[:, None].expand(groups, tmax)
    plane = group * config.classes + labels if (config.form == "batched" and config.classes) else group
    flat = (centers[valid], radii[valid], plane[valid])
    flat = tuple(t.to(device) for t in flat)
    if config.form == "concat":
        return Inputs(config, flat[0], flat[1], None, None, flat[2], flat)
    return Inputs(
        config, centers.to(device), radii.to(device), labels.to(device) if config.classes else None,
        counts.to(device), None, flat,
    )


# ----------------------------------------------------------------------------
# one config
# ----------------------------------------------------------------------------


def _calls(inputs: Inputs, validate: bool):
    cfg, i = inputs.config, inputs
    shape = cfg.shape

    if cfg.form == "concat":
        def draw(heatmap):
            draw_heatmap(heatmap, i.centers, i.radii, i.idxes, validate=validate)

        def render():
            return render_heatmaps(shape, i.centers, i.radii, i.idxes, validate=validate)
    else:
        def draw(heatmap):
            draw_heatmap_batched(heatmap, i.centers, i.radii, labels=i.labels, counts=i.counts, validate=validate)

        def render():
            return render_heatmaps_batched(shape, i.centers, i.radii, labels=i.labels, counts=i.counts,
                                           validate=validate, device=i.radii.device)
    return draw, render


def _forms(inputs: Inputs):
    """The batched inputs as ragged objects and as lists, for ``draw(heatmap)`` calls with default arguments."""
    i = inputs
    as_ragged = [Ragged(t, i.counts) if t is not None else None for t in (i.centers, i.radii, i.labels)]
    sizes = i.counts.tolist()
    as_lists = [[t[b, :n] for b, n in enumerate(sizes)] if t is not None else None for t in (i.centers, i.radii, i.labels)]

    def ragged(heatmap):
        draw_heatmap_batched(heatmap, as_ragged[0], as_ragged[1], labels=as_ragged[2])

    def lists(heatmap):
        draw_heatmap_batched(heatmap, as_lists[0], as_lists[1], labels=as_lists[2])

    return ragged, lists


def bench_config(config: Config, device, baseline: bool = True, reference=None) -> dict:
    inputs = make_inputs(config, device)
    heatmap = torch.zeros(config.shape, device=device)
    draw, render = _calls(inputs, validate=False)
    draw_checked, _ = _calls(inputs, validate=True)
    draw_default, _ = _calls(inputs, validate=None)
    cuda = device.type == "cuda"
    row = dict(config=config.name, device=device.type, shape=list(config.shape), boxes=inputs.boxes,
               drawn_pixels=inputs.drawn_pixels(), heatmap_mb=heatmap.numel() * 4 / 2**20)

    # correctness of what is timed: gaussdraw == per-box loop on this config
    expected = draw_heatmap_per_box(torch.zeros(config.shape, device=device), *inputs.flat)
    got = torch.zeros(config.shape, device=device)
    draw(got)
    row["max_abs_diff_vs_loop"] = float((got - expected).abs().max())

    if baseline:
        start = time.perf_counter()
        draw_heatmap_per_box(heatmap, *inputs.flat)
        sync(device)
        row["loop_ms"] = (time.perf_counter() - start) * 1e3
    calls = 200 if cuda else 3
    row["wall_us"] = wall_time(lambda: draw(heatmap), device, calls) * 1e6
    if cuda:
        row["launch_path"] = _launch_path()
    row["wall_validate_us"] = wall_time(lambda: draw_checked(heatmap), device, max(calls // 4, 1)) * 1e6
    row["wall_default_us"] = wall_time(lambda: draw_default(heatmap), device, calls) * 1e6
    if config.form == "batched":
        ragged, lists = _forms(inputs)
        row["wall_ragged_us"] = wall_time(lambda: ragged(heatmap), device, calls) * 1e6
        row["wall_lists_us"] = wall_time(lambda: lists(heatmap), device, calls) * 1e6
    if reference is not None and cuda:
        draw_reference = reference_calls(reference, inputs)
        check = torch.zeros(config.shape, device=device)
        draw_reference(check)
        row["reference_max_abs_diff"] = float((check - expected).abs().max())
        row["reference_wall_us"] = wall_time(lambda: draw_reference(heatmap), device, calls) * 1e6
        row["reference_kernel_us"] = graph_time(lambda: draw_reference(heatmap)) * 1e6
        row["default_over_reference_wall"] = row["wall_default_us"] / row["reference_wall_us"]
        if config.form == "batched":  # gaussdraw called with the reference's own RaggedBatch objects
            batches = [None if t is None else reference[1](t, sample_sizes=inputs.counts)
                       for t in (inputs.centers, inputs.radii, inputs.labels)]
            row["wall_raggedbatch_us"] = wall_time(
                lambda: draw_heatmap_batched(heatmap, batches[0], batches[1], labels=batches[2]), device, calls) * 1e6
    row["render_wall_us"] = wall_time(render, device, calls) * 1e6
    if cuda:
        row["kernel_us"] = graph_time(lambda: draw(heatmap)) * 1e6
        row["render_kernel_us"] = graph_time(render) * 1e6
    row.update(floors(device, config.shape))
    if baseline:
        row["speedup_wall"] = row["loop_ms"] * 1e3 / row["wall_us"]
        if cuda:
            row["speedup_kernel"] = row["loop_ms"] * 1e3 / row["kernel_us"]
    return row


def _launch_path():
    """The path of the draw kernel's last launch ("direct" or "public"; a relaunch is direct)."""
    from ..ops.kernels.draw_gaussians import draw_gaussians_kernel
    from ..ops.launch import last_launch_path

    return last_launch_path(draw_gaussians_kernel)


# ----------------------------------------------------------------------------
# scaling sweep for the plot: kernel time (CUDA; wall time on the CPU) against drawn pixels and radius
# ----------------------------------------------------------------------------


def sweep(device, radii=(1, 2, 4, 8, 16, 32, 64, 128), boxes=256, size=512) -> list[dict]:
    rows = []
    for r in radii:
        config = Config(f"sweep-r{r}", 8, 0, size, size, boxes, ("uniform", r, r), "batched")
        inputs = make_inputs(config, device)
        heatmap = torch.zeros(config.shape, device=device)
        draw, _ = _calls(inputs, validate=False)
        t = graph_time(lambda: draw(heatmap)) if device.type == "cuda" else wall_time(lambda: draw(heatmap), device, 2)
        rows.append(dict(radius=r, boxes=inputs.boxes, drawn_pixels=inputs.drawn_pixels(), time_us=t * 1e6,
                         measured="kernel" if device.type == "cuda" else "wall", shape=list(config.shape)))
    return rows


def _batched_draw(inputs: Inputs, heatmap: torch.Tensor, shape):
    """A draw of a batched config's padded inputs straight through the op's Triton implementation, with a
    launch shape (:class:`~gaussdraw.ops.draw_gaussians.DrawLaunchShape`)."""
    from ..ops.draw_gaussians import draw_gaussians_triton

    planes = heatmap.view(-1, *heatmap.shape[-2:])
    per_sample = max(inputs.config.classes, 1)
    return lambda: draw_gaussians_triton(planes, inputs.centers, inputs.radii, inputs.labels, inputs.counts,
                                         per_sample, 6.0, 1.0, shape=shape)


def variants(device, names=("seed-batched", "centernet-coco", "large-radius", "dense", "centerpoint-nus"),
             boxes=(1, 2, 4), splits=(1, 2, 4, 8), warps=(1, 2, 4)) -> list[dict]:
    """Kernel-only time of forced launch shapes (boxes per program x window splits x warps), and which
    one the default chooses; each row says the launch path that ran."""
    from ..ops.draw_gaussians import DrawLaunchShape, launch_shape, launch_warps

    rows = []
    for name in names:
        config = CONFIGS[name]
        inputs = make_inputs(config, device)
        heatmap = torch.zeros(config.shape, device=device)
        num_boxes, (height, width) = inputs.radii.numel(), config.shape[-2:]
        chosen = (*launch_shape(num_boxes, height, width, device)[:2],
                  launch_warps(height, width, num_boxes, heatmap.numel() // (height * width)))
        for nw in warps:
            for nb in boxes:
                for sp in splits:
                    draw = _batched_draw(inputs, heatmap, DrawLaunchShape(boxes=nb, split=sp, warps=nw))
                    rows.append(dict(config=name, boxes=nb, split=sp, warps=nw, default=(nb, sp, nw) == chosen,
                                     kernel_us=graph_time(draw) * 1e6, launch_path=_launch_path()))
    return rows


def overhead(device) -> dict:
    """Wall per call (µs) of each layer of a seed-batched draw, to see where host time goes: the draw, its
    launch, an empty kernel through :func:`~gaussdraw.ops.launch.launch` and Triton's own launch, each with
    the direct path allowed and forbidden; and which path each took."""
    from ..ops import draw_gaussians
    from ..ops.launch import direct_launch_status, launch, set_direct_launch

    inputs = make_inputs(CONFIGS["seed-batched"], device)
    heatmap = torch.zeros(CONFIGS["seed-batched"].shape, device=device)
    draw, _ = _calls(inputs, validate=False)
    h, w = heatmap.shape[-2:]
    layout = dict(plane_stride=h * w, num_planes=heatmap.shape[0], centers=inputs.centers,
                  centers_strides=inputs.centers.stride(), radii=inputs.radii, radii_strides=inputs.radii.stride(),
                  counts=inputs.counts, counts_stride=inputs.counts.stride(0), num_samples=inputs.radii.shape[0],
                  boxes_per_sample=inputs.radii.shape[1], planes_per_sample=1, sigma_factor=6.0, k_scale=1.0)
    small = torch.zeros(16, device=device)
    out = dict(direct_launch=direct_launch_status())
    for allowed in (True, False):
        previous = set_direct_launch(allowed)
        try:
            suffix = "" if allowed else "_public"
            out["draw" + suffix] = wall_time(lambda: draw(heatmap), device, 2000) * 1e6
            out["launch" + suffix] = wall_time(lambda: draw_gaussians.launch(heatmap, **layout), device, 2000) * 1e6
            out["launch_path" + suffix] = _launch_path()
            out["empty_kernel" + suffix] = wall_time(lambda: launch(empty_kernel, (1,), num_warps=4, x_ptr=small),
                                                     device, 2000) * 1e6
        finally:
            set_direct_launch(previous)
    out["empty_kernel_triton"] = wall_time(lambda: empty_kernel[(1,)](small), device, 2000) * 1e6
    out["launch_shape"] = wall_time(lambda: draw_gaussians.launch_shape(2400, h, w, device), device, 2000) * 1e6
    return out


def profile_draw(device, calls: int = 3000) -> str:
    """cProfile of back-to-back seed-batched draws: where the host time goes."""
    import cProfile
    import io
    import pstats

    inputs = make_inputs(CONFIGS["seed-batched"], device)
    heatmap = torch.zeros(CONFIGS["seed-batched"].shape, device=device)
    draw, _ = _calls(inputs, validate=False)
    draw(heatmap)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        draw(heatmap)
    profiler.disable()
    sync(device)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
    return text.getvalue()


def run(names=None, device=None, quick_mode=False, json_path=None, plot_path=None, baseline=True, cpu=True,
        cpu_threads=2, reference=None):
    """``reference``: the loaded reference (:func:`gaussdraw.bench.reference.load`), timed beside gaussdraw."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    configs = chosen_configs(CONFIGS, names, quick if quick_mode else None)
    devices = [device] + ([torch.device("cpu")] if cpu and device.type == "cuda" else [])
    jobs = [(c, d) for d in devices for c in configs]
    results = []
    threads = torch.get_num_threads()
    for k, (config, dev) in enumerate(jobs):
        torch.set_num_threads(cpu_threads if dev.type == "cpu" else threads)
        print(f"\r[{k + 1}/{len(jobs)}] {config.name} on {dev.type} ...".ljust(60), end="", file=sys.stderr, flush=True)
        results.append(bench_config(config, dev, baseline=baseline, reference=reference))
    torch.set_num_threads(threads)
    print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    report = dict(environment=environment(device), floors=floors(device, (1,)), results=results)
    if device.type == "cuda":
        report["overhead_us"] = overhead(device)
    if plot_path or json_path:
        report["sweep"] = sweep(device, radii=(1, 2, 4) if quick_mode else (1, 2, 4, 8, 16, 32, 64, 128),
                                boxes=8 if quick_mode else 256, size=32 if quick_mode else 512)
    if plot_path:
        plot(report["sweep"], plot_path, report["environment"].get("gpu", "CPU"))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=1)
    text = [f"gaussdraw bench — {report['environment']}"]
    for dev in devices:
        text += ["", f"## {dev.type}", table([r for r in results if r["device"] == dev.type])]
    f = report["floors"]
    text += ["", "floors (wall per call): " + ", ".join(f"{k} {v:.2f}" for k, v in f.items())]
    if "overhead_us" in report:
        text += ["host time per call (µs): " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                         for k, v in report["overhead_us"].items())]
    return "\n".join(text), report

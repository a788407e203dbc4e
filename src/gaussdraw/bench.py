"""``gaussdraw bench``: gaussdraw against the per-box loop, with the floors measured in the same run.

For each config: the per-box loop (mmdet3d's semantics, :mod:`gaussdraw.reference`),
gaussdraw's wall time per call as a Python caller sees it (many back-to-back calls,
one sync), its kernel-only time (CUDA-graph replay of the same call), the allocating
form, and the floors: an empty Triton kernel launched the normal way, a native torch
op, and ``torch.zeros`` of the heatmap. On CPU: the torch path against the loop.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import sys
import time
from datetime import date

import torch

from .draw import draw_heatmap, draw_heatmap_batched, render_heatmaps, render_heatmaps_batched
from .reference import draw_heatmap_per_box


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
# timing
# ----------------------------------------------------------------------------


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def wall_time(fn, device, calls: int) -> float:
    """Seconds per call over ``calls`` back-to-back calls with one sync (median of 5 rounds)."""
    fn()
    _sync(device)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(device)
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
        out["empty_triton_wall_us"] = wall_time(lambda: _empty_kernel[(1,)](small), device, 2000) * 1e6
        out["zeros_kernel_us"] = graph_time(lambda: torch.zeros(shape, device=device)) * 1e6
    return out


try:
    import triton
    import triton.language as tl

    @triton.jit
    def _empty_kernel(x_ptr):
        pass

except ImportError:  # pragma: no cover
    _empty_kernel = None


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


def bench_config(config: Config, device, baseline: bool = True) -> dict:
    inputs = make_inputs(config, device)
    heatmap = torch.zeros(config.shape, device=device)
    draw, render = _calls(inputs, validate=False)
    draw_checked, _ = _calls(inputs, validate=True)
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
        _sync(device)
        row["loop_ms"] = (time.perf_counter() - start) * 1e3
    calls = 200 if cuda else 3
    row["wall_us"] = wall_time(lambda: draw(heatmap), device, calls) * 1e6
    row["wall_validate_us"] = wall_time(lambda: draw_checked(heatmap), device, max(calls // 4, 1)) * 1e6
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


# ----------------------------------------------------------------------------
# scaling sweep for the plot: kernel time against drawn pixels and radius
# ----------------------------------------------------------------------------


def sweep(device, radii=(1, 2, 4, 8, 16, 32, 64, 128), boxes=256, size=512) -> list[dict]:
    rows = []
    for r in radii:
        config = Config(f"sweep-r{r}", 8, 0, size, size, boxes, ("uniform", r, r), "batched")
        inputs = make_inputs(config, device)
        heatmap = torch.zeros(config.shape, device=device)
        draw, _ = _calls(inputs, validate=False)
        t = graph_time(lambda: draw(heatmap)) if device.type == "cuda" else wall_time(lambda: draw(heatmap), device, 2)
        rows.append(dict(radius=r, boxes=inputs.boxes, drawn_pixels=inputs.drawn_pixels(), time_us=t * 1e6))
    return rows


def variants(device, names=("seed-batched", "centernet-coco", "large-radius", "dense", "centerpoint-nus"),
             boxes=(1, 2, 4), splits=(1, 2, 4, 8), warps=(1, 2, 4)) -> list[dict]:
    """Kernel-only time of launch shapes forced through ``TUNING``, and the default's choice."""
    from .ops import draw_gaussians

    rows = []
    for name in names:
        inputs = make_inputs(CONFIGS[name], device)
        heatmap = torch.zeros(CONFIGS[name].shape, device=device)
        draw, _ = _calls(inputs, validate=False)
        default = draw_gaussians._launch_shape(inputs.radii.numel(), *CONFIGS[name].shape[-2:], device)
        for nw in warps:
            for nb in boxes:
                for sp in splits:
                    draw_gaussians.TUNING.update(boxes=nb, split=sp, warps=nw)
                    try:
                        rows.append(dict(config=name, boxes=nb, split=sp, warps=nw,
                                         default=(nb, sp, nw) == (*default[:2], 2),
                                         kernel_us=graph_time(lambda: draw(heatmap)) * 1e6))
                    finally:
                        draw_gaussians.TUNING.clear()
    return rows


def overhead(device) -> dict:
    """Wall per call (µs) of each layer of a seed-batched draw, to see where host time goes."""
    from .ops import draw_gaussians as ops

    inputs = make_inputs(CONFIGS["seed-batched"], device)
    heatmap = torch.zeros(CONFIGS["seed-batched"].shape, device=device)
    draw, _ = _calls(inputs, validate=False)
    h, w = heatmap.shape[-2:]
    args = (heatmap, h * w, heatmap.shape[0], inputs.centers, inputs.centers.stride(), inputs.radii,
            inputs.radii.stride(), None, (0, 0), inputs.counts, inputs.counts.stride(0), inputs.radii.shape[0],
            inputs.radii.shape[1], 1, 6.0, 1.0)
    out = dict(draw=wall_time(lambda: draw(heatmap), device, 2000) * 1e6,
               launch=wall_time(lambda: ops.launch(*args), device, 2000) * 1e6,
               direct_launch_enabled=ops._launch_kernel.direct, compiled_kernels=len(ops._launch_kernel.compiled))
    if ops._launch_kernel.compiled:
        small = torch.zeros(16, device=device)
        kernel = _empty_kernel[(1,)](small)
        stream = torch._C._cuda_getCurrentRawStream(device.index or 0)
        out["empty_kernel_run"] = wall_time(
            lambda: kernel.run(1, 1, 1, stream, kernel.function, kernel.packed_metadata, None, None, None, small),
            device, 2000) * 1e6
        out["empty_kernel_normal"] = wall_time(lambda: _empty_kernel[(1,)](small), device, 2000) * 1e6
        out["launch_shape"] = wall_time(lambda: ops._launch_shape(2400, h, w, device), device, 2000) * 1e6
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
    _sync(device)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
    return text.getvalue()


LOSS_SHAPES = {"centernet-coco": (32, 80, 128, 128), "centerpoint-nus": (4, 10, 180, 180)}


def loss_inputs(shape, device, seed=0):
    """Sigmoid predictions and a Gaussian-heatmap-like target with exact positives."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.sigmoid(torch.randn(shape, generator=g) * 2).clamp(1e-4, 1 - 1e-4)
    target = torch.rand(shape, generator=g) ** 8
    target[torch.rand(shape, generator=g) < 1e-3] = 1.0
    return pred.to(device), target.to(device)


def copy_bandwidth(device) -> float:
    """Bytes per second of a large device-to-device copy (read + write counted)."""
    import triton.testing

    src = torch.empty(2**28, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), warmup=25, rep=200, return_mode="median")
    return 2 * src.numel() * 4 / (ms * 1e-3)


def loss_bench(device, rounds: int = 5) -> list[dict]:
    """Forward and forward+backward time and peak extra memory of the focal loss: gaussdraw
    against mmdet's composition, eager and under torch.compile; and the bytes floor.

    Wall times (``do_bench``) include the host, which on a shared host drifts: the variants
    are timed in interleaved rounds and each keeps its median over ``rounds``. GPU times
    (CUDA-graph replay) leave the host out."""
    import statistics

    import triton.testing

    from .loss import gaussian_focal_loss
    from .reference import gaussian_focal_loss_composed

    bandwidth = copy_bandwidth(device)
    # the host's floor for any forward + backward: backward() of a one-element graph
    tiny = torch.ones(1, device=device, requires_grad=True)
    backward_floor_us = triton.testing.do_bench(lambda: (tiny * 2).sum().backward(), grad_to_none=[tiny],
                                                return_mode="median") * 1e3
    compiled = torch.compile(gaussian_focal_loss_composed)
    variants = {"gaussdraw": gaussian_focal_loss, "mmdet eager": gaussian_focal_loss_composed,
                "mmdet compiled": compiled}
    rows = []
    for name, shape in LOSS_SHAPES.items():
        pred, target = loss_inputs(shape, device)
        n = pred.numel()
        # the floor: read pred and target, write the gradient, at the copy bandwidth
        floor_us = 12 * n / bandwidth * 1e6
        calls, mine = {}, {}
        for variant, fn in variants.items():
            x = pred.clone().requires_grad_()

            def fwd(fn=fn, x=x):
                with torch.no_grad():
                    return fn(x, target)

            def fwd_bwd(fn=fn, x=x):
                x.grad = None
                fn(x, target).backward()

            fwd_bwd()  # compile / warm up
            x.grad = None
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            fwd_bwd()
            torch.cuda.synchronize()
            peak_extra = torch.cuda.max_memory_allocated(device) - base
            x.grad = None
            calls[variant] = (fwd, fwd_bwd, x)
            mine[variant] = dict(
                shape=list(shape), config=name, variant=variant, fwd_us=[], fwd_bwd_us=[],
                fwd_graph_us=_graph_time_or_none(fwd), fwd_bwd_graph_us=_graph_time_or_none(fwd_bwd),
                peak_extra_mb=peak_extra / 2**20, pred_mb=n * 4 / 2**20, floor_us=floor_us,
                copy_tb_s=bandwidth / 1e12, backward_floor_us=backward_floor_us,
            )
            x.grad = None
        for _ in range(rounds):
            for variant, (fwd, fwd_bwd, x) in calls.items():
                mine[variant]["fwd_us"].append(
                    triton.testing.do_bench(fwd, warmup=10, rep=60, return_mode="median") * 1e3)
                mine[variant]["fwd_bwd_us"].append(
                    triton.testing.do_bench(fwd_bwd, warmup=10, rep=60, grad_to_none=[x], return_mode="median") * 1e3)
        for row in mine.values():
            row["fwd_us_rounds"], row["fwd_bwd_us_rounds"] = row["fwd_us"], row["fwd_bwd_us"]
            row["fwd_us"], row["fwd_bwd_us"] = statistics.median(row["fwd_us"]), statistics.median(row["fwd_bwd_us"])
            rows.append(row)
    return rows


def _graph_time_or_none(fn, calls: int = 5):
    """GPU time per call in µs with the host out of the way (CUDA-graph replay), or None if capture fails."""
    try:
        return graph_time(fn, calls) * 1e6
    except Exception as error:  # a variant that cannot be captured is reported, not fatal
        print(f"CUDA-graph capture failed: {type(error).__name__}: {error}", file=sys.stderr)
        return None


def loss_variants(device, blocks=(512, 1024, 2048), warps=(4, 8), programs=(0, 2048, 4096, 8192)) -> list[dict]:
    """Forward (with the stored gradient) and recomputing-backward kernel times on the large loss shape,
    for forced launch shapes (``focal_loss.TUNING``): elements per step, warps (2 to 16 elements per
    thread), programs (0: one per block) and prefetching the next block (with several blocks per program)."""
    import triton.testing

    from .ops import focal_loss

    pred, target = loss_inputs(LOSS_SHAPES["centernet-coco"], device)
    one = torch.ones((), device=device)
    defaults = {kernel: {k: v for k, v in focal_loss.DEFAULT_SHAPES[kernel].items() if k != "chunk"}
                for kernel in ("forward", "backward")}
    rows = []
    shapes = [dict(block=b, warps=w, programs=p, prefetch=f) for b in blocks for w in warps for p in programs
              for f in (False, True) if 2 <= b // (32 * w) <= 16 and not (f and p == 0)]
    for shape in shapes:
        focal_loss.TUNING.update(shape)
        try:
            fwd = triton.testing.do_bench(lambda: focal_loss.focal_loss_triton(
                pred, target, None, 2.0, 4.0, 1.0, 1.0, False, True, write_grad=True), return_mode="median")
            bwd = triton.testing.do_bench(lambda: focal_loss.backward_triton(
                one, pred, target, None, 2.0, 4.0, 1.0, 1.0, False), return_mode="median")
        finally:
            focal_loss.TUNING.clear()
        rows.append(dict(shape, fwd_with_grad_us=fwd * 1e3, bwd_recompute_us=bwd * 1e3,
                         forward_default=shape == defaults["forward"], backward_default=shape == defaults["backward"]))
    return rows


def loss_table(rows: list[dict]) -> str:
    lines = ["| shape | variant | fwd (µs) | fwd+bwd (µs) | fwd GPU (µs) | fwd+bwd GPU (µs) | peak extra (MB) "
             "| pred (MB) | bytes floor (µs) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {'×'.join(map(str, r['shape']))} | {r['variant']} | {r['fwd_us']:.1f} | {r['fwd_bwd_us']:.1f} "
                     f"| {_fmt(r.get('fwd_graph_us'))} | {_fmt(r.get('fwd_bwd_graph_us'))} "
                     f"| {r['peak_extra_mb']:.0f} | {r['pred_mb']:.0f} | {r['floor_us']:.1f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str, device_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    px = [r["drawn_pixels"] for r in rows]
    t = [r["time_us"] for r in rows]
    a.loglog(px, t, "o-")
    a.set_xlabel("drawn pixels (after clipping)")
    a.set_ylabel("kernel time (µs)")
    a.set_title("cost against drawn pixels")
    b.loglog([r["radius"] for r in rows], t, "o-")
    b.set_xlabel("radius (px)")
    b.set_ylabel("kernel time (µs)")
    b.set_title(f"{rows[0]['boxes']} boxes on 8×512×512")
    for ax in (a, b):
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"gaussdraw draw_heatmap_batched, {device_name}")
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------


def environment(device) -> dict:
    env = dict(date=date.today().isoformat(), torch=torch.__version__, python=platform.python_version(),
               device=device.type)
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:  # pragma: no cover
        env["triton"] = None
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    env["command"] = " ".join(["gaussdraw", *sys.argv[1:]]) if sys.argv else "gaussdraw bench"
    return env


def _fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if value < 1e5 else f"{value:,.0f}"
    return str(value)


def table(rows: list[dict]) -> str:
    cols = [("config", "config", 0), ("boxes", "boxes", 0), ("loop (ms)", "loop_ms", 2),
            ("wall (µs)", "wall_us", 1), ("kernel (µs)", "kernel_us", 2), ("render (µs)", "render_wall_us", 1),
            ("render kernel (µs)", "render_kernel_us", 2), ("zeros kernel (µs)", "zeros_kernel_us", 2),
            ("× loop (wall)", "speedup_wall", 0), ("× loop (kernel)", "speedup_kernel", 0),
            ("wall, validate (µs)", "wall_validate_us", 1)]
    cols = [c for c in cols if any(c[1] in r for r in rows)]
    lines = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(key), d) for _, key, d in cols) + " |")
    return "\n".join(lines)


def run(names=None, device=None, quick_mode=False, json_path=None, plot_path=None, baseline=True, cpu=True,
        cpu_threads=2):
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    configs = [CONFIGS[n] for n in (names or CONFIGS)]
    if quick_mode:
        configs = [quick(c) for c in configs]
    devices = [device] + ([torch.device("cpu")] if cpu and device.type == "cuda" else [])
    jobs = [(c, d) for d in devices for c in configs]
    results = []
    threads = torch.get_num_threads()
    for k, (config, dev) in enumerate(jobs):
        torch.set_num_threads(cpu_threads if dev.type == "cpu" else threads)
        print(f"\r[{k + 1}/{len(jobs)}] {config.name} on {dev.type} ...".ljust(60), end="", file=sys.stderr, flush=True)
        results.append(bench_config(config, dev, baseline=baseline))
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


def render_markdown(report: dict) -> str:
    """The tables of a saved report (``--json``), as markdown."""
    env = report["environment"]
    out = [f"{env.get('gpu', 'CPU')}, torch {env['torch']}, Triton {env['triton']}, {env['date']}: `{env['command']}`"]
    for dev in sorted({r["device"] for r in report["results"]}, key=lambda d: d != "cuda"):
        out += ["", f"**{dev}**", "", table([r for r in report["results"] if r["device"] == dev])]
    return "\n".join(out)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="gaussdraw bench")
    p.add_argument("configs", nargs="*", choices=[*CONFIGS, []], help="config names (default: all)")
    p.add_argument("--device", default=None)
    p.add_argument("--quick", action="store_true", help="CI-sized configs")
    p.add_argument("--json", dest="json_path", default=None)
    p.add_argument("--plot", dest="plot_path", default=None)
    p.add_argument("--no-baseline", action="store_true", help="skip the per-box loop")
    p.add_argument("--no-cpu", action="store_true", help="on a GPU machine, skip the CPU rows")
    p.add_argument("--cpu-threads", type=int, default=2, help="torch threads for the CPU rows (default 2)")
    p.add_argument("--profile", action="store_true", help="cProfile of the host side of a draw call, then exit")
    p.add_argument("--loss", action="store_true",
                   help="GPU: time the Gaussian focal loss against mmdet's composition (eager, compiled), then exit")
    p.add_argument("--loss-variants", default=None, metavar="JSON",
                   help="GPU: time forced launch shapes of the loss kernels into JSON, then exit")
    p.add_argument("--variants", default=None, metavar="JSON",
                   help="GPU: time forced launch shapes (boxes per program x window splits) into JSON, then exit")
    a = p.parse_args(argv)
    if a.loss:
        device = torch.device(a.device or "cuda")
        rows = loss_bench(device)
        report = dict(environment=environment(device), loss=rows)
        if a.json_path:
            with open(a.json_path, "w") as f:
                json.dump(report, f, indent=1)
        print(f"gaussdraw bench --loss — {report['environment']}, copy {rows[0]['copy_tb_s']:.2f} TB/s, "
              f"backward() of a one-element graph {rows[0]['backward_floor_us']:.1f} µs wall")
        print(loss_table(rows))
        return 0
    if a.loss_variants:
        rows = loss_variants(torch.device(a.device or "cuda"))
        with open(a.loss_variants, "w") as f:
            json.dump(rows, f, indent=1)
        for key, kernel in (("fwd_with_grad_us", "forward"), ("bwd_recompute_us", "backward")):
            best = min(rows, key=lambda r: r[key])
            default = next((r[key] for r in rows if r[f"{kernel}_default"]), float("nan"))
            print(f"{key}: best block={best['block']} programs={best['programs']} warps={best['warps']} "
                  f"prefetch={best['prefetch']} {best[key]:.1f} us; default {default:.1f} us")
        return 0
    if a.profile:
        print(profile_draw(torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))))
        return 0
    if a.variants:
        rows = variants(torch.device(a.device or "cuda"))
        with open(a.variants, "w") as f:
            json.dump(rows, f, indent=1)
        for name in dict.fromkeys(r["config"] for r in rows):
            mine = [r for r in rows if r["config"] == name]
            best = min(mine, key=lambda r: r["kernel_us"])
            default = next(r for r in mine if r["default"]) if any(r["default"] for r in mine) else None
            print(f"{name}: best boxes={best['boxes']} split={best['split']} warps={best['warps']} "
                  f"{best['kernel_us']:.2f} us; default {default and (default['boxes'], default['split'], round(default['kernel_us'], 2))}")
        return 0
    text, _ = run(a.configs or None, a.device, a.quick, a.json_path, a.plot_path, not a.no_baseline, not a.no_cpu,
                  a.cpu_threads)
    print(text)
    return 0

"""The loss suite: the Gaussian focal loss against mmdet's composition, eager and compiled."""

from __future__ import annotations

import torch

from .report import _fmt
from .timing import copy_bandwidth, graph_time_or_none, wall_time


LOSS_SHAPES = {"centernet-coco": (32, 80, 128, 128), "centerpoint-nus": (4, 10, 180, 180)}


def loss_inputs(shape, device, seed=0):
    """Sigmoid predictions and a Gaussian-heatmap-like target with exact positives."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.sigmoid(torch.randn(shape, generator=g) * 2).clamp(1e-4, 1 - 1e-4)
    target = torch.rand(shape, generator=g) ** 8
    target[torch.rand(shape, generator=g) < 1e-3] = 1.0
    return pred.to(device), target.to(device)


def loss_bench(device, rounds: int = 5) -> list[dict]:
    """Forward and forward+backward time and peak extra memory of the focal loss: gaussdraw
    against mmdet's composition, eager and under torch.compile; and the bytes floor.

    Wall times include the host, which on a shared host drifts: the variants are timed in
    interleaved rounds and each keeps its median over ``rounds``. Two walls: ``do_bench``'s
    (the L2 flushed before each step, each step timed alone) and back-to-back steps with one
    sync (``b2b``, as a training loop issues them and as the draw suite times calls). GPU
    times (CUDA-graph replay) leave the host out."""
    import statistics

    import triton.testing

    from ..loss import gaussian_focal_loss
    from ..reference import gaussian_focal_loss_composed

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
            fwd, fwd_bwd, x, peak_extra = _calls(fn, pred, target, device)
            calls[variant] = (fwd, fwd_bwd, x)
            mine[variant] = dict(
                shape=list(shape), config=name, variant=variant, fwd_us=[], fwd_bwd_us=[], fwd_bwd_b2b_us=[],
                launch_path=_launch_path() if variant == "gaussdraw" else None,
                fwd_graph_us=graph_time_or_none(fwd), fwd_bwd_graph_us=graph_time_or_none(fwd_bwd),
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
                mine[variant]["fwd_bwd_b2b_us"].append(wall_time(fwd_bwd, device, 40) * 1e6)
        for row in mine.values():
            for column in ("fwd_us", "fwd_bwd_us", "fwd_bwd_b2b_us"):
                row[f"{column}_rounds"], row[column] = row[column], statistics.median(row[column])
            rows.append(row)
    return rows


def _calls(fn, pred, target, device):
    """(forward, forward + backward, the prediction they differentiate, peak extra bytes of a step) of a
    loss function, warmed up (compiled)."""
    x = pred.clone().requires_grad_()

    def fwd():
        with torch.no_grad():
            return fn(x, target)

    def fwd_bwd():
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
    return fwd, fwd_bwd, x, peak_extra


def loss_variants(device, blocks=(512, 1024, 2048), warps=(4, 8), programs=(0, 2048, 4096, 8192)) -> list[dict]:
    """Forward (with the stored gradient) and recomputing-backward kernel times on the large loss shape,
    for forced launch shapes (:class:`~gaussdraw.ops.focal_loss.LossLaunchShape`): elements per step,
    warps (2 to 16 elements per thread), programs (0: one per block) and prefetching the next block (with
    several blocks per program); each row says the launch path that ran."""
    import triton.testing

    from ..ops import focal_loss

    pred, target = loss_inputs(LOSS_SHAPES["centernet-coco"], device)
    one = torch.ones((), device=device)
    rows = []
    shapes = [focal_loss.LossLaunchShape(block=b, programs=p, warps=w, prefetch=f)
              for b in blocks for w in warps for p in programs for f in (False, True)
              if 2 <= b // (32 * w) <= 16 and not (f and p == 0)]
    for shape in shapes:
        fwd = triton.testing.do_bench(lambda: focal_loss.focal_loss_triton(
            pred, target, None, 2.0, 4.0, 1.0, 1.0, False, True, write_grad=True, shape=shape), return_mode="median")
        bwd = triton.testing.do_bench(lambda: focal_loss.backward_triton(
            one, pred, target, None, 2.0, 4.0, 1.0, 1.0, False, shape=shape), return_mode="median")
        rows.append(dict(block=shape.block, warps=shape.warps, programs=shape.programs, prefetch=shape.prefetch,
                         fwd_with_grad_us=fwd * 1e3, bwd_recompute_us=bwd * 1e3, launch_path=_launch_path(),
                         forward_default=shape == focal_loss.FORWARD, backward_default=shape == focal_loss.BACKWARD))
    return rows


def _launch_path():
    """The path of the loss forward kernel's last launch ("direct" or "public")."""
    from ..ops.kernels.focal_loss import focal_loss_forward_kernel
    from ..ops.launch import last_launch_path

    return last_launch_path(focal_loss_forward_kernel)


def loss_table(rows: list[dict]) -> str:
    lines = ["| shape | variant | fwd (µs) | fwd+bwd (µs) | fwd+bwd back-to-back (µs) | fwd GPU (µs) "
             "| fwd+bwd GPU (µs) | peak extra (MB) | pred (MB) | bytes floor (µs) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {'×'.join(map(str, r['shape']))} | {r['variant']} | {r['fwd_us']:.1f} | {r['fwd_bwd_us']:.1f} "
                     f"| {_fmt(r.get('fwd_bwd_b2b_us'))} "
                     f"| {_fmt(r.get('fwd_graph_us'))} | {_fmt(r.get('fwd_bwd_graph_us'))} "
                     f"| {r['peak_extra_mb']:.0f} | {r['pred_mb']:.0f} | {r['floor_us']:.1f} |")
    return "\n".join(lines)

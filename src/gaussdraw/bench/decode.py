"""The decode suite (``gaussdraw bench --decode``): heatmap peaks against mmdet / mmdet3d's torch
compositions (eager and under ``torch.compile``) with the bytes floor (reading the heatmap once at the
measured copy bandwidth), and circle NMS against mmdet3d's loop on the CPU (numba, as mmdet3d runs it,
when numba is installed; else the same loop in plain Python)."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..decode import circle_nms_batched, heatmap_peaks
from ..reference import centerpoint_topk_composed, circle_nms_per_box, heatmap_peaks_composed
from .report import _fmt
from .timing import copy_bandwidth, graph_time_or_none, wall_time

PEAK_CONFIGS = {  # name: (shape, k, kernel, per_class_k)
    "centernet-coco": ((32, 80, 128, 128), 100, 3, None),
    "centerpoint-nus": ((4, 10, 128, 128), 500, 1, 500),
}
NMS_SIZES = (1000, 4000)
QUICK_NMS_SIZES = (100, 300)  # --quick: fewer candidates, and the loop timed for 0.05 s rather than 0.5 s
NMS_BATCHES = ((24, 500),)  # (problems, most candidates) in one call: CenterPoint's 6 tasks x 4 samples
QUICK_NMS_BATCHES = ((3, 100),)


def quick_peaks(shape: tuple, k: int) -> tuple:
    """A CI-sized peaks config (--quick): one sample, at most 3 classes, a quarter of each side."""
    return (1, min(shape[1], 3), shape[2] // 4, shape[3] // 4), min(k, 20)


def peak_inputs(shape, device, seed=0):
    """A predicted-heatmap-like input: sigmoid of noise, mostly low, with some high blobs."""
    g = torch.Generator().manual_seed(seed)
    return torch.sigmoid(torch.randn(shape, generator=g) * 2 - 4).to(device)


def peaks_bench(device, rounds: int = 5, quick: bool = False) -> list[dict]:
    """GPU: heatmap peaks against the compositions; ``quick``: small shapes (:func:`quick_peaks`), 2 rounds."""
    bandwidth = copy_bandwidth(device)
    rows = []
    for name, (shape, k, kernel, per_class_k) in PEAK_CONFIGS.items():
        if quick:
            shape, k = quick_peaks(shape, k)
            per_class_k, rounds = per_class_k and k, 2
        heat = peak_inputs(shape, device)
        if per_class_k is None:
            reference = lambda h=heat, k=k, kernel=kernel: heatmap_peaks_composed(h, k, kernel)  # noqa: E731
        else:
            reference = lambda h=heat, k=k: centerpoint_topk_composed(h, k)  # noqa: E731
        compiled_fn = torch.compile(heatmap_peaks_composed if per_class_k is None else centerpoint_topk_composed)
        compiled = (lambda h=heat, k=k, kernel=kernel: compiled_fn(h, k, kernel)) if per_class_k is None else \
            (lambda h=heat, k=k: compiled_fn(h, k))
        ours = lambda h=heat, k=k, kernel=kernel, p=per_class_k: heatmap_peaks(h, k, kernel, per_class_k=p)  # noqa: E731
        expected, got = reference(), ours()
        row = dict(config=name, shape=list(shape), k=k, kernel=kernel, per_class_k=per_class_k,
                   scores_equal=bool(torch.equal(expected[0].float(), got.scores.float())),
                   floor_us=heat.numel() * heat.element_size() / bandwidth * 1e6, copy_tb_s=bandwidth / 1e12)
        if kernel > 1:  # the local maximum alone: what gaussdraw's kernel costs before the top-k
            from ..ops.local_maximum import local_maximum_triton
            row["local maximum GPU us"] = graph_time_or_none(lambda h=heat, kernel=kernel: local_maximum_triton(h, kernel))
            row["topk GPU us"] = graph_time_or_none(lambda h=heat, k=k: torch.topk(h.view(h.shape[0], -1), k))
        compiled()  # compile
        variants = {"gaussdraw": ours, "reference eager": reference, "reference compiled": compiled}
        for variant, fn in variants.items():
            row[f"{variant} GPU us"] = graph_time_or_none(fn)
            row[f"{variant} wall us"] = []
        for _ in range(rounds):
            for variant, fn in variants.items():
                row[f"{variant} wall us"].append(wall_time(fn, device, 50) * 1e6)
        for variant in variants:
            values = sorted(row[f"{variant} wall us"])
            row[f"{variant} wall us"] = values[len(values) // 2]
        rows.append(row)
        print(f"  peaks {name}: done", flush=True)
    return rows


def _circle_nms_loop():
    """The per-box circle NMS loop (:func:`gaussdraw.reference.circle_nms_per_box`), compiled by numba
    as mmdet3d compiles its own when numba is installed, else plain Python: (function, "numba" | "python")."""
    try:
        import numba
    except ImportError:
        return circle_nms_per_box, "python"
    return numba.njit(circle_nms_per_box), "numba"


def nms_inputs(count, device, seed=0):
    """CenterPoint-like candidates: centers over a 100 m x 100 m range, sigmoid scores."""
    g = torch.Generator().manual_seed(seed)
    centers = (torch.rand(count, 2, generator=g) * 100 - 50)
    scores = torch.rand(count, generator=g)
    return centers.to(device), scores.to(device)


def nms_bench(device, thresh: float = 4.0, post_max_size: int = 83, sizes=None, quick: bool = False,
              batches=None) -> list[dict]:
    """Circle NMS against the per-box loop: one problem of each of ``sizes`` candidates (default
    :data:`NMS_SIZES`, or :data:`QUICK_NMS_SIZES` with ``quick``), then each (problems, most
    candidates) of ``batches`` in one call (default :data:`NMS_BATCHES`), against the loop over them."""
    sizes = sizes or (QUICK_NMS_SIZES if quick else NMS_SIZES)
    batches = batches or (QUICK_NMS_BATCHES if quick else NMS_BATCHES)
    loop_s = 0.05 if quick else 0.5
    loop, kind = _circle_nms_loop()
    rows = []
    for problems, count in [(1, size) for size in sizes] + list(batches):
        lengths = [count - count // 5 * b // max(problems - 1, 1) for b in range(problems)]  # count down to 0.8 count
        inputs = [nms_inputs(n, device, seed=b) for b, n in enumerate(lengths)]
        dets = [tuple(np.ascontiguousarray(column) for column in torch.cat([c, s[:, None]], 1).cpu().numpy().T)
                for c, s in inputs]  # xs, ys, scores (float32) of each problem
        loop(*dets[0], thresh, post_max_size)  # compile
        start = time.perf_counter()
        repeats = 0
        while time.perf_counter() - start < loop_s or repeats < 3:
            expected = [loop(*d, thresh, post_max_size) for d in dets]
            repeats += 1
        loop_us = (time.perf_counter() - start) / repeats * 1e6
        centers = torch.zeros(problems, count, 2, device=device)
        scores = torch.zeros(problems, count, device=device)
        for b, (c, s) in enumerate(inputs):
            centers[b, : len(s)], scores[b, : len(s)] = c, s
        counts = torch.tensor(lengths, device=device)
        call = lambda: circle_nms_batched(centers, scores, thresh, post_max_size=post_max_size, counts=counts)  # noqa: E731
        kept = call()
        same = all(kept.indices[b, : int(kept.counts[b])].tolist() == [int(i) for i in expected[b]]
                   for b in range(problems))
        row = dict(candidates=count, problems=problems, thresh=thresh, post_max_size=post_max_size, loop=kind,
                   loop_us=loop_us, same_as_loop=same, wall_us=wall_time(call, device, 5 if quick else 50) * 1e6,
                   gpu_us=graph_time_or_none(call) if device.type == "cuda" else None)
        row["speedup_wall"] = loop_us / row["wall_us"]
        if device.type == "cuda":  # the one-launch kernel alone, by warps per program (its default: sorted_walk_warps)
            from ..ops.circle_nms import circle_nms_sorted_triton, sorted_walk_fits

            thresholds = torch.full((problems,), thresh, device=device)
            row["sorted walk GPU us by warps"] = {w: graph_time_or_none(
                lambda w=w: circle_nms_sorted_triton(scores, centers, counts, thresholds, post_max_size, num_warps=w))
                for w in (2, 4, 8, 16)} if sorted_walk_fits(count) else None
        rows.append(row)
        print(f"  circle NMS {problems} x {count}: done", flush=True)
    return rows


def decode_markdown(peaks: list[dict], nms: list[dict]) -> str:
    """The peaks and circle NMS tables; without peak rows (a CPU run), a line saying why in its place."""
    if not peaks:
        return "\n".join(["peaks: timed on CUDA GPUs only (mmdet's compositions against gaussdraw's kernels); "
                           "this run times circle NMS alone", "", *_nms_markdown(nms)])
    lines = ["| peaks | k | gaussdraw GPU / wall (µs) | reference eager GPU / wall | reference compiled GPU / wall "
             "| bytes floor (µs) | GPU ÷ floor | compiled ÷ gaussdraw (GPU) | local max / top-k alone, GPU (µs) "
             "| same scores |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in peaks:
        def pair(v):
            gpu = r[f"{v} GPU us"]
            return f"{gpu:,.1f} / {r[f'{v} wall us']:,.1f}" if gpu is not None else f"- / {r[f'{v} wall us']:,.1f}"
        ours_gpu, compiled_gpu = r["gaussdraw GPU us"], r["reference compiled GPU us"]
        ratio = f"{compiled_gpu / ours_gpu:.2f}" if ours_gpu and compiled_gpu else "-"
        over = f"{ours_gpu / r['floor_us']:.2f}" if ours_gpu else "-"
        lines.append(f"| {r['config']} {tuple(r['shape'])} | {r['k']} | {pair('gaussdraw')} | {pair('reference eager')} "
                     f"| {pair('reference compiled')} | {r['floor_us']:.1f} | {over} | {ratio} "
                     f"| {_fmt(r.get('local maximum GPU us'))} / {_fmt(r.get('topk GPU us'))} | {r['scores_equal']} |")
    return "\n".join(lines + [""] + _nms_markdown(nms))


def _nms_markdown(nms: list[dict]) -> list[str]:
    lines = ["| circle NMS candidates | mmdet3d loop (µs) | gaussdraw wall (µs) | gaussdraw GPU (µs) "
             "| × loop (wall) | same kept boxes |", "|---|---|---|---|---|---|"]
    for r in nms:
        gpu = f"{r['gpu_us']:,.1f}" if r.get("gpu_us") is not None else "-"
        problems = r.get("problems", 1)
        candidates = r["candidates"] if problems == 1 else f"{problems} × ≤{r['candidates']}"
        lines.append(f"| {candidates} | {r['loop_us']:,.1f} ({r['loop']}) | {r['wall_us']:,.1f} | {gpu} "
                     f"| {r['speedup_wall']:,.0f} | {r['same_as_loop']} |")
    return lines


from .head_decode import head_decode_bench, head_decode_markdown  # noqa: E402,F401 (whole-head rows of this suite)

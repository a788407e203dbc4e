"""Rotated (BEV) NMS rows for ``gaussdraw bench --decode``: :func:`gaussdraw.rotated_nms_batched` on
CenterPoint-like candidates (clusters of car-sized boxes around objects, IoU threshold 0.2,
``post_max_size`` 83 as CenterPoint's nuScenes config) against the plain per-box loop
(:func:`gaussdraw.reference.rotated_nms_per_box`, float64 Python: the cost of a loop over pairs).
One problem of 1000 candidates, and 24 problems (6 samples x 4 tasks, say) of at most 500."""

from __future__ import annotations

import math
import time

import torch

from ..decode import rotated_nms_batched
from ..reference import rotated_nms_per_box
from .report import _fmt
from .timing import graph_time_or_none, wall_time

CONFIGS = {"1x1000": (1, 1000), "24x500": (24, 500)}  # name: (problems, most candidates)
QUICK_CONFIGS = {"1x200": (1, 200), "4x100": (4, 100)}
THRESH, PRE_MAX_SIZE, POST_MAX_SIZE = 0.2, 1000, 83


def rotated_nms_inputs(problems: int, most: int, device, seed: int = 0):
    """(S, most, 5) float32 boxes, (S, most) scores, (S,) counts (the first problem full): each
    problem's candidates in clusters of ~8 around objects on a 100 m square (centers jittered by
    0.3 m, sizes by 10 %, angles by 0.1 rad)."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(most // 2, most + 1, (problems,), generator=g)
    counts[0] = most
    objects = max(1, most // 8)
    centers = torch.rand(problems, objects, 2, generator=g) * 100 - 50
    sizes = torch.tensor([4.5, 2.0]) * (0.7 + 0.6 * torch.rand(problems, objects, 1, generator=g))
    angles = (torch.rand(problems, objects, 1, generator=g) - 0.5) * 2 * math.pi
    which = torch.randint(0, objects, (problems, most), generator=g)
    pick = lambda t: torch.gather(t, 1, which[..., None].expand(problems, most, t.shape[2]))  # noqa: E731
    boxes = torch.cat([pick(centers) + torch.randn(problems, most, 2, generator=g) * 0.3,
                       pick(sizes) * (1 + torch.randn(problems, most, 2, generator=g) * 0.1),
                       pick(angles) + torch.randn(problems, most, 1, generator=g) * 0.1], 2)
    scores = torch.rand(problems, most, generator=g)
    return boxes.to(device), scores.to(device), counts.to(device)


def _loop_time(boxes, scores, counts, budget_s: float):
    """Seconds per call of the per-box loop over every problem (repeated for ``budget_s``), and its result."""
    data = [(boxes[b, :n].double().cpu().numpy(), scores[b, :n].cpu().numpy()) for b, n in enumerate(counts.tolist())]
    start, repeats = time.perf_counter(), 0
    while repeats < 1 or time.perf_counter() - start < budget_s:
        expected = [rotated_nms_per_box(b, s, THRESH, PRE_MAX_SIZE, POST_MAX_SIZE) for b, s in data]
        repeats += 1
    return (time.perf_counter() - start) / repeats, expected


def rotated_nms_bench(device, quick: bool = False) -> list[dict]:
    """One row per config (:data:`CONFIGS`, or :data:`QUICK_CONFIGS` with ``quick``): the loop's time,
    gaussdraw's wall time (and GPU time from a CUDA graph on a GPU), whether the kept boxes agree."""
    device = torch.device(device)
    rows = []
    for name, (problems, most) in (QUICK_CONFIGS if quick else CONFIGS).items():
        boxes, scores, counts = rotated_nms_inputs(problems, most, device)
        loop_s, expected = _loop_time(boxes, scores, counts, 0.0 if quick else 1.0)
        call = lambda b=boxes, s=scores, c=counts: rotated_nms_batched(  # noqa: E731
            b, s, THRESH, pre_max_size=PRE_MAX_SIZE, post_max_size=POST_MAX_SIZE, counts=c, validate=False)
        kept = call()
        got = [kept.indices[b, :n].tolist() for b, n in enumerate(kept.counts.tolist())]
        row = dict(config=name, problems=problems, most=most, candidates=int(counts.sum()), thresh=THRESH,
                   post_max_size=POST_MAX_SIZE, loop_us=loop_s * 1e6, same_as_loop=got == expected,
                   wall_us=wall_time(call, device, 3 if quick or device.type == "cpu" else 20) * 1e6,
                   gpu_us=graph_time_or_none(call) if device.type == "cuda" else None)
        row["speedup_wall"] = row["loop_us"] / row["wall_us"]
        rows.append(row)
        print(f"  rotated NMS {name}: done", flush=True)
    return rows


def rotated_nms_markdown(rows: list[dict]) -> list[str]:
    """The rows as a markdown table (lines)."""
    lines = ["| rotated NMS | candidates | per-box loop (µs) | gaussdraw wall (µs) | gaussdraw GPU (µs) "
             "| × loop (wall) | same kept boxes |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['candidates']} | {_fmt(r['loop_us'])} | {_fmt(r['wall_us'])} "
                     f"| {_fmt(r.get('gpu_us'))} | {r['speedup_wall']:,.0f} | {r['same_as_loop']} |")
    return lines

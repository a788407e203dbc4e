"""Keypoint decoding (for the ``--keypoints`` suite): :func:`gaussdraw.keypoint_decode` with each
refinement against mmpose 1.3.2's decode path (``get_heatmap_maximum`` and the refinement, one sample
at a time on the CPU, as its codecs run), with the bytes floor (reading the heatmaps once at the
measured copy bandwidth) on a GPU."""

from __future__ import annotations

import ast
import os
import time
import warnings
from functools import cache

import numpy as np
import torch

from ..keypoints import keypoint_decode
from .timing import copy_bandwidth, graph_time_or_none, wall_time

DECODE_CONFIGS = {  # name: (B, K, H, W) of a top-down pose head's output
    "coco": (64, 17, 64, 48),
    "wholebody": (64, 133, 96, 72),
}
REFINES = (None, "shift", "dark", "dark_udp")


@cache
def mmpose_decode_functions() -> dict | None:
    """mmpose's ``get_heatmap_maximum`` and refinements, executed from ``codecs/utils``'s source (the
    package's ``__init__`` needs mmcv); None where mmpose is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("mmpose")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(spec.submodule_search_locations[0], "codecs", "utils")
    names: dict = {}
    for file in ("post_processing.py", "refinement.py"):
        with open(os.path.join(folder, file)) as source:
            tree = ast.parse(source.read())
        tree.body = [node for node in tree.body if not (isinstance(node, ast.ImportFrom) and node.level)]
        exec(compile(tree, os.path.join(folder, file), "exec"), names)
    return names


def mmpose_decode_loop(maps: np.ndarray, refine, blur_kernel_size: int = 11) -> np.ndarray:
    """(B, K, 2) keypoints of (B, K, H, W) float32 ``maps``, sample by sample as mmpose's codecs decode."""
    f = mmpose_decode_functions()
    refinement = {"shift": f["refine_keypoints"], "dark": f["refine_keypoints_dark"],
                  "dark_udp": f["refine_keypoints_dark_udp"]}.get(refine)
    out = []
    for sample in maps:
        heat = sample.copy()  # the codecs' ``encoded.copy()``
        keypoints, _ = f["get_heatmap_maximum"](heat)
        keypoints = keypoints[None]
        if refine == "shift":
            keypoints = refinement(keypoints, heat)
        elif refinement is not None:
            keypoints = refinement(keypoints, heat, blur_kernel_size=blur_kernel_size)
        out.append(keypoints[0])
    return np.stack(out)


def pose_heatmaps(shape, device, seed=0) -> torch.Tensor:
    """A pose head's output: one blob of sigma 2 per map at a random sub-pixel centre, small noise, and
    every 7th keypoint invisible (a weak, slightly negative map)."""
    g = torch.Generator().manual_seed(seed)
    batch, joints, height, width = shape
    centre = torch.rand(batch, joints, 2, 1, 1, generator=g) * torch.tensor([width - 8.0, height - 8.0]).view(
        1, 1, 2, 1, 1) + 4
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    heat = torch.exp(-((xs - centre[:, :, 0]) ** 2 + (ys - centre[:, :, 1]) ** 2) / 8)
    heat += 0.01 * torch.rand(shape, generator=g)
    heat[:, ::7] = -0.01 * torch.rand(heat[:, ::7].shape, generator=g)
    return heat.to(device)


def _mmpose_row(heat: torch.Tensor, refine, seconds: float) -> dict:
    maps = heat.cpu().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmpose_decode_loop(maps, refine)
        start, repeats = time.perf_counter(), 0
        while time.perf_counter() - start < seconds or repeats < 1:
            expected = mmpose_decode_loop(maps, refine)
            repeats += 1
    ours = keypoint_decode(heat, refine=refine).keypoints.cpu().numpy()
    visible = maps.reshape(*maps.shape[:2], -1).max(-1) > 0
    return {"mmpose cpu wall us": (time.perf_counter() - start) / repeats * 1e6,
            "max px vs mmpose": float(np.abs(ours - expected)[visible].max()) if visible.any() else 0.0}


def keypoint_decode_bench(device, quick: bool = False) -> list[dict]:
    """One row per (config, refine): gaussdraw's wall time (and, on a GPU, its GPU time, the torch
    path's, and the read-once floor), mmpose's CPU loop, and the largest keypoint difference from it.
    ``quick``: 2 samples per config."""
    device = torch.device(device)
    bandwidth = copy_bandwidth(device) if device.type == "cuda" else None
    rows = []
    for name, shape in DECODE_CONFIGS.items():
        if quick:
            shape = (2, *shape[1:])
        heat = pose_heatmaps(shape, device)
        for refine in REFINES:
            ours = lambda h=heat, r=refine: keypoint_decode(h, refine=r)  # noqa: E731
            row = dict(config=name, shape=list(shape), refine=refine or "none", dtype="float32",
                       threads=torch.get_num_threads() if device.type == "cpu" else None,
                       **{"gaussdraw wall us": wall_time(ours, device, 20 if quick else 200 if device.type == "cuda"
                                                         else 1) * 1e6})
            if device.type == "cuda":
                torch_path = lambda h=heat, r=refine: keypoint_decode(h, refine=r, backend="torch")  # noqa: E731
                row["gaussdraw GPU us"] = graph_time_or_none(ours)
                row["torch path GPU us"] = graph_time_or_none(torch_path)
                row["torch path wall us"] = wall_time(torch_path, device, 20 if quick else 100) * 1e6
                row["read-once floor us"] = heat.numel() * heat.element_size() / bandwidth * 1e6
                row["copy TB/s"] = bandwidth / 1e12
            if mmpose_decode_functions() is not None:
                row.update(_mmpose_row(heat, refine, 0.05 if quick else 0.5))
                row["speedup wall vs mmpose"] = row["mmpose cpu wall us"] / row["gaussdraw wall us"]
            rows.append(row)
            print(f"  keypoint decode {name} {refine}: done", flush=True)
    return rows


def keypoint_decode_markdown(rows: list[dict]) -> str:
    """The rows as a table."""
    lines = ["| config (B, K, H, W) | refine | gaussdraw wall (µs) | GPU (µs) | read-once floor (µs) "
             "| torch path GPU / wall (µs) | mmpose CPU loop (µs) | × mmpose | max px vs mmpose |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "-" if v is None else f"{v:,.1f}"  # noqa: E731
    for r in rows:
        lines.append(f"| {r['config']} {tuple(r['shape'])} | {r['refine']} | {fmt(r['gaussdraw wall us'])} "
                     f"| {fmt(r.get('gaussdraw GPU us'))} | {fmt(r.get('read-once floor us'))} "
                     f"| {fmt(r.get('torch path GPU us'))} / {fmt(r.get('torch path wall us'))} "
                     f"| {fmt(r.get('mmpose cpu wall us'))} | {fmt(r.get('speedup wall vs mmpose'))} "
                     f"| {r.get('max px vs mmpose', float('nan')):.2g} |")
    return "\n".join(lines)

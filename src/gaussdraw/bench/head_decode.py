"""Whole-head decoding rows of the decode suite (``gaussdraw bench --decode``): CenterPoint's
``predict_by_feat`` and CenterNet's ``_decode_heatmap`` as mmdet3d / mmdet write them, timed in the same
run as gaussdraw's ``centerpoint_decode`` / ``centernet_decode``, beside the read-once floor of the
head outputs (every input byte read once at the measured copy bandwidth).

mmdet's code is cut from the installed packages by ``tests/oracles.py`` (run from the repository root);
where it cannot be loaded, its columns are left out with the reason printed."""

from __future__ import annotations

import importlib.util
import sys

import torch

from ..decode import centernet_decode, centerpoint_decode
from .timing import copy_bandwidth, graph_time_or_none, wall_time

NUSCENES_CLASSES = (1, 2, 2, 1, 2, 2)
NUSCENES = dict(point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], voxel_size=[0.2, 0.2, 8], out_size_factor=4,
                post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], max_num=500, score_threshold=0.1,
                min_radius=[4, 12, 10, 1, 0.85, 0.175], post_max_size=83, nms_thr=0.2, pre_max_size=1000)
CENTERPOINT_SIZES = ((128, 1), (128, 4), (180, 1), (180, 4))  # (map side, batch)
CENTERNET = ((32, 80, 128, 128), 100, (512, 512))  # shape, k, img_shape


def _oracles():
    """tests/oracles.py's loaders, or None with the reason printed."""
    try:
        from tests import oracles  # the repository root on the path (python -m gaussdraw from there)
    except ImportError as error:
        print(f"head decode: mmdet's code not loaded (run from the repository root): {error}", file=sys.stderr)
        return None
    return oracles


def _mmdet3d_circle_loop(oracles):
    """mmdet3d's ``circle_nms`` compiled by numba as mmdet3d runs it, else the plain-Python loop:
    (function, "numba" | "python")."""
    loop = oracles.mmdet3d_circle_nms()
    try:
        import numba
    except ImportError:
        return loop, "python"
    return numba.jit(nopython=True)(loop), "numba"


def centerpoint_heads(batch: int, size: int, device, seed: int = 0) -> list:
    """nuScenes-like head outputs: six tasks, logits mostly low with some above the 0.1 threshold."""
    g = torch.Generator().manual_seed(seed)
    heads = []
    for count in NUSCENES_CLASSES:
        head = {"heatmap": torch.randn(batch, count, size, size, generator=g) * 2 - 4}
        for name, channels in (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2)):
            head[name] = torch.randn(batch, channels, size, size, generator=g) * 0.5
        heads.append({name: value.to(device) for name, value in head.items()})
    return heads


def _median_wall(fn, device, calls: int, quick: bool = False) -> float:
    """µs per call: the median of 3 :func:`wall_time` runs of ``calls`` calls (one run with ``quick``)."""
    rounds = 1 if quick else 3
    return sorted(wall_time(fn, device, calls) for _ in range(rounds))[rounds // 2] * 1e6


def _centerpoint_row(size, batch, nms, device, bandwidth, oracles, quick) -> dict:
    heads = centerpoint_heads(batch, size, device)
    tasks = [dict(num_class=c, class_names=[f"c{t}_{i}" for i in range(c)]) for t, c in enumerate(NUSCENES_CLASSES)]
    options = dict(NUSCENES, max_num=100) if quick else NUSCENES
    ours = lambda: centerpoint_decode(heads, tasks, nms=nms, **options)  # noqa: E731
    read_bytes = sum(v.numel() * v.element_size() for h in heads for v in h.values())
    row = {"config": f"centerpoint-nus {size}x{size}", "batch": batch, "nms": nms, "floor_us": read_bytes / bandwidth * 1e6,
           "gaussdraw GPU us": graph_time_or_none(ours) if device.type == "cuda" else None,
           "gaussdraw wall us": _median_wall(ours, device, 2 if quick else 50, quick)}
    result = ours()
    row["boxes"] = int(result.counts.sum())
    if oracles is not None and nms == "circle":
        loop, kind = _mmdet3d_circle_loop(oracles)
        predict = oracles.mmdet3d_centerpoint_predict(None, loop)
        test_cfg = dict(nms_type="circle", score_threshold=NUSCENES["score_threshold"], min_radius=NUSCENES["min_radius"],
                        post_max_size=NUSCENES["post_max_size"], post_center_limit_range=NUSCENES["post_center_range"],
                        nms_thr=NUSCENES["nms_thr"], pre_max_size=NUSCENES["pre_max_size"])
        coder = dict(max_num=options["max_num"], out_size_factor=4, voxel_size=NUSCENES["voxel_size"],
                     pc_range=NUSCENES["point_cloud_range"], post_center_range=NUSCENES["post_center_range"],
                     score_threshold=NUSCENES["score_threshold"], code_size=9)
        theirs = lambda: predict(tuple([h] for h in heads), tasks, test_cfg, coder)  # noqa: E731
        expected = theirs()
        row["mmdet3d circle loop"] = kind
        row["mmdet3d wall us"] = _median_wall(theirs, device, 1 if quick else 5, quick)
        row["speedup_wall"] = row["mmdet3d wall us"] / row["gaussdraw wall us"]
        row["same_as_mmdet3d"] = all(
            int(result.counts[b]) == len(s) and torch.equal(result.scores[b, : len(s)], s)
            and torch.equal(result.labels[b, : len(s)], l.long()) for b, (_, s, l) in enumerate(expected))
    return row


def _centernet_row(device, bandwidth, oracles, quick) -> dict:
    shape, k, img_shape = CENTERNET
    if quick:
        shape, k = (2, 3, 32, 32), 20
    g = torch.Generator().manual_seed(0)
    heat = torch.sigmoid(torch.randn(shape, generator=g) * 2 - 4).to(device)
    wh = (torch.rand(shape[0], 2, *shape[2:], generator=g) * 30).to(device)
    offset = torch.rand(shape[0], 2, *shape[2:], generator=g).to(device)
    read_bytes = sum(t.numel() * t.element_size() for t in (heat, wh, offset))
    variants = {"gaussdraw": lambda: centernet_decode(heat, wh, offset, img_shape, k=k)}
    if oracles is not None:
        decode = oracles.mmdet_centernet_decode_heatmap()
        variants["mmdet eager"] = lambda: decode(heat, wh, offset, img_shape, k=k, kernel=3)
        if device.type == "cuda":  # the compiled column is a GPU one (Inductor's CPU build is slow in CI)
            compiled = torch.compile(decode)
            variants["mmdet compiled"] = lambda: compiled(heat, wh, offset, img_shape, k=k, kernel=3)
    row = {"config": f"centernet-coco {tuple(shape)}", "batch": shape[0], "k": k,
           "floor_us": read_bytes / bandwidth * 1e6}
    for name, fn in variants.items():
        fn()
        row[f"{name} GPU us"] = graph_time_or_none(fn) if device.type == "cuda" else None
        row[f"{name} wall us"] = _median_wall(fn, device, 2 if quick else 50, quick)
    if oracles is not None:
        ours, (boxes, _) = variants["gaussdraw"](), variants["mmdet eager"]()
        row["same_scores_as_mmdet"] = bool(torch.equal(ours.scores, boxes[..., 4]))
    return row


def head_decode_bench(device, quick: bool = False) -> list[dict]:
    """Whole-head rows: CenterPoint nuScenes (6 tasks, 128/180 maps, B 1 and 4; circle NMS, and rotated
    NMS where gaussdraw has it) against mmdet3d's ``predict_by_feat``; CenterNet COCO against mmdet's
    ``_decode_heatmap`` eager and compiled. ``quick``: one small size of each."""
    bandwidth = copy_bandwidth(device) if device.type == "cuda" else 20e9
    oracles = _oracles()
    methods = ["circle"] + (["rotate"] if importlib.util.find_spec("gaussdraw.decode.rotated_nms") else [])
    rows = []
    for size, batch in ((32, 1),) if quick else CENTERPOINT_SIZES:
        for nms in methods:
            rows.append(_centerpoint_row(size, batch, nms, device, bandwidth, oracles, quick))
            print(f"  head decode centerpoint {size} B={batch} {nms}: done", flush=True)
    rows.append(_centernet_row(device, bandwidth, oracles, quick))
    print("  head decode centernet: done", flush=True)
    return rows


def _fmt(value, spec=",.1f") -> str:
    return "-" if value is None else format(value, spec)


def head_decode_markdown(rows: list[dict]) -> str:
    """Two tables: CenterPoint rows, then CenterNet rows."""
    lines = ["| head decode | B | NMS | gaussdraw GPU / wall (µs) | mmdet3d predict_by_feat wall (µs) | × mmdet3d (wall) "
             "| read-once floor (µs) | boxes | same as mmdet3d |", "|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if r["config"].startswith("centerpoint")):
        loop = f" ({r['mmdet3d circle loop']} circle NMS)" if "mmdet3d circle loop" in r else ""
        lines.append(f"| {r['config']} | {r['batch']} | {r['nms']} | {_fmt(r['gaussdraw GPU us'])} / "
                     f"{_fmt(r['gaussdraw wall us'])} | {_fmt(r.get('mmdet3d wall us'))}{loop} "
                     f"| {_fmt(r.get('speedup_wall'), ',.0f')} | {r['floor_us']:.1f} | {r['boxes']} "
                     f"| {r.get('same_as_mmdet3d', '-')} |")
    lines += ["", "| head decode | k | gaussdraw GPU / wall (µs) | mmdet eager GPU / wall | mmdet compiled GPU / wall "
              "| read-once floor (µs) | GPU ÷ floor | compiled ÷ gaussdraw (GPU) | same scores |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if r["config"].startswith("centernet")):
        def pair(v):
            return f"{_fmt(r.get(f'{v} GPU us'))} / {_fmt(r.get(f'{v} wall us'))}"
        ours, compiled = r.get("gaussdraw GPU us"), r.get("mmdet compiled GPU us")
        over = f"{ours / r['floor_us']:.2f}" if ours else "-"
        ratio = f"{compiled / ours:.2f}" if ours and compiled else "-"
        lines.append(f"| {r['config']} | {r['k']} | {pair('gaussdraw')} | {pair('mmdet eager')} | {pair('mmdet compiled')} "
                     f"| {r['floor_us']:.1f} | {over} | {ratio} | {r.get('same_scores_as_mmdet', '-')} |")
    return "\n".join(lines)

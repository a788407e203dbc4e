"""The CPU suite (``gaussdraw bench --cpu-table``): gaussdraw's CPU path against the per-box loop
(and, where they are installed, mmdet3d's own ``draw_heatmap_gaussian`` loop for one sample's boxes and
mmdet's own ``gen_gaussian_target`` loop for the configs),
as a data loader calls it (one sample at a time: 1 and 10 boxes) and on every drawing config,
with 2 threads and with 1 (a loader worker), min / median / max over interleaved rounds (a shared
machine's timings swing between runs). Each config also times a floor for drawing box by box: one
max of a constant into each box's window and nothing else."""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from ..draw import draw_heatmap
from ..reference import draw_heatmap_per_box
from .draw import CONFIGS, _calls, make_inputs, quick

# one sample's heatmap (CenterPoint-like: 10 classes on 128 x 128), boxes of radius 2..8
SAMPLE_SHAPE = (10, 128, 128)
SAMPLE_BOXES = (1, 10)


def _load_from(package: str, relative_path: str, name: str):
    """``name`` from a file of an installed ``package``, loaded by path (the files used here import
    only NumPy and torch, not the package's own dependencies); None where the package is absent."""
    import importlib.util
    import os

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), *relative_path.split("/"))
    module_spec = importlib.util.spec_from_file_location(f"_bench_{package}_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def mmdet3d_draw_heatmap_gaussian():
    """mmdet3d's own per-box ``draw_heatmap_gaussian`` when mmdet3d is installed; else None."""
    return _load_from("mmdet3d", "models/utils/gaussian.py", "draw_heatmap_gaussian")


def mmdet_gen_gaussian_target():
    """mmdet's own per-box ``gen_gaussian_target`` (what ``CenterNetHead.get_targets`` draws with)
    when mmdet is installed; else None."""
    return _load_from("mmdet", "models/utils/gaussian_target.py", "gen_gaussian_target")


def _sample_call(boxes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    planes, height, width = SAMPLE_SHAPE
    centers = torch.stack([torch.randint(0, width, (boxes,), generator=g),
                           torch.randint(0, height, (boxes,), generator=g)], 1)
    radii = torch.randint(2, 9, (boxes,), generator=g)
    labels = torch.randint(0, planes, (boxes,), generator=g)
    heatmap = torch.zeros(SAMPLE_SHAPE)
    calls = {"gaussdraw": lambda: draw_heatmap(heatmap, centers, radii, labels),
             "loop": lambda: draw_heatmap_per_box(heatmap, centers, radii, labels)}
    mmdet3d = mmdet3d_draw_heatmap_gaussian()
    if mmdet3d is not None:  # as CenterHead.get_targets calls it: an int32 center row per box
        rows = list(zip(centers.int(), radii.tolist(), labels.tolist()))

        def mmdet3d_loop():
            for center, radius, label in rows:
                mmdet3d(heatmap[label], center, radius)

        calls["mmdet3d_loop"] = mmdet3d_loop
    return calls


def _config_call(name: str, quick_mode: bool = False):
    config = quick(CONFIGS[name]) if quick_mode else CONFIGS[name]
    inputs = make_inputs(config, torch.device("cpu"))
    heatmap = torch.zeros(config.shape)
    draw, _ = _calls(inputs, validate=None)  # default arguments: values checked, as on any CPU call
    calls = {"gaussdraw": lambda: draw(heatmap), "loop": lambda: draw_heatmap_per_box(heatmap, *inputs.flat),
             "window_max_floor": _window_max_floor(heatmap, *inputs.flat)}
    mmdet = mmdet_gen_gaussian_target()
    if mmdet is not None:  # as CenterNetHead.get_targets calls it: a plane, an [x, y] list and a radius per box
        planes = heatmap.view(-1, *heatmap.shape[-2:])
        rows = [([x, y], r, i) for (x, y), r, i in zip(*(t.tolist() for t in inputs.flat))]

        def mmdet_loop():
            for center, radius, index in rows:
                mmdet(planes[index], center, radius)

        calls["mmdet_loop"] = mmdet_loop
    return calls


def _window_max_floor(heatmap, centers, radii, idxes):
    """A floor for drawing box by box: one NumPy max of a constant into each box's window (clipped
    to the map), nothing else: every pixel read and written once, one call per box."""
    planes = heatmap.numpy().reshape(-1, *heatmap.shape[-2:])
    height, width = planes.shape[1:]
    windows = []
    for (x, y), r, plane in zip(centers.tolist(), radii.tolist(), idxes.tolist()):
        x_lo, x_hi, y_lo, y_hi = max(x - r, 0), min(x + r, width - 1), max(y - r, 0), min(y + r, height - 1)
        if x_lo <= x_hi and y_lo <= y_hi:
            windows.append((plane, y_lo, y_hi + 1, x_lo, x_hi + 1))
    side = max([max(w[2] - w[1], w[4] - w[3]) for w in windows], default=1)
    constant = np.full((side, side), 0.5, dtype=planes.dtype)

    def floor():
        for plane, y_lo, y_end, x_lo, x_end in windows:
            window = planes[plane, y_lo:y_end, x_lo:x_end]
            np.maximum(window, constant[: y_end - y_lo, : x_end - x_lo], out=window)

    return floor


def _per_call_us(fn, budget_s: float) -> float:
    """µs per call over as many calls as fit ``budget_s`` (at least one)."""
    start = time.perf_counter()
    calls = 0
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s:
            return elapsed / calls * 1e6


def cpu_table(names=None, threads=(2, 1), rounds: int = 7, budget_s: float = 0.05, quick_mode=False) -> list[dict]:
    """Rows of min / median / max µs per call for gaussdraw (default arguments) and the loop
    (``quick_mode``: the configs' CI-sized versions)."""
    cases = [(f"sample, {n} box{'es' if n > 1 else ''}", lambda n=n: _sample_call(n)) for n in SAMPLE_BOXES]
    cases += [(name, lambda name=name: _config_call(name, quick_mode)) for name in (names or CONFIGS)]
    previous = torch.get_num_threads()
    rows = []
    try:
        for count in threads:
            torch.set_num_threads(count)
            for label, make in cases:
                calls = make()
                for fn in calls.values():  # warm up
                    fn()
                times = {name: [] for name in calls}
                for _ in range(rounds):  # interleaved, so that drift hits every variant
                    for name, fn in calls.items():
                        times[name].append(_per_call_us(fn, budget_s))
                row = dict(case=label, threads=count, rounds=rounds)
                for name, values in times.items():
                    row[f"{name}_us"] = dict(min=min(values), median=statistics.median(values), max=max(values))
                row["speedup_median"] = row["loop_us"]["median"] / row["gaussdraw_us"]["median"]
                for library in ("mmdet3d", "mmdet"):
                    if f"{library}_loop_us" in row:
                        row[f"speedup_vs_{library}_median"] = (row[f"{library}_loop_us"]["median"]
                                                               / row["gaussdraw_us"]["median"])
                rows.append(row)
                print(f"  {label}, {count} thread(s): gaussdraw {row['gaussdraw_us']['median']:,.1f} µs, "
                      f"loop {row['loop_us']['median']:,.1f} µs", flush=True)
    finally:
        torch.set_num_threads(previous)
    return rows


def cpu_markdown(rows: list[dict]) -> str:
    def span(d):
        return f"{d['median']:,.1f} ({d['min']:,.1f}–{d['max']:,.1f})"

    lines = ["| case | threads | gaussdraw µs/call, median (min–max) | per-box loop µs/call, median (min–max) "
             "| × loop (medians) | the library's own loop µs/call, median (min–max) | × its loop "
             "| window-max floor µs/call, median (min–max) | loop / floor |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        library = next((name for name in ("mmdet3d", "mmdet") if f"{name}_loop_us" in r), None)
        versus = ((f"{library}: {span(r[f'{library}_loop_us'])}", f"{r[f'speedup_vs_{library}_median']:.1f}")
                  if library else ("-", "-"))
        floor = r.get("window_max_floor_us")
        floors = (span(floor), f"{r['loop_us']['median'] / floor['median']:.1f}") if floor else ("-", "-")
        lines.append(f"| {r['case']} | {r['threads']} | {span(r['gaussdraw_us'])} | {span(r['loop_us'])} "
                     f"| {r['speedup_median']:.1f} | {versus[0]} | {versus[1]} | {floors[0]} | {floors[1]} |")
    return "\n".join(lines)

"""``gaussdraw bench``: each suite against its baseline, with the floors measured in the same run.

Suites: :mod:`.draw` (default: the drawing configs against the per-box loop), :mod:`.loss`
(``--loss``: the focal loss), :mod:`.targets` (``--targets``: whole target assignment
against the heads' per-box loops). Shared: :mod:`.timing` (wall and GPU time, floors),
:mod:`.report` (environment, tables, plots).
"""

from __future__ import annotations

import json
import os

import torch

from .draw import CONFIGS, Config, bench_config, make_inputs, profile_draw, quick, run, variants
from .cpu import cpu_markdown, cpu_table
from .decode import decode_markdown, nms_bench, peaks_bench
from .loss import loss_bench, loss_table, loss_variants
from .reference import load as load_reference
from .report import environment, render_markdown
from .targets import TARGET_CONFIGS, targets_bench, targets_table

__all__ = ["CONFIGS", "Config", "bench_config", "main", "make_inputs", "quick", "render_markdown", "run"]


def _report(json_path, device, suite: str, table_text: str, note: str = "", **rows) -> int:
    """Write a suite's rows with the environment as JSON (when asked) and print its table."""
    report = dict(environment=environment(device), **rows)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=1)
    print(f"gaussdraw bench --{suite} — {report['environment']}{note}")
    print(table_text)
    return 0


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="gaussdraw bench", description="gaussdraw against its baselines, with the "
                                "floors measured in the same run. Without a suite option: the drawing configs.")
    p.add_argument("configs", nargs="*", metavar="CONFIG",
                   help=f"drawing configs to run (default: all): {', '.join(CONFIGS)}")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--quick", action="store_true", help="CI-sized configs")
    p.add_argument("--json", dest="json_path", default=None, metavar="FILE", help="write the results as JSON")
    p.add_argument("--plot", dest="plot_path", default=None, metavar="PNG",
                   help="draw kernel time against drawn pixels and radius into a PNG")
    p.add_argument("--no-baseline", action="store_true", help="skip the per-box loop")
    p.add_argument("--no-cpu", action="store_true", help="on a GPU machine, skip the CPU rows")
    p.add_argument("--cpu-threads", type=int, default=2, help="torch threads for the CPU rows (default 2)")
    p.add_argument("--decode", action="store_true",
                   help="heatmap peaks against mmdet/mmdet3d's compositions (eager, compiled; GPU) and circle NMS "
                        "against mmdet3d's loop on the CPU, then exit")
    p.add_argument("--cpu-table", action="store_true",
                   help="CPU: gaussdraw against the per-box loop for one sample of 1 and 10 boxes and every config "
                        "(or the CONFIGs given), 2 threads and 1, min/median/max over rounds, then exit")
    p.add_argument("--profile", action="store_true", help="cProfile of the host side of a draw call, then exit")
    p.add_argument("--loss", action="store_true",
                   help="GPU: time the Gaussian focal loss against mmdet's composition (eager, compiled), then exit")
    p.add_argument("--loss-variants", default=None, metavar="JSON",
                   help="GPU: time forced launch shapes of the loss kernels into JSON, then exit")
    p.add_argument("--variants", default=None, metavar="JSON",
                   help="GPU: time forced launch shapes (boxes per program x window splits) into JSON, then exit")
    p.add_argument("--targets", nargs="*", default=None, choices=list(TARGET_CONFIGS), metavar="CONFIG",
                   help="time whole target assignment against the heads' per-box loops (configs: "
                        f"{', '.join(TARGET_CONFIGS)}; default all), then exit")
    p.add_argument("--reference", default=os.environ.get("GAUSSDRAW_REFERENCE"), metavar="DIR",
                   help="GPU: also time ACCV-Lab's draw_heatmap, built from DIR/load_reference.py, on the same "
                        "inputs (default: $GAUSSDRAW_REFERENCE)")
    a = p.parse_args(argv)
    unknown = [c for c in a.configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    from ..cli import check_device

    check_device(a.device)
    if a.targets is not None:
        device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        rows = targets_bench(device, a.targets or None, quick=a.quick, cpu=not a.no_cpu, cpu_threads=a.cpu_threads)
        return _report(a.json_path, device, "targets", targets_table(rows), targets=rows)
    if a.decode:
        device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        peaks = peaks_bench(device) if device.type == "cuda" else []
        nms = nms_bench(device)
        return _report(a.json_path, device, "decode", decode_markdown(peaks, nms), peaks=peaks, circle_nms=nms)
    if a.cpu_table:
        rows = cpu_table(a.configs or None, rounds=3 if a.quick else 7, budget_s=0.005 if a.quick else 0.05,
                         quick_mode=a.quick)
        return _report(a.json_path, torch.device("cpu"), "cpu-table", cpu_markdown(rows), cpu_table=rows)
    if a.loss:
        device = torch.device(a.device or "cuda")
        rows = loss_bench(device)
        return _report(a.json_path, device, "loss", loss_table(rows), loss=rows,
                       note=f", copy {rows[0]['copy_tb_s']:.2f} TB/s, backward() of a one-element graph "
                            f"{rows[0]['backward_floor_us']:.1f} µs wall")
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
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    reference = load_reference(a.reference) if device.type == "cuda" else None
    text, _ = run(a.configs or None, device, a.quick, a.json_path, a.plot_path, not a.no_baseline, not a.no_cpu,
                  a.cpu_threads, reference=reference)
    print(text)
    return 0

"""``gaussdraw bench``: each suite against its baseline, with the floors measured in the same run.

Suites: :mod:`.draw` (default: the drawing configs against the per-box loop), :mod:`.loss`
(``--loss``: the focal loss), :mod:`.targets` (``--targets``: whole target assignment
against the heads' per-box loops), :mod:`.keypoints` (``--keypoints``: keypoint heatmap encoding against
mmpose's encoder looped over the batch), :mod:`.decode` (``--decode``), :mod:`.cpu` (``--cpu-table``).
Each is a :class:`Suite` in :data:`SUITES`: the option that selects it and the function that runs it.
Shared: :mod:`.timing` (wall and GPU time, floors), :mod:`.report` (environment, tables, plots).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Callable

import torch

from .draw import CONFIGS, Config, bench_config, make_inputs, profile_draw, quick, run, variants
from .cpu import cpu_markdown, cpu_table
from .decode import decode_markdown, nms_bench, peaks_bench
from .keypoint_decode import keypoint_decode_bench, keypoint_decode_markdown
from .keypoints import (KEYPOINT_CONFIGS, keypoint_variants, keypoint_variants_table, keypoints_bench,
                        keypoints_table)
from .head_decode import head_decode_bench, head_decode_markdown
from .loss import loss_bench, loss_table, loss_variants
from .reference import load as load_reference
from .rotated_nms import rotated_nms_bench, rotated_nms_markdown
from .report import environment, render_markdown
from .targets import TARGET_CONFIGS, targets_bench, targets_table

__all__ = ["CONFIGS", "Config", "SUITES", "Suite", "bench_config", "main", "make_inputs", "quick",
           "render_markdown", "run"]

_SWITCH = (("action", "store_true"),)  # a suite option that takes no value


@dataclass(frozen=True)
class Suite:
    """One suite of ``gaussdraw bench``: the option that selects it and the function that runs it.

    ``run(args, device)`` gets the parsed arguments and the device (``--device``, else cuda where the
    suite needs a GPU or one is there, else cpu) and returns the exit status. ``option`` holds the
    keywords of ``add_argument`` for ``flag``; the default suite has no flag. ``reads`` names the shared
    options the suite uses (``--device`` aside): one given that it does not read is an error, not ignored."""

    name: str
    flag: str | None
    help: str
    needs_gpu: bool
    run: Callable[[argparse.Namespace, torch.device], int]
    option: tuple = _SWITCH
    reads: tuple = ()  # the shared options (argparse dests) it reads; another one given is an error

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def selected(self, args: argparse.Namespace) -> bool:
        value = getattr(args, self.dest)
        return value is not None and value is not False


def _report(json_path, device, suite: str, table_text: str, note: str = "", **rows) -> int:
    """Write a suite's rows with the environment as JSON (when asked) and print its table."""
    report = dict(environment=environment(device), **rows)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=1)
    print(f"gaussdraw bench --{suite} — {report['environment']}{note}")
    print(table_text)
    return 0


def _reference(a, device):
    """The loaded reference of --reference (else $GAUSSDRAW_REFERENCE), checked before any work: a
    folder without ``load_reference.py`` exits with one line; on the CPU it is left out, with a note."""
    directory = a.reference or os.environ.get("GAUSSDRAW_REFERENCE")
    if not directory:
        return None
    source = "--reference" if a.reference else "$GAUSSDRAW_REFERENCE"
    if not os.path.isfile(os.path.join(directory, "load_reference.py")):
        what = "is not a folder" if not os.path.isdir(directory) else "has no load_reference.py"
        raise SystemExit(f"gaussdraw: {source} {directory} {what}: give the folder that holds ACCV-Lab's "
                         "load_reference.py, or leave the option out")
    if device.type != "cuda":
        print(f"gaussdraw: {source}: ACCV-Lab's draw_heatmap is a CUDA extension, timed on GPUs only; "
              "this CPU run leaves it out", file=sys.stderr)
        return None
    return load_reference(directory)


def _run_draw(a, device) -> int:
    reference = _reference(a, device)
    text, _ = run(a.configs or None, device, a.quick, a.json_path, a.plot_path, not a.no_baseline, not a.no_cpu,
                  a.cpu_threads, reference=reference)
    print(text)
    return 0


def _run_targets(a, device) -> int:
    rows = targets_bench(device, a.targets or None, quick=a.quick, cpu=not a.no_cpu, cpu_threads=a.cpu_threads)
    return _report(a.json_path, device, "targets", targets_table(rows), targets=rows)


def _run_keypoints(a, device) -> int:
    rows = keypoints_bench(device, a.keypoints or None, quick=a.quick, cpu=not a.no_cpu, cpu_threads=a.cpu_threads)
    shapes = keypoint_variants(device, a.keypoints or None) if device.type == "cuda" and not a.quick else []
    decoded = keypoint_decode_bench(device, quick=a.quick)
    markdown = keypoints_table(rows) + "\n\n" + keypoint_decode_markdown(decoded)
    if shapes:
        markdown += f"\n\nKeypoint heatmap encoding, launch shapes (GPU):\n{keypoint_variants_table(shapes)}"
    return _report(a.json_path, device, "keypoints", markdown, keypoints=rows, keypoint_decode=decoded,
                   keypoint_shapes=shapes)


def _run_decode(a, device) -> int:
    peaks = peaks_bench(device, quick=a.quick) if device.type == "cuda" else []
    nms = nms_bench(device, quick=a.quick)
    rotated = rotated_nms_bench(device, quick=a.quick)
    heads = head_decode_bench(device, quick=a.quick)
    markdown = "\n\n".join([decode_markdown(peaks, nms), "\n".join(rotated_nms_markdown(rotated)),
                              head_decode_markdown(heads)])
    return _report(a.json_path, device, "decode", markdown, peaks=peaks, circle_nms=nms, rotated_nms=rotated,
                   head_decode=heads)


def _run_cpu_table(a, device) -> int:
    """Always on the CPU, whatever --device says."""
    rows = cpu_table(a.configs or None, rounds=3 if a.quick else 7, budget_s=0.005 if a.quick else 0.05,
                     quick_mode=a.quick)
    return _report(a.json_path, torch.device("cpu"), "cpu-table", cpu_markdown(rows), cpu_table=rows)


def _run_loss(a, device) -> int:
    rows = loss_bench(device)
    return _report(a.json_path, device, "loss", loss_table(rows), loss=rows,
                   note=f", copy {rows[0]['copy_tb_s']:.2f} TB/s, backward() of a one-element graph "
                        f"{rows[0]['backward_floor_us']:.1f} µs wall")


def _run_loss_variants(a, device) -> int:
    rows = loss_variants(device)
    with open(a.loss_variants, "w") as f:
        json.dump(rows, f, indent=1)
    for key, kernel in (("fwd_with_grad_us", "forward"), ("bwd_recompute_us", "backward")):
        best = min(rows, key=lambda r: r[key])
        default = next((r[key] for r in rows if r[f"{kernel}_default"]), float("nan"))
        print(f"{key}: best block={best['block']} programs={best['programs']} warps={best['warps']} "
              f"prefetch={best['prefetch']} {best[key]:.1f} us; default {default:.1f} us")
    return 0


def _run_profile(a, device) -> int:
    print(profile_draw(device, calls=300 if a.quick else 3000))
    return 0


def _run_variants(a, device) -> int:
    rows = variants(device)
    with open(a.variants, "w") as f:
        json.dump(rows, f, indent=1)
    for name in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == name]
        best = min(mine, key=lambda r: r["kernel_us"])
        default = next(r for r in mine if r["default"]) if any(r["default"] for r in mine) else None
        print(f"{name}: best boxes={best['boxes']} split={best['split']} warps={best['warps']} "
              f"{best['kernel_us']:.2f} us; default {default and (default['boxes'], default['split'], round(default['kernel_us'], 2))}")
    return 0


# The default suite first; then the others in the order --help lists them. One runs per call.
_DRAW_OPTIONS = ("configs", "quick", "json_path", "plot_path", "no_baseline", "no_cpu", "cpu_threads", "reference")
SUITES = (
    Suite("draw", None, "the drawing configs against the per-box loop (without a suite option)", False, _run_draw,
          reads=_DRAW_OPTIONS),
    Suite("decode", "--decode", "heatmap peaks against mmdet/mmdet3d's compositions (eager, compiled; GPU) and "
          "circle NMS against mmdet3d's loop on the CPU, then exit", False, _run_decode,
          reads=("quick", "json_path")),
    Suite("cpu-table", "--cpu-table", "CPU: gaussdraw against the per-box loop for one sample of 1 and 10 boxes "
          "and every config (or the CONFIGs given), 2 threads and 1, min/median/max over rounds, then exit",
          False, _run_cpu_table, reads=("configs", "quick", "json_path")),
    Suite("profile", "--profile", "cProfile of the host side of a draw call, then exit", False, _run_profile,
          reads=("quick",)),
    Suite("loss", "--loss", "GPU: time the Gaussian focal loss against mmdet's composition (eager, compiled), "
          "then exit", True, _run_loss, reads=("json_path",)),
    Suite("loss-variants", "--loss-variants", "GPU: time forced launch shapes of the loss kernels into JSON, "
          "then exit", True, _run_loss_variants, (("default", None), ("metavar", "JSON"))),
    Suite("variants", "--variants", "GPU: time forced launch shapes (boxes per program x window splits) into "
          "JSON, then exit", True, _run_variants, (("default", None), ("metavar", "JSON"))),
    Suite("targets", "--targets", "time whole target assignment against the heads' per-box loops (configs: "
          f"{', '.join(TARGET_CONFIGS)}; default all), then exit", False, _run_targets,
          (("nargs", "*"), ("default", None), ("choices", tuple(TARGET_CONFIGS)), ("metavar", "CONFIG")),
          reads=("quick", "json_path", "no_cpu", "cpu_threads")),
    Suite("keypoints", "--keypoints", "time keypoint heatmap encoding (MSRA, UDP, DARK) and decoding (maximum, "
          "shift, DARK, DARK-UDP) against mmpose's functions "
          f"looped over the batch (configs: {', '.join(KEYPOINT_CONFIGS)}; default all), then exit", False,
          _run_keypoints, (("nargs", "*"), ("default", None), ("choices", tuple(KEYPOINT_CONFIGS)),
                           ("metavar", "CONFIG")),
          reads=("quick", "json_path", "no_cpu", "cpu_threads")),
)


def _threads(text: str) -> int:
    if not text.lstrip("-").isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of threads, 1 or more; got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    from ..cli import OneLineParser

    p = OneLineParser(prog="gaussdraw bench", description="gaussdraw against its baselines, with the "
                                "floors measured in the same run. Without a suite option: the drawing configs.")
    p.add_argument("configs", nargs="*", metavar="CONFIG",
                   help=f"drawing configs to run (default: all): {', '.join(CONFIGS)}")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--quick", action="store_true", help="CI-sized configs")
    p.add_argument("--json", dest="json_path", default=None, metavar="FILE", help="write the results as JSON")
    p.add_argument("--plot", dest="plot_path", default=None, metavar="PNG",
                   help="draw time against drawn pixels and radius into a PNG (kernel time on CUDA, wall time "
                        "on the CPU)")
    p.add_argument("--no-baseline", action="store_true", help="skip the per-box loop")
    p.add_argument("--no-cpu", action="store_true", help="on a GPU machine, skip the CPU rows")
    p.add_argument("--cpu-threads", type=_threads, default=2, help="torch threads for the CPU rows (default 2)")
    suites = p.add_mutually_exclusive_group()
    for suite in SUITES:
        if suite.flag:
            suites.add_argument(suite.flag, help=suite.help, **dict(suite.option))
    p.add_argument("--reference", default=None, metavar="DIR",
                   help="GPU: also time ACCV-Lab's draw_heatmap, built from DIR/load_reference.py, on the same "
                        "inputs (default: $GAUSSDRAW_REFERENCE)")
    return p


def _device(a: argparse.Namespace, suite: Suite) -> torch.device:
    """--device, checked; else cuda where the suite needs a GPU or one is there, else cpu. A GPU suite
    without one (or given --device cpu) exits with one line."""
    from ..cli import check_device

    check_device(a.device)
    device = torch.device(a.device or ("cuda" if suite.needs_gpu or torch.cuda.is_available() else "cpu"))
    if suite.needs_gpu and not torch.cuda.is_available():
        on_cpu = ", ".join(s.flag or "no suite option" for s in SUITES if not s.needs_gpu)
        raise SystemExit(f"gaussdraw: bench {suite.flag} times CUDA kernels, and torch sees no CUDA GPU here: "
                         f"run it on a CUDA machine (on the CPU: {on_cpu})")
    if suite.needs_gpu and device.type != "cuda":
        raise SystemExit(f"gaussdraw: bench {suite.flag} times CUDA kernels: use --device cuda, not {a.device}")
    return device


def _check_options(p: argparse.ArgumentParser, a: argparse.Namespace, suite: Suite) -> None:
    """Before any work: an option the suite does not read is an error (argparse's one line), and a file
    it will write that cannot be written exits with one line."""
    from ..cli import check_output

    for dest in _DRAW_OPTIONS:
        value = getattr(a, dest)
        if dest not in suite.reads and value not in (None, False, []) and value != p.get_default(dest):
            option = "CONFIG" if dest == "configs" else "--" + dest.removesuffix("_path").replace("_", "-")
            p.error(f"{suite.flag} does not read {option}: leave it out, or drop {suite.flag}")
    for dest, option in (("json_path", "--json"), ("plot_path", "--plot"), ("variants", "--variants"),
                         ("loss_variants", "--loss-variants")):
        if getattr(a, dest):
            check_output(getattr(a, dest), option, plot=dest == "plot_path")


def main(argv=None) -> int:
    from ..cli import without_traceback

    p = _parser()
    a = p.parse_args(argv)
    unknown = [c for c in a.configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    suite = next((s for s in SUITES if s.flag and s.selected(a)), SUITES[0])
    device = _device(a, suite)
    _check_options(p, a, suite)
    return without_traceback(suite.run, a, device)

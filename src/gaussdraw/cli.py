"""The command line: ``gaussdraw demo`` and ``gaussdraw bench`` (also ``python -m gaussdraw``)."""

from __future__ import annotations

import argparse
import os
import sys


DESCRIPTION = ("Gaussian heatmap targets for center-based detectors. Commands: demo (an example scene, drawn "
               "and timed) and bench (the benchmarks; gaussdraw bench --help).")


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a wrong option said in one line that points to --help (rather than the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def check_device(device: str | None) -> None:
    """Exit with one line, not a traceback, for a device this machine does not have."""
    if device is None:
        return
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise SystemExit(f"gaussdraw: --device {device!r} is not a device: use cpu or cuda") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"gaussdraw: --device {device} needs a CUDA GPU, and torch sees none here: use --device cpu")
    if kind not in ("cpu", "cuda"):
        raise SystemExit(f"gaussdraw: --device {device}: gaussdraw runs on cpu and cuda")


def check_output(path: str, option: str, plot: bool = False) -> None:
    """Exit with one line, before any work, where ``path`` cannot be written (a missing folder, a folder
    itself, no write permission) or, for a picture (``plot``), where matplotlib is missing or cannot
    write its extension."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        example = os.path.join(path, "out.png" if plot else "out.json")
        raise SystemExit(f"gaussdraw: {option} {path} is a folder: give a file name, e.g. {example}")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise SystemExit(f"gaussdraw: {option} {path}: {folder} is a file, not a folder: write elsewhere")
    if not os.path.isdir(folder):
        raise SystemExit(f"gaussdraw: {option} {path}: the folder {folder} does not exist: "
                         "create it or write elsewhere")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise SystemExit(f"gaussdraw: {option} {path} cannot be written here (no permission): write elsewhere")
    if plot:
        check_plot_format(path, option)


def check_plot_format(path: str, option: str) -> None:
    """Exit with one line where matplotlib is missing or does not write ``path``'s extension."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit(f"gaussdraw: {option} draws with matplotlib, which is not installed: "
                         "pip install 'gaussdraw[demo]' (or pip install matplotlib)")
    from matplotlib.backend_bases import FigureCanvasBase

    extension = os.path.splitext(path)[1].lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if extension not in formats:
        raise SystemExit(f"gaussdraw: {option} {path}: matplotlib writes {', '.join(sorted(formats))}, not "
                         f"{extension or 'a name without an extension'}: end the name in .png")


def without_traceback(fn, *args):
    """``fn(*args)``, where a file that cannot be opened (a disk that fills, a folder removed during a
    run) ends in one line rather than a traceback."""
    try:
        return fn(*args)
    except OSError as error:
        if error.filename is None:
            raise
        raise SystemExit(f"gaussdraw: {error.filename}: {error.strerror}: check the path and run again") from None


def main(argv: list[str] | None = None) -> int:
    from . import __version__

    parser = OneLineParser(prog="gaussdraw", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"gaussdraw {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,bench}")

    demo = commands.add_parser("demo", help="draw an example scene's heatmaps into a PNG and time them")
    demo.add_argument("--out", default="demo.png", help="PNG to write (default: demo.png)")
    demo.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")

    commands.add_parser("bench", help="benchmark against the per-box loop (see gaussdraw bench --help)", add_help=False)

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "bench":
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "demo":
        check_device(args.device)
        check_output(args.out, "--out", plot=True)
        from .demo import run

        print(without_traceback(run, args.out, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())

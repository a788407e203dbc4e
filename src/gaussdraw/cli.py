"""The command line: ``gaussdraw demo`` and ``gaussdraw bench`` (also ``python -m gaussdraw``)."""

from __future__ import annotations

import argparse
import sys


DESCRIPTION = ("Gaussian heatmap targets for center-based detectors. Commands: demo (an example scene, drawn "
               "and timed) and bench (the benchmarks; gaussdraw bench --help).")


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


def main(argv: list[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="gaussdraw", description=DESCRIPTION)
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
        from .demo import run

        print(run(args.out, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())

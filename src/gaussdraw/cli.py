"""``gaussdraw demo | bench`` (also ``python -m gaussdraw``)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gaussdraw", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

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
        from .demo import run

        print(run(args.out, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())

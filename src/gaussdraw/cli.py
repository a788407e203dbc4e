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

    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        print(run(args.out, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())

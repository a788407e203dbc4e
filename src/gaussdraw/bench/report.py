"""Reports: the environment, markdown tables and plots, drawn from the result rows."""

from __future__ import annotations

import math
import platform
import sys
from datetime import date

import torch


MEASURED = {"kernel": "kernel time, CUDA-graph replay (µs)", "wall": "wall time per call (µs)"}


def plain_number(value: float, _position=None) -> str:
    """A tick label as a plain number (1, 20, 1,350, 0.5), not mathtext's 1.35×10²."""
    return f"{value:,.0f}" if value >= 1 else f"{value:.2g}"


def _plain_log_ticks(ax) -> None:
    """Plain numbers on both log axes. Minor ticks are labelled where few major ticks fall: all of them on
    an axis under one decade, those at 2 and 5 times a power of ten on an axis under two."""
    from matplotlib.ticker import FuncFormatter

    def minor(axis):
        def label(value, _position=None):
            low, high = axis.get_view_interval()
            span = high / max(low, 1e-30)
            lead = round(value / 10 ** math.floor(math.log10(value)), 6) if value > 0 else 0
            return plain_number(value) if span < 10 or (span < 100 and lead in (2, 5)) else ""
        return FuncFormatter(label)

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(plain_number))
        axis.set_minor_formatter(minor(axis))


def plot(rows: list[dict], path: str, device_name: str) -> None:
    """Time against drawn pixels and against radius (the sweep's rows), into ``path``. The y-axis says what
    was measured: kernel time on CUDA, wall time on the CPU (rows' ``measured``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ylabel = MEASURED[rows[0].get("measured", "kernel")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    t = [r["time_us"] for r in rows]
    a.loglog([r["drawn_pixels"] for r in rows], t, "o-")
    a.set_xlabel("drawn pixels (after clipping)")
    a.set_title("cost against drawn pixels")
    b.loglog([r["radius"] for r in rows], t, "o-")
    b.set_xlabel("radius (px)")
    shape = "×".join(str(n) for n in rows[0].get("shape", (8, 512, 512)))
    b.set_title(f"{rows[0]['boxes']} boxes on {shape}")
    for ax in (a, b):
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        _plain_log_ticks(ax)
    fig.suptitle(f"gaussdraw draw_heatmap_batched, {device_name}")
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------


def environment(device) -> dict:
    env = dict(date=date.today().isoformat(), torch=torch.__version__, python=platform.python_version(),
               device=device.type)
    try:
        import triton

        from ..ops.launch import direct_launch_active

        env["triton"] = triton.__version__
        env["launch"] = "direct" if device.type == "cuda" and direct_launch_active() else "public"
    except ImportError:  # pragma: no cover
        env["triton"] = None
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    env["command"] = " ".join(["gaussdraw", *sys.argv[1:]]) if sys.argv else "gaussdraw bench"
    return env


def _fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if value < 1e5 else f"{value:,.0f}"
    return str(value)


def markdown_table(rows: list[dict], cols: list[tuple]) -> str:
    """Rows as a markdown table; ``cols``: (header, key, digits), or digits "g" for 2 significant
    digits. Columns that no row has are left out."""
    cols = [c for c in cols if any(c[1] in r for r in rows)]
    lines = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r[key]:.2g}" if digits == "g" and key in r else _fmt(r.get(key), digits) for _, key, digits in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    return markdown_table(rows, [
        ("config", "config", 0), ("boxes", "boxes", 0), ("loop (ms)", "loop_ms", 2), ("wall (µs)", "wall_us", 1),
        ("wall, defaults (µs)", "wall_default_us", 1), ("wall, Ragged (µs)", "wall_ragged_us", 1),
        ("wall, lists (µs)", "wall_lists_us", 1), ("wall, RaggedBatch (µs)", "wall_raggedbatch_us", 1),
        ("reference wall (µs)", "reference_wall_us", 1),
        ("defaults / reference (wall)", "default_over_reference_wall", 2), ("kernel (µs)", "kernel_us", 2),
        ("reference kernel (µs)", "reference_kernel_us", 2), ("render (µs)", "render_wall_us", 1),
        ("render kernel (µs)", "render_kernel_us", 2), ("zeros kernel (µs)", "zeros_kernel_us", 2),
        ("× loop (wall)", "speedup_wall", 0), ("× loop (kernel)", "speedup_kernel", 0),
        ("wall, validate (µs)", "wall_validate_us", 1)])


def render_markdown(report: dict) -> str:
    """The tables of a saved report (``--json``), as markdown."""
    env = report["environment"]
    out = [f"{env.get('gpu', 'CPU')}, torch {env['torch']}, Triton {env['triton']}, {env['date']}: `{env['command']}`"]
    for dev in sorted({r["device"] for r in report["results"]}, key=lambda d: d != "cuda"):
        out += ["", f"**{dev}**", "", table([r for r in report["results"] if r["device"] == dev])]
    return "\n".join(out)

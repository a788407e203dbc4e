"""Reports: the environment, markdown tables and plots, drawn from the result rows."""

from __future__ import annotations

import platform
import sys
from datetime import date

import torch


def plot(rows: list[dict], path: str, device_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    px = [r["drawn_pixels"] for r in rows]
    t = [r["time_us"] for r in rows]
    a.loglog(px, t, "o-")
    a.set_xlabel("drawn pixels (after clipping)")
    a.set_ylabel("kernel time (µs)")
    a.set_title("cost against drawn pixels")
    b.loglog([r["radius"] for r in rows], t, "o-")
    b.set_xlabel("radius (px)")
    b.set_ylabel("kernel time (µs)")
    b.set_title(f"{rows[0]['boxes']} boxes on 8×512×512")
    for ax in (a, b):
        ax.grid(True, which="both", alpha=0.3)
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

"""Triton is imported, and the kernels made, when a Triton path first runs: before, gaussdraw's
modules hold stand-ins; after, the real triton modules and triton.jit functions, everywhere a
module imported them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from gaussdraw.ops._triton import HAVE_TRITON


@pytest.mark.skipif(not HAVE_TRITON, reason="needs triton installed")
def test_stand_ins_until_a_triton_path_runs_then_the_real_objects():
    code = (
        "import sys, torch, gaussdraw\n"
        "from gaussdraw.ops import _box_math, centernet_targets, draw_gaussians, peaks\n"
        "before = (type(draw_gaussians._draw_gaussians_kernel).__name__, 'triton' in sys.modules,\n"
        "          type(draw_gaussians.tl).__name__)\n"
        "stale = draw_gaussians._draw_gaussians_kernel  # a reference kept before loading\n"
        "device = 'cuda' if torch.cuda.is_available() else 'cpu'  # CPU tensors: in the interpreter\n"
        "gaussdraw.draw_heatmap(torch.zeros(2, 8, 8, device=device), torch.tensor([[3, 3]], device=device),\n"
        "                       torch.tensor([2], device=device), torch.tensor([1], device=device), backend='triton')\n"
        "import triton, triton.language, triton.runtime.interpreter\n"
        "jitted = (triton.runtime.JITFunction, triton.runtime.interpreter.InterpretedFunction)\n"
        "after = (isinstance(draw_gaussians._draw_gaussians_kernel, jitted),\n"
        "         draw_gaussians.tl is triton.language, peaks.triton is triton,\n"
        "         centernet_targets.mmdet_radius is _box_math.mmdet_radius,\n"
        "         isinstance(_box_math.mmdet_radius, jitted),\n"
        "         stale.fn is draw_gaussians._draw_gaussians_kernel.fn)\n"
        "print(before, after)\n"
    )
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "('_Kernel', False, '_TritonModule') (True, True, True, True, True, True)", out.stdout

"""Triton is imported when a Triton path first runs, by the plain import of the op's kernel module
(gaussdraw.ops.kernels.*); ``import gaussdraw`` imports neither, and nothing rewrites a module's globals."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from gaussdraw.ops._triton import HAVE_TRITON

CODE = """
import sys, types, torch, gaussdraw

def loaded(prefix):
    return sorted(name for name, module in sys.modules.items() if module is not None and name.startswith(prefix))

def gaussdraw_modules():
    return {name: module for name, module in list(sys.modules.items())
            if module is not None and (name == "gaussdraw" or name.startswith("gaussdraw."))}

print("after import:", loaded("triton"), loaded("gaussdraw.ops.kernels"), loaded("gaussdraw.ops.launch"))
before = {name: dict(vars(module)) for name, module in gaussdraw_modules().items()}

device = "cuda" if torch.cuda.is_available() else "cpu"  # CPU tensors: in the interpreter
gaussdraw.draw_heatmap(torch.zeros(2, 8, 8, device=device), torch.tensor([[3, 3]], device=device),
                       torch.tensor([2], device=device), torch.tensor([1], device=device), backend="triton")
print("after a Triton draw:", "triton" in sys.modules, loaded("gaussdraw.ops.kernels"), loaded("gaussdraw.ops.launch"))

import triton, triton.language
from gaussdraw.ops.kernels import draw_gaussians
kernel_types = ("JITFunction", "InterpretedFunction")
real = (draw_gaussians.triton is triton, draw_gaussians.tl is triton.language,
        type(draw_gaussians.draw_gaussians_kernel).__name__ in kernel_types,
        type(sys.modules["triton"]) is types.ModuleType and sys.modules["triton"].__file__ == triton.__file__)
print("real objects:", real)

# no global of a gaussdraw module was rebound, and none stands in for Triton or a kernel
rebound = [(name, key) for name, values in before.items() for key, value in values.items()
           if vars(sys.modules[name]).get(key) is not value]
stand_ins = []
for name, module in gaussdraw_modules().items():
    for key, value in vars(module).items():
        if isinstance(value, types.ModuleType):
            if sys.modules.get(value.__name__) is not value:
                stand_ins.append((name, key))
        elif type(value).__module__.startswith("gaussdraw") and hasattr(value, "fn"):
            stand_ins.append((name, key))
        elif key in ("triton", "tl", "jit") and not (value is triton or value is triton.language or value is triton.jit):
            stand_ins.append((name, key))
print("rebound:", rebound, "stand-ins:", stand_ins)
"""


@pytest.mark.skipif(not HAVE_TRITON, reason="needs triton installed")
def test_triton_imported_by_the_kernel_modules_when_a_triton_path_runs():
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == [
        "after import: [] [] []",
        "after a Triton draw: True ['gaussdraw.ops.kernels', 'gaussdraw.ops.kernels.draw_gaussians'] "
        "['gaussdraw.ops.launch']",
        "real objects: (True, True, True, True)",
        "rebound: [] stand-ins: []",
    ], out.stdout

"""gaussdraw.ops.launch on the CPU: the public launch gets the kernel's arguments by keyword, and the
direct path (CUDA only) is taken only where it applies; its logic is run here with a stand-in kernel
and compiled kernel on tensors that pass for CUDA ones. tests/test_launch_paths_gpu.py compares the
two paths' outputs on a GPU."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
import torch

from gaussdraw.ops._triton import HAVE_TRITON, interpreting

from .helpers import cpu_as_cuda

pytestmark = pytest.mark.skipif(not HAVE_TRITON, reason="needs triton installed")

if HAVE_TRITON:
    import triton
    import triton.language as tl

    from gaussdraw.ops import launch as launching

    @triton.jit
    def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
        o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = o < n
        tl.store(out_ptr + o, tl.load(x_ptr + o, mask=m) + tl.load(y_ptr + o, mask=m), mask=m)


class Recording:
    """A kernel whose ``kernel[grid](...)`` calls are recorded before they run."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, []

    def __getattr__(self, name):
        return getattr(self.kernel, name)

    def __getitem__(self, grid):
        def run(*args, **kwargs):
            self.calls.append((grid, args, kwargs))
            return self.kernel[grid](*args, **kwargs)
        return run


def test_tested_versions():
    assert launching.TESTED_TRITON == ("3.6",)
    assert all(launching.version_tested(v) for v in ("3.6.0", "3.6.1", "3.6.0+git1a2b3c"))
    assert not any(launching.version_tested(v) for v in ("3.5.1", "3.7.0", "3.9.0", "3.60.0", "4.6.0"))
    assert launching.direct_launch_status()["tested"] == launching.version_tested(triton.__version__)


@pytest.mark.skipif(not interpreting(), reason="runs a kernel in Triton's interpreter (TRITON_INTERPRET=1)")
def test_public_launch_passes_arguments_by_keyword():
    kernel = Recording(add_kernel)
    x, y = torch.arange(37.0), torch.full((37,), 0.5)
    out = torch.full((37,), float("nan"))
    previous = launching.set_direct_launch(True)
    try:
        result = launching.launch(kernel, (3,), num_warps=2, compile_options={"enable_fp_fusion": False},
                                  y_ptr=y, out_ptr=out, n=37, BLOCK=16, x_ptr=x)
    finally:
        launching.set_direct_launch(previous)
    assert result is None and torch.equal(out, x + y)
    assert kernel.calls == [((3,), (), dict(y_ptr=y, out_ptr=out, n=37, BLOCK=16, x_ptr=x, num_warps=2,
                                            enable_fp_fusion=False))]
    assert launching.last_launch_path(kernel) == "public"


def test_parameter_order_from_the_kernel_itself():
    """The direct path's positional order is the kernel's own, read from Triton (params) or the signature."""
    from gaussdraw.ops.kernels import draw_gaussians, focal_loss

    for kernel in (add_kernel, draw_gaussians.draw_gaussians_kernel, focal_loss.focal_loss_forward_kernel):
        names, constexprs = launching.parameters(kernel)
        assert list(names) == list(kernel.arg_names)
        if hasattr(kernel, "params"):
            assert list(constexprs) == [p.name for p in kernel.params if p.is_constexpr]
        else:  # the interpreter: the annotations, as Triton's compiler reads them
            compiled = triton.runtime.jit.JITFunction(kernel.fn)
            assert list(constexprs) == [p.name for p in compiled.params if p.is_constexpr]
    assert launching.parameters(add_kernel) == (("x_ptr", "y_ptr", "out_ptr", "n", "BLOCK"), ("BLOCK",))


# ----------------------------------------------------------------------------
# the direct path's logic, with stand-ins for the kernel, its compiled form and CUDA
# ----------------------------------------------------------------------------


def _fake_kernel_fn(x_ptr, y_ptr, n, scale, BLOCK: "tl.constexpr", MODE: "tl.constexpr"):
    pass


class FakeCompiled:
    function, packed_metadata = "function", "metadata"

    def __init__(self, fail=None):
        self.runs, self.fail = [], fail

    def run(self, *args):
        if self.fail is not None:
            raise self.fail
        self.runs.append(args)


class FakeKernel:
    """Triton's launch as far as the launcher sees it: ``kernel[grid](**arguments)`` compiles (once per
    call here) and returns the compiled kernel."""

    fn = staticmethod(_fake_kernel_fn)

    def __init__(self, fail=None):
        self.public, self.compiled, self.fail = [], [], fail

    def __getitem__(self, grid):
        def run(**kwargs):
            self.public.append((grid, kwargs))
            self.compiled.append(FakeCompiled(self.fail))
            return self.compiled[-1]
        return run


@pytest.fixture
def on_cuda(monkeypatch):
    """CPU tensors pass for CUDA ones on device None; the direct path applies (a tested Triton, enabled,
    no hooks) unless a test changes that."""
    cpu_as_cuda(monkeypatch)


def _arguments(x, y, n=17, mode=0):
    return dict(MODE=mode, scale=2.0, n=n, y_ptr=y, BLOCK=64, x_ptr=x)  # not in the kernel's order


def test_direct_after_the_first_launch_in_the_kernels_order(on_cuda):
    kernel, x, y = FakeKernel(), torch.zeros(3), torch.ones(3)
    assert launching.launch(kernel, (5, 2), num_warps=2, **_arguments(x, y)) is None
    assert launching.last_launch_path(kernel) == "public" and len(kernel.public) == 1
    assert kernel.public[0] == ((5, 2), dict(_arguments(x, y), num_warps=2))
    assert launching.launch(kernel, (5, 2), num_warps=2, **_arguments(x, y)) is None
    assert launching.last_launch_path(kernel) == "direct" and len(kernel.public) == 1
    (run,) = kernel.compiled[0].runs
    assert run == (5, 2, 1, "stream", "function", "metadata", None, None, None, x, y, 17, 2.0, 64, 0)
    # another constexpr, or another class of integer (1 is specialized on): compiled anew, through Triton
    for arguments in (_arguments(x, y, mode=1), _arguments(x, y, n=1), _arguments(x, y, n=32)):
        launching.launch(kernel, (5,), num_warps=2, **arguments)
        assert launching.last_launch_path(kernel) == "public"
    assert len(kernel.public) == 4
    launching.launch(kernel, (5,), num_warps=2, **_arguments(x, y, n=33))  # the class of 17
    assert launching.last_launch_path(kernel) == "direct" and len(kernel.public) == 4


def test_relaunch_repeats_a_direct_launch_with_new_leading_tensors(on_cuda):
    kernel, x, y = FakeKernel(), torch.zeros(3), torch.ones(3)
    assert launching.launch(kernel, (4,), num_warps=1, relaunch=("x_ptr", "y_ptr"), **_arguments(x, y)) is None
    relaunch = launching.launch(kernel, (4,), num_warps=1, relaunch=("x_ptr", "y_ptr"), **_arguments(x, y))
    assert isinstance(relaunch, launching.Relaunch)
    x2, y2 = torch.zeros(3), torch.ones(3)
    relaunch(x2, y2)
    assert kernel.compiled[0].runs[-1] == (4, 1, 1, "stream", "function", "metadata", None, None, None,
                                           x2, y2, 17, 2.0, 64, 0)
    # switched off: the relaunch goes through Triton's launch
    previous = launching.set_direct_launch(False)
    try:
        relaunch(x, y2)
    finally:
        launching.set_direct_launch(previous)
    assert len(kernel.compiled[0].runs) == 2 and kernel.public[-1] == ((4, 1, 1), dict(_arguments(x, y2),
                                                                                      num_warps=1))
    with pytest.raises(ValueError, match="leading parameters"):
        launching.launch(kernel, (4,), num_warps=1, relaunch=("y_ptr",), **_arguments(x, y))


@pytest.mark.parametrize("why", ["untested-triton", "switched-off", "launch-hooks", "cpu-tensors"])
def test_public_launch_where_the_direct_path_does_not_apply(on_cuda, monkeypatch, why):
    if why == "untested-triton":
        monkeypatch.setattr(launching._DIRECT, "tested", False)
    elif why == "switched-off":
        assert launching.set_direct_launch(False) is True
    elif why == "launch-hooks":
        monkeypatch.setattr(launching, "_KNOBS", type("Knobs", (), {"launch_enter_hook": print})())
    else:
        monkeypatch.setattr(launching, "_plain_cuda", lambda tensor: False)
    try:
        kernel, x, y = FakeKernel(), torch.zeros(3), torch.ones(3)
        for _ in range(3):
            assert launching.launch(kernel, (2,), num_warps=4, relaunch=("x_ptr",), **_arguments(x, y)) is None
            assert launching.last_launch_path(kernel) == "public"
        assert len(kernel.public) == 3 and not any(c.runs for c in kernel.compiled)
        assert launching.direct_launch_active() is (why == "cpu-tensors")
    finally:
        launching.set_direct_launch(True)


def test_a_failing_first_direct_launch_falls_back_for_good(on_cuda):
    kernel, x, y = FakeKernel(fail=RuntimeError("a launcher of another signature")), torch.zeros(3), torch.ones(3)
    for calls in range(1, 4):
        launching.launch(kernel, (2,), num_warps=4, **_arguments(x, y))
        assert launching.last_launch_path(kernel) == "public" and len(kernel.public) == calls
    assert launching._LAUNCHERS[kernel].direct is False
    # after a direct launch worked, a failure is an error of that launch, raised
    kernel = FakeKernel()
    launching.launch(kernel, (2,), num_warps=4, **_arguments(x, y))
    launching.launch(kernel, (2,), num_warps=4, **_arguments(x, y))
    kernel.compiled[0].fail = ValueError("a bad launch")
    with pytest.raises(ValueError, match="a bad launch"):
        launching.launch(kernel, (2,), num_warps=4, **_arguments(x, y))


def test_arguments_by_name_only(on_cuda):
    kernel, x, y = FakeKernel(), torch.zeros(3), torch.ones(3)
    with pytest.raises(TypeError, match=r"missing \['n'\], unknown \['count'\]"):
        arguments = _arguments(x, y)
        arguments["count"] = arguments.pop("n")
        launching.launch(kernel, (1,), num_warps=1, **arguments)

    with pytest.raises(TypeError, match="num_warps"):
        launching.launch(kernel, (1,), **_arguments(x, y))

    def clashing(x_ptr, grid):
        pass

    with pytest.raises(ValueError, match="grid"):
        launching.launch(type("Clash", (FakeKernel,), {"fn": staticmethod(clashing)})(), (1,), num_warps=1,
                         x_ptr=x)


def test_environment_switch_is_read_once():
    code = ("import os, gaussdraw.ops.launch as launching\n"
            "before = launching.direct_launch_status()['enabled']\n"
            "os.environ['GAUSSDRAW_DIRECT_LAUNCH'] = '1'\n"
            "print(before, launching.direct_launch_status()['enabled'], launching.set_direct_launch(True),\n"
            "      launching.direct_launch_status()['enabled'])\n")
    for setting, expected in (("0", "False False False True"), ("1", "True True True True"),
                              (None, "True True True True")):
        env = {k: v for k, v in os.environ.items() if k != "GAUSSDRAW_DIRECT_LAUNCH"}
        if setting is not None:
            env["GAUSSDRAW_DIRECT_LAUNCH"] = setting
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == expected


def test_launch_is_the_only_module_reaching_under_tritons_launch():
    """Only ops/launch.py names the compiled kernel's launcher (``.run(`` with ``packed_metadata``)."""
    root = os.path.dirname(importlib.import_module("gaussdraw").__file__)
    users = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    if "packed_metadata" in f.read():
                        users.append(os.path.relpath(path, root))
    assert users == [os.path.join("ops", "launch.py")]

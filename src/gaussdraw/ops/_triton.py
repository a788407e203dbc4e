"""Optional Triton, imported when a Triton path first runs; how a kernel runs on the device of its tensors.

Triton is optional: without it the torch kernels serve every device. Kernels are
written with ``@jit``; where Triton is installed, Triton itself is imported and each
kernel becomes a ``triton.jit`` function the first time a Triton path runs
(:func:`load_triton`), so that ``import gaussdraw`` and the CPU path never pay for
Triton's import (~0.15–0.25 s) and its per-kernel set-up (another ~0.1 s). Kernels
compile for CUDA tensors; they run on CPU tensors only in Triton's interpreter (slow,
for tests), which ``TRITON_INTERPRET=1`` selects when set before Triton is imported.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import types

import torch

HAVE_TRITON = importlib.util.find_spec("triton") is not None


class _TritonModule(types.ModuleType):
    """Stands for ``triton`` or ``triton.language`` in gaussdraw's modules until Triton is loaded:
    an attribute read loads it (:func:`load_triton` then puts the real module in its place)."""

    def __getattr__(self, attribute):
        return getattr(load_triton()[self.__name__], attribute)


class _Kernel:
    """A ``@jit`` function before Triton is loaded; :func:`load_triton` makes its ``triton.jit``
    function and puts it in its place in every gaussdraw module. A reference kept elsewhere
    (a :class:`Launcher`) forwards to it."""

    __slots__ = ("fn", "options", "jitted")

    def __init__(self, fn, options):
        self.fn, self.options, self.jitted = fn, options, None

    def __getitem__(self, grid):
        load_triton()
        return self.jitted[grid]

    def __getattr__(self, attribute):
        load_triton()
        return getattr(self.jitted, attribute)


triton = _TritonModule("triton") if HAVE_TRITON else None
tl = _TritonModule("triton.language") if HAVE_TRITON else None
_KERNELS: list[_Kernel] = []
_LOADED: dict | None = None
_KNOBS = None  # triton.knobs.runtime, where this Triton has it
_LOCK = threading.Lock()


def jit(fn=None, **options):
    """``triton.jit`` (made when Triton is loaded) where Triton is installed, else the plain
    function (never launched)."""
    if fn is None:
        return lambda f: jit(f, **options)
    if not HAVE_TRITON:
        return fn
    if _LOADED is not None:
        return _LOADED["triton"].jit(fn, **options)
    kernel = _Kernel(fn, options)
    _KERNELS.append(kernel)
    return kernel


def load_triton() -> dict:
    """Import Triton and make every ``@jit`` kernel (once; thread-safe): in each gaussdraw
    module the real ``triton``, ``triton.language`` and ``triton.jit`` functions replace their
    stand-ins, so that Triton finds them in the kernels' globals. Returns the modules by name."""
    global _LOADED, _KNOBS
    if _LOADED is None:
        with _LOCK:
            if _LOADED is None:
                import triton as real_triton
                import triton.language as real_language

                for kernel in _KERNELS:
                    kernel.jitted = real_triton.jit(kernel.fn, **kernel.options)
                real = {triton: real_triton, tl: real_language}
                for name, module in list(sys.modules.items()):
                    if module is not None and (name == "gaussdraw" or name.startswith("gaussdraw.")):
                        for key, value in list(vars(module).items()):
                            if isinstance(value, _Kernel):
                                setattr(module, key, value.jitted)
                            elif isinstance(value, _TritonModule):
                                setattr(module, key, real[value])
                _KNOBS = getattr(getattr(real_triton, "knobs", None), "runtime", None)
                _LOADED = {"triton": real_triton, "triton.language": real_language}
    return _LOADED


def loaded(kernel):
    """The ``triton.jit`` function of a ``@jit`` kernel (loading Triton if needed)."""
    if isinstance(kernel, _Kernel):
        load_triton()
        return kernel.jitted
    return kernel


def require_triton() -> None:
    if not HAVE_TRITON:
        raise RuntimeError(
            "backend='triton' needs the 'triton' package (pip install triton); "
            "use backend='torch' or backend='auto' instead"
        )


def interpreting() -> bool:
    """Whether ``@triton.jit`` kernels run in Triton's interpreter (TRITON_INTERPRET=1 when Triton
    is imported: the environment's setting until then)."""
    if not HAVE_TRITON:
        return False
    if _LOADED is None and "triton" not in sys.modules:
        return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on")  # Triton's reading
    return type(loaded(_probe)).__name__ == "InterpretedFunction"


def check_device(device: torch.device) -> None:
    """Raise unless Triton kernels can run on tensors of ``device``."""
    require_triton()
    if device.type == "cpu" and not interpreting():
        raise RuntimeError(
            "backend='triton' on CPU tensors runs in Triton's interpreter, which must be chosen "
            "before triton is imported: set TRITON_INTERPRET=1 in the environment; "
            "or use backend='torch' (the CPU path)"
        )
    if device.type not in ("cpu", "cuda"):
        raise RuntimeError(f"backend='triton' supports CUDA and CPU tensors; got {device.type}")


@jit
def _probe():
    pass


def launch_hooks_active() -> bool:
    """Whether Triton launch hooks (profilers) are set: then Triton's own launch path runs them."""
    if _LOADED is None:
        load_triton()
    for hook in (getattr(_KNOBS, "launch_enter_hook", None), getattr(_KNOBS, "launch_exit_hook", None)):
        if hook is not None and getattr(hook, "calls", True):  # an empty HookChain holds no calls
            return True
    return False


def _specialization(args) -> tuple:
    """What Triton specializes a kernel on: each tensor's dtype and 16-byte alignment;
    each integer's size class, divisibility by 16 and being 1."""
    return tuple(
        (a.dtype, a.data_ptr() % 16 == 0) if isinstance(a, torch.Tensor)
        else (a == 1, a % 16 == 0, a < 0, a < 2**31, a < 2**32, a < 2**63) if type(a) is int
        else type(a)
        for a in args
    )


class Launcher:
    """Launches a ``@triton.jit`` kernel whose parameters are its runtime arguments (the
    first a tensor) then its constexprs, given in the kernel's order. On CUDA tensors,
    each specialization's first launch goes through Triton and later ones straight to
    its compiled launcher, skipping Triton's per-call argument binding (most of a
    launch's host time). Elsewhere (the interpreter, launch hooks, another Triton) it is
    Triton's own launch.

    ``options``: compile options such as ``enable_fp_fusion``.

    ``specialization``: a key for what the compiled kernel depends on besides the
    device, warps, constexprs and options, for kernels that opt out of Triton's value and
    alignment specialization; by default the dtypes, alignments and integer classes
    Triton specializes on.

    Example:
        >>> launch = Launcher(my_kernel)  # doctest: +SKIP
        >>> launch((programs,), (x, y, n), dict(BLOCK=1024), num_warps=4)  # doctest: +SKIP
    """

    def __init__(self, kernel):
        self.kernel = kernel
        self.compiled = {}
        self.direct = True

    def __call__(self, grid, args, constexprs: dict, num_warps: int, specialization=None, options: dict | None = None,
                 bind: int = 0):
        """Launch; with ``bind`` = k > 0, also return a :class:`Relaunch` of this launch for new
        values of the first k arguments (tensors of the same dtypes and layout), or None."""
        device = args[0].device
        options = options or {}
        if device.type != "cuda":
            self.kernel[grid](*args, **constexprs, num_warps=num_warps, **options)
            return None
        key = (device.index, num_warps, tuple(constexprs.values()), tuple(options.items()),
               _specialization(args) if specialization is None else specialization)
        compiled = self.compiled.get(key)
        if (compiled is not None and self.direct and not launch_hooks_active()
                and torch._C._cuda_getDevice() == device.index):
            try:
                compiled.run(grid[0], grid[1] if len(grid) > 1 else 1, 1,
                             torch._C._cuda_getCurrentRawStream(device.index), compiled.function,
                             compiled.packed_metadata, None, None, None, *args, *constexprs.values())
            except TypeError:  # a Triton whose launcher takes other arguments: use its own path
                self.direct = False
            else:
                return Relaunch(self, compiled, grid, args, constexprs, num_warps, specialization, options,
                                bind) if bind else None
        with torch.cuda.device(device):
            compiled = self.kernel[grid](*args, **constexprs, num_warps=num_warps, **options)
        self.compiled[key] = compiled
        return None  # the next call binds, once the direct path has run


class Relaunch:
    """One launch of a :class:`Launcher`, kept to be repeated with new leading tensors and every
    other argument as it was: the direct launch and nothing else. Where the direct path does
    not apply at call time (launch hooks, another current device), the launcher's own path runs."""

    __slots__ = ("launcher", "compiled", "grid", "args", "fixed", "constexprs", "num_warps", "specialization",
                 "options", "device_index")

    def __init__(self, launcher, compiled, grid, args, constexprs, num_warps, specialization, options, varying):
        self.launcher, self.compiled, self.constexprs = launcher, compiled, constexprs
        self.grid = (grid[0], grid[1] if len(grid) > 1 else 1)
        self.args = args[varying:]
        self.fixed = (*args[varying:], *constexprs.values())
        self.num_warps, self.specialization, self.options = num_warps, specialization, options
        self.device_index = args[0].device.index

    def __call__(self, *tensors):
        index = self.device_index
        if launch_hooks_active() or not self.launcher.direct or torch._C._cuda_getDevice() != index:
            self.launcher(self.grid, (*tensors, *self.args), self.constexprs, self.num_warps, self.specialization,
                          self.options)
            return
        compiled = self.compiled
        compiled.run(self.grid[0], self.grid[1], 1, torch._C._cuda_getCurrentRawStream(index), compiled.function,
                     compiled.packed_metadata, None, None, None, *tensors, *self.fixed)

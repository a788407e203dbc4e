"""How gaussdraw launches its Triton kernels: Triton's public launch, and a direct one where tested.

:func:`launch` takes a kernel's arguments by keyword, as its parameters are named, and runs
Triton's public launch, ``kernel[grid](**arguments, num_warps=num_warps, **compile_options)``.

The direct path skips Triton's per-call argument binding (most of a small launch's host time;
it keeps small draw calls ahead of a CUDA reference on wall time): each specialization's first
launch goes through Triton, which compiles it, and later ones straight to the compiled
kernel's launcher with the arguments in the kernel's parameter order. That launcher is
Triton's private interface, so this module is the only one that calls it, and only

- on CUDA tensors (the kernel's first argument a plain ``torch.Tensor``),
- with a Triton whose version is in :data:`TESTED_TRITON` (tested on a GPU; checked once),
- without launch hooks (profilers), which only Triton's own launch calls,
- while enabled: ``GAUSSDRAW_DIRECT_LAUNCH=0`` in the environment (read once) or
  :func:`set_direct_launch` turns it off.

Any exception from a kernel's first direct launch turns the direct path off for that kernel
for good, and the launch goes through Triton. Elsewhere (the interpreter, another Triton)
every launch is the public one.
"""

from __future__ import annotations

import contextlib
import inspect
import operator
import os

import torch
import triton

# Triton versions (major.minor) whose compiled-kernel launcher the direct path was tested with on a GPU
TESTED_TRITON = ("3.6",)
# launch()'s own keywords, which no kernel parameter may take
_RESERVED = frozenset({"kernel", "grid", "num_warps", "compile_options", "specialization", "relaunch"})


def version_tested(version: str) -> bool:
    """Whether a Triton ``version`` string is one of :data:`TESTED_TRITON` (any patch release)."""
    return ".".join(version.split(".")[:2]) in TESTED_TRITON


class _DirectPath:
    """Whether the direct path may run: the switch, and the Triton version (checked once)."""

    __slots__ = ("enabled", "tested")

    def __init__(self):
        setting = os.environ.get("GAUSSDRAW_DIRECT_LAUNCH", "1").strip().lower()
        self.enabled = setting not in ("0", "false", "off", "no")
        self.tested = version_tested(triton.__version__)


_DIRECT = _DirectPath()
_KNOBS = getattr(getattr(triton, "knobs", None), "runtime", None)  # where this Triton keeps its launch hooks


def set_direct_launch(enabled: bool) -> bool:
    """Allow (True) or forbid (False) the direct path; returns the previous setting. Allowed, it still
    runs only where it applies (CUDA, a tested Triton, no launch hooks)."""
    previous, _DIRECT.enabled = _DIRECT.enabled, bool(enabled)
    return previous


def launch_hooks_active() -> bool:
    """Whether Triton launch hooks (profilers) are set: then Triton's own launch runs them."""
    for hook in (getattr(_KNOBS, "launch_enter_hook", None), getattr(_KNOBS, "launch_exit_hook", None)):
        if hook is not None and getattr(hook, "calls", True):  # an empty HookChain holds no calls
            return True
    return False


def direct_launch_active() -> bool:
    """Whether a CUDA launch may take the direct path now (each kernel also needs its first direct
    launch to succeed)."""
    return _DIRECT.enabled and _DIRECT.tested and not launch_hooks_active()


def direct_launch_status() -> dict:
    """The direct path's conditions, for reports: Triton's version, whether it was tested, the switch,
    launch hooks, and whether the direct path may run now."""
    return dict(triton=triton.__version__, tested=_DIRECT.tested, enabled=_DIRECT.enabled,
                hooks=launch_hooks_active(), active=direct_launch_active())


def specialization_key(values) -> tuple:
    """What Triton specializes a kernel on, for ``values`` of its non-constexpr parameters: each
    tensor's dtype and 16-byte alignment; each integer's size class, divisibility by 16 and being 1."""
    return tuple(
        (a.dtype, a.data_ptr() % 16 == 0) if isinstance(a, torch.Tensor)
        else (a == 1, a % 16 == 0, a < 0, a < 2**31, a < 2**32, a < 2**63) if type(a) is int
        else type(a)
        for a in values
    )


def parameters(kernel) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every parameter name, the constexpr ones), in the kernel's order: Triton's own reading
    (``kernel.params``) where the kernel has it, else the function's signature and annotations."""
    params = getattr(kernel, "params", None)
    if params is not None:
        names = tuple(p.name for p in params)
        return names, tuple(p.name for p in params if p.is_constexpr)
    signature = inspect.signature(kernel.fn)
    names = tuple(signature.parameters)
    return names, tuple(n for n, p in signature.parameters.items() if _is_constexpr(p.annotation))


def _is_constexpr(annotation) -> bool:
    if isinstance(annotation, str):
        return annotation.split(".")[-1] == "constexpr"
    return annotation is triton.language.constexpr


def _getter(names):
    """A function returning the tuple of a dict's values at ``names``."""
    if len(names) >= 2:
        return operator.itemgetter(*names)
    return lambda arguments: tuple(arguments[name] for name in names)


# what the direct path reads of CUDA (functions, so that tests can stand in for them)
def _plain_cuda(tensor) -> bool:
    """Whether ``tensor`` is a plain ``torch.Tensor`` on a CUDA device."""
    return type(tensor) is torch.Tensor and tensor.is_cuda


# the current CUDA device's index, and a device's current stream (None in CPU-only builds of torch)
_current_device = getattr(torch._C, "_cuda_getDevice", None)
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)


def _on_device(device: torch.device):
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _grid3(grid) -> tuple:
    return grid[0], grid[1] if len(grid) > 1 else 1, grid[2] if len(grid) > 2 else 1


def _run(compiled, grid3, index: int, values) -> None:
    """The direct launch (the one call of Triton's private launcher): the compiled kernel's launcher on
    a 3-d grid, with no launch metadata and no hooks."""
    compiled.run(*grid3, _raw_stream(index), compiled.function, compiled.packed_metadata, None, None, None, *values)


class Launcher:
    """Launches one kernel (module docstring): its compiled kernels by key for the direct path, and
    whether that path works for it. Made by :func:`launch`, one per kernel."""

    __slots__ = ("kernel", "names", "name_set", "first", "values", "runtime_values", "constexpr_values", "compiled",
                 "direct", "launched_direct", "path")

    def __init__(self, kernel):
        names, constexprs = parameters(kernel)
        clash = _RESERVED.intersection(names)
        if clash:
            raise ValueError(f"a kernel launched by launch() cannot name a parameter {sorted(clash)}")
        self.kernel, self.names, self.name_set, self.first = kernel, names, frozenset(names), names[0]
        self.values = _getter(names)  # every argument, in the kernel's order
        self.runtime_values = _getter(tuple(name for name in names if name not in constexprs))
        self.constexpr_values = _getter(constexprs)
        self.compiled = {}
        self.direct = True  # False once a first direct launch failed
        self.launched_direct = False
        self.path = None  # the last launch's: "direct" or "public"

    def __call__(self, grid, num_warps, compile_options, specialization, relaunch, arguments):
        if len(arguments) != len(self.names) or self.first not in arguments:
            self.check(arguments)
        first = arguments[self.first]
        device = first.device
        if not (self.direct and _plain_cuda(first) and direct_launch_active()):
            self.public(grid, device, num_warps, compile_options, arguments)
            return None
        try:
            key = (device.index, num_warps, self.constexpr_values(arguments), tuple(compile_options.items()),
                   specialization_key(self.runtime_values(arguments)) if specialization is None else specialization)
        except KeyError:
            self.check(arguments)
            raise
        compiled = self.compiled.get(key)
        if (compiled is not None and _current_device() == device.index
                and self._direct(compiled, grid, device.index, self.values(arguments))):
            if relaunch:
                return Relaunch(self, compiled, grid, num_warps, compile_options, specialization, relaunch, arguments)
            return None
        compiled = self.public(grid, device, num_warps, compile_options, arguments)
        if compiled is not None:
            self.compiled[key] = compiled
        return None  # a relaunch comes from a direct launch: the next call of this key

    def check(self, arguments) -> None:
        """TypeError unless ``arguments`` name every parameter of the kernel and nothing else."""
        if arguments.keys() != self.name_set:
            missing, unknown = self.name_set - arguments.keys(), arguments.keys() - self.name_set
            raise TypeError(f"{getattr(self.kernel, '__name__', self.kernel)} takes its parameters by keyword: "
                            f"missing {sorted(missing)}, unknown {sorted(unknown)}")

    def public(self, grid, device, num_warps, compile_options, arguments):
        """Triton's own launch; returns what it returns (the compiled kernel on a GPU)."""
        self.check(arguments)
        self.path = "public"
        with _on_device(device):
            return self.kernel[grid](**arguments, num_warps=num_warps, **compile_options)

    def _direct(self, compiled, grid, index, values) -> bool:
        """Launch directly; False (and Triton's launch from now on) where the first direct launch raises."""
        try:
            _run(compiled, _grid3(grid), index, values)
        except Exception:
            if self.launched_direct:
                raise
            self.direct = False  # a launcher that takes other arguments than the tested ones
            return False
        self.launched_direct = True
        self.path = "direct"
        return True


class Relaunch:
    """One direct launch, kept to be repeated with new values of the kernel's leading arguments (tensors
    of the same dtypes and devices, for a kernel that does not specialize on their alignment) and every
    other argument as it was. Where the direct path does not apply at call time (launch hooks, switched
    off, another current device), :class:`Launcher` launches instead."""

    __slots__ = ("launcher", "compiled", "grid", "names", "fixed", "values", "num_warps", "compile_options",
                 "specialization", "device_index")

    def __init__(self, launcher, compiled, grid, num_warps, compile_options, specialization, names, arguments):
        names = tuple(names)
        if launcher.names[: len(names)] != names:
            raise ValueError(f"relaunch must name the kernel's leading parameters, {launcher.names[:len(names)]}; "
                             f"got {names}")
        self.launcher, self.compiled, self.names = launcher, compiled, names
        self.grid = _grid3(grid)
        self.fixed = {name: value for name, value in arguments.items() if name not in names}
        self.values = launcher.values(arguments)[len(names):]
        self.num_warps, self.compile_options, self.specialization = num_warps, compile_options, specialization
        self.device_index = arguments[launcher.first].device.index

    def __call__(self, *tensors):
        index = self.device_index
        if (self.launcher.direct and _DIRECT.enabled and _DIRECT.tested and not launch_hooks_active()
                and _current_device() == index):  # (direct_launch_active(), inline: every repeated call asks)
            _run(self.compiled, self.grid, index, (*tensors, *self.values))
            return
        self.launcher(self.grid, self.num_warps, self.compile_options, self.specialization, (),
                      dict(zip(self.names, tensors), **self.fixed))


_LAUNCHERS: dict = {}
_NO_OPTIONS: dict = {}


def launch(kernel, grid: tuple, /, **arguments):
    """``launch(kernel, grid, *, num_warps, compile_options=None, specialization=None, relaunch=(),
    **kernel_arguments)``: launch ``kernel`` (a ``triton.jit`` function) on ``grid`` with its arguments
    by keyword.

    The public path is ``kernel[grid](**kernel_arguments, num_warps=num_warps, **compile_options)``;
    the direct path (module docstring) launches the same compiled kernel with the same arguments.

    Args:
        num_warps: warps per program.
        compile_options: Triton compile options, e.g. ``{"enable_fp_fusion": False}``.
        specialization: for kernels that opt out of Triton's value or alignment specialization, a key
            of what their compiled form depends on besides the device, warps, constexprs and options
            (e.g. the dtypes); by default what Triton specializes on (:func:`specialization_key`).
        relaunch: names of the kernel's leading parameters: a direct launch then returns a
            :class:`Relaunch` that repeats it for new values of those (given positionally); else None.

    (``kernel`` and ``grid`` are positional-only and the options come out of the keywords: CPython
    compares every keyword of a call with each named parameter, ~2.5 µs for a kernel's ~30.)

    Example:
        >>> launch(add_kernel, (programs,), num_warps=4, x_ptr=x, y_ptr=y, n=n, BLOCK=1024)  # doctest: +SKIP
    """
    try:
        num_warps = arguments.pop("num_warps")
    except KeyError:
        raise TypeError("launch() needs num_warps=") from None
    compile_options = arguments.pop("compile_options", None) or _NO_OPTIONS
    specialization = arguments.pop("specialization", None)
    relaunch = arguments.pop("relaunch", ())
    launcher = _LAUNCHERS.get(kernel)
    if launcher is None:
        launcher = _LAUNCHERS.setdefault(kernel, Launcher(kernel))
    return launcher(grid, num_warps, compile_options, specialization, relaunch, arguments)


def last_launch_path(kernel) -> str | None:
    """The path of ``kernel``'s last launch through :func:`launch` ("direct" or "public"), None before one.
    (A :class:`Relaunch` takes the direct path without recording it.)"""
    launcher = _LAUNCHERS.get(kernel)
    return launcher.path if launcher is not None else None

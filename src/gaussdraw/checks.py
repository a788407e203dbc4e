"""Argument checks shared by the public functions.

Type, dtype, device and shape checks read no values (no host sync). :func:`raise_first`
reads values: one host sync on a GPU for any number of checks.

Value checks follow one rule (:func:`resolve_validate`): a function's ``validate=None``
(the default) checks values on the CPU, where it costs no sync, and not on a GPU, where
it would stall the queue, nor while torch.compile traces the call; ``validate=True`` or ``False`` decides for the call. The
environment variable ``GAUSSDRAW_VALIDATE`` (``1``: everywhere, ``0``: nowhere) or
:func:`set_default_validate` changes what ``None`` means, to find invalid inputs in a
GPU training run without editing its calls.
"""

from __future__ import annotations

import os

import torch


INDEX_DTYPES = (torch.int32, torch.int64)


def check_index_tensor(value, name: str, shape: tuple, device: torch.device, against: str = "heatmap") -> None:
    """Type, dtype, device and shape of an integer input; ``None`` in ``shape`` matches any size.
    ``against`` names the input whose device ``device`` is."""
    if type(value) is not torch.Tensor and not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}{_conversion_hint(value)}")
    if value.dtype not in INDEX_DTYPES:
        hint = (f": round or truncate to integer pixels, e.g. {name}.long()" if value.is_floating_point() else
                f": convert with {name}.long()")
        raise TypeError(f"{name} must be int32 or int64; got {value.dtype}{hint}")
    check_device_and_shape(value, name, shape, device, against)


def _conversion_hint(value) -> str:
    if type(value).__module__ == "numpy":
        return " (torch.as_tensor(x) converts a NumPy array)"
    return ""


def check_float_tensor(value, name: str, shape: tuple, device: torch.device, against: str) -> None:
    """As :func:`check_index_tensor`, for a floating-point input."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}{_conversion_hint(value)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float16/bfloat16/float32/float64); got {value.dtype}")
    check_device_and_shape(value, name, shape, device, against)


def check_device_and_shape(value: torch.Tensor, name: str, shape: tuple, device: torch.device, against: str) -> None:
    if value.device != device:
        raise ValueError(f"{name} is on {value.device} but {against} is on {device}; put all tensors on one device")
    actual = value.shape
    if len(actual) != len(shape) or not all(w is None or w == s for w, s in zip(shape, actual)):
        want = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
        raise ValueError(f"{name} must have shape {want}; got {tuple(actual)}")


def where(index: int, per_sample: int | None) -> str:
    """Where flat ``index`` is, in words: a position, or a sample and a position."""
    if per_sample is None:
        return f"position {index}"
    if per_sample == 1:
        return f"sample {index}"
    return f"sample {index // per_sample}, position {index % per_sample}"


def raise_first(checks: list[tuple], per_sample: int | None = None) -> None:
    """Raise ``ValueError`` for the first failing check. Each check is (bad mask, values, message
    start) or (bad mask, values, message start, per_sample) (where its positions are sample-wise:
    see :func:`where`); ``values`` has the mask's shape, or that shape plus trailing dims (then the
    row is shown).

    All masks are reduced with one host sync; positions are looked up only on failure."""
    if not checks:
        return
    flags = torch.stack([check[0].any() for check in checks]).tolist()
    for flag, (bad, values, message, *own) in zip(flags, checks):
        if flag:
            first = int(bad.reshape(-1).nonzero()[0, 0])
            row = values.reshape(bad.numel(), -1)[first]
            value = row.item() if row.numel() == 1 else row.tolist()
            count = int(bad.sum())
            entries = "1 such entry" if count == 1 else f"{count} such entries"
            raise ValueError(f"{message}; got {value} at {where(first, own[0] if own else per_sample)} ({entries})")


def screened(*bounds: tuple[torch.Tensor, int, int | None]) -> bool:
    """Whether each CPU tensor's values lie in [low, high) (``high`` None: no upper bound), for
    (tensor, low, high) ``bounds``: a quick screen (a min and a max on NumPy views) before the
    exact checks, which build masks and messages only when it fails. False off the CPU."""
    for tensor, low, high in bounds:
        if tensor.device.type != "cpu":
            return False
        if tensor.dim() == 1 and tensor.shape[0] <= 64:  # a few values: a Python list is the cheapest
            values = tensor.tolist()
            if values and (min(values) < low or (high is not None and max(values) >= high)):
                return False
            continue
        values = tensor.numpy()
        if values.size and (values.min() < low or (high is not None and values.max() >= high)):
            return False
    return True


def _default_from_environment() -> bool | None:
    value = os.environ.get("GAUSSDRAW_VALIDATE", "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("1", "true", "yes", "on", "always"):
        return True
    if value in ("0", "false", "no", "off", "never"):
        return False
    raise ValueError(f"GAUSSDRAW_VALIDATE must be 1 (check values everywhere), 0 (nowhere) or auto; got {value!r}")


_DEFAULT_VALIDATE = _default_from_environment()


def set_default_validate(validate: bool | None) -> bool | None:
    """What ``validate=None`` means from now on, for every gaussdraw function: ``True`` checks
    values everywhere (a host sync per call on a GPU), ``False`` nowhere, ``None`` (the
    default) on the CPU only. Returns the previous setting. The environment variable
    ``GAUSSDRAW_VALIDATE=1`` / ``0`` sets it at import.

    Example:
        >>> previous = set_default_validate(True)   # find bad boxes in a GPU run
        >>> _ = set_default_validate(previous)
    """
    global _DEFAULT_VALIDATE
    if validate is not None and not isinstance(validate, bool):
        raise TypeError(f"validate must be True, False or None; got {validate!r}")
    previous, _DEFAULT_VALIDATE = _DEFAULT_VALIDATE, validate
    return previous


def resolve_validate(validate, device: torch.device) -> bool:
    """Whether a call checks values: ``validate`` if given, else the default (CPU: yes, GPU: no;
    no check while torch.compile traces the call, where it would break the graph)."""
    if validate is None:
        validate = _DEFAULT_VALIDATE
        if validate is None:
            return device.type != "cuda" and not torch.compiler.is_compiling()
        return validate
    if validate is True or validate is False:
        return validate
    raise TypeError(f"validate must be True, False or None; got {validate!r}")

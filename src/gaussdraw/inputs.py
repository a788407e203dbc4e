"""The one input layer of the batched ops: every batched form to padded tensors + counts.

Each per-entry input of a batched op (centers, radii, labels, boxes, scores, ...) comes
in any of the forms of :mod:`gaussdraw.ragged`: a ragged batch, a list of per-sample
tensors, or a padded tensor with ``counts``. :func:`batch_inputs` turns them all into
one :class:`Batch`: padded (B, T, ...) tensors and the (B,) counts the kernels take,
with type, dtype, shape and device checked (no values read) and one set of messages.
Where a list's element is wrong, the message names that element (``centers[1]``), not the
padded tensor made from the list. Nested Python lists of numbers are made tensors
(:func:`python_tensor`): a list of per-sample lists, or a list's samples beside tensor ones.
Value checks (counts in range, sample sizes that agree) are :meth:`Batch.count_checks`,
for the caller to raise with its own value checks in one host sync
(:func:`gaussdraw.checks.raise_first`).

Example:
    >>> fields = (Field("centers", (2,)), Field("radii"))
    >>> batch = batch_inputs({"centers": [torch.tensor([[1, 2]]), torch.zeros(0, 2, dtype=torch.long)],
    ...                       "radii": [torch.tensor([3]), torch.zeros(0, dtype=torch.long)]}, fields)
    >>> batch.tensors["centers"].shape, batch.counts.tolist()
    (torch.Size([2, 1, 2]), [1, 0])
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from .checks import INDEX_DTYPES, check_float_tensor, check_index_tensor
from .ragged import is_ragged, to_padded_all


@dataclass(frozen=True)
class Field:
    """One per-entry input: its name, its dims after (B, T) (``None``: any size), and whether it
    holds floats (else int32/int64)."""

    name: str
    trailing: tuple = ()
    floating: bool = False


@dataclass
class Batch:
    """Per-sample inputs as padded (B, T, ...) tensors, with the (B,) number of entries in use."""

    tensors: dict
    counts: torch.Tensor
    counts_name: str
    sizes: list  # (name, (B,) tensor) for each input that came with its own sample sizes
    boxes_per_sample: int

    def used(self, name: str) -> torch.Tensor | None:
        """Input ``name`` cut to the common padded length T (None where it was not given)."""
        tensor = self.tensors.get(name)
        if tensor is None or tensor.shape[1] == self.boxes_per_sample:
            return tensor
        return tensor[:, : self.boxes_per_sample]

    def in_use(self) -> torch.Tensor:
        """(B, T) bool: the entries at positions below each sample's count."""
        return torch.arange(self.boxes_per_sample, device=self.counts.device) < self.counts.unsqueeze(1)

    def count_checks(self) -> list:
        """Checks for :func:`~gaussdraw.checks.raise_first`: counts in [0, T] and sample sizes that
        agree with them."""
        checks = [((self.counts < 0) | (self.counts > self.boxes_per_sample), self.counts,
                   f"{self.counts_name} must be in [0, {self.boxes_per_sample}] (the padded length of the inputs)", 1)]
        checks += [(sizes != self.counts, sizes, f"{name} must equal {self.counts_name}", 1)
                   for name, sizes in self.sizes if sizes is not self.counts]
        return checks


def batch_inputs(values: dict, fields: tuple, counts: torch.Tensor | None = None, *, num_samples: int | None = None,
                 device: torch.device | None = None, against: str | None = None) -> Batch:
    """The padded tensors behind ``values`` (name -> a batched form, or None where optional), checked
    against ``fields`` for type, dtype, shape (B, T, *trailing) and device.

    ``num_samples`` and ``device`` default to the first input's; ``against`` names what ``device``
    belongs to, for the messages (default: the first input). ``counts`` (B,) is required when
    every input is a padded tensor; else the first ragged or list input's sizes count."""
    padded, sizes = {}, []
    values = _from_python(values, fields, device)
    try:
        padded_forms = to_padded_all({field.name: values.get(field.name) for field in fields})
    except (TypeError, ValueError):
        for field in fields:  # a wrong element of a list, named as it was given, before the lengths
            _check_list_input(values.get(field.name), field, None, device, against)
        raise
    for field in fields:
        if field.name not in padded_forms:
            continue
        tensor, sample_sizes = padded_forms[field.name]
        if device is None:
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"{field.name} must hold tensors; got {type(tensor).__name__}")
            device, against = tensor.device, against or field.name
            num_samples = tensor.shape[0] if num_samples is None and tensor.dim() else num_samples
        check = check_float_tensor if field.floating else check_index_tensor
        try:
            check(tensor, field.name, (num_samples, None, *field.trailing), device, against)
        except (TypeError, ValueError):
            _check_list_input(values[field.name], field, num_samples, device, against)
            raise
        if sample_sizes is not None:
            check_index_tensor(sample_sizes, f"{field.name}.sample_sizes", (num_samples,), device, against)
            sizes.append((f"{field.name}.sample_sizes", sample_sizes))
        padded[field.name] = tensor
    if counts is not None:
        counts = python_tensor(counts, "counts", device) if is_numbers(counts) else counts
        check_index_tensor(counts, "counts", (num_samples,), device, against)
        counts_name = "counts"
    elif sizes:
        counts_name, counts = sizes[0]
    else:
        names = ", ".join(padded)
        raise ValueError(f"counts is required when {names} are all padded tensors: pass counts=(B,) valid entries "
                         "per sample (torch.full((B,), T) if all are valid)")
    boxes_per_sample = min(t.shape[1] for t in padded.values())
    return Batch(padded, counts, counts_name, sizes, boxes_per_sample)


# ----------------------------------------------------------------------------
# Python lists of numbers
# ----------------------------------------------------------------------------


def is_numbers(value) -> bool:
    """Whether ``value`` is a Python list or tuple of real numbers (not bools), nested or empty."""
    if not isinstance(value, (list, tuple)):
        return False
    return all(is_numbers(v) if isinstance(v, (list, tuple)) else
               isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)


def _leaves(value):
    for v in value:
        yield from _leaves(v) if isinstance(v, (list, tuple)) else (v,)


def python_tensor(value, name: str, device: torch.device | None, floating: bool = False,
                  dtype: torch.dtype | None = None) -> torch.Tensor:
    """``value``, a nested Python list of numbers (:func:`is_numbers`), as a tensor on ``device``:
    ``dtype``, else int64 for an integer input (floats are refused, as in a tensor) and the default
    float dtype for a floating one."""
    try:
        tensor = torch.tensor(value, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a rectangular list of numbers (a tensor's nested rows); got rows of "
                         f"different lengths: give a list of per-sample tensors or lists") from None
    if floating:
        return tensor.to(dtype or torch.get_default_dtype())
    if tensor.is_floating_point() and tensor.numel():
        first = next(v for v in _leaves(value) if not isinstance(v, numbers.Integral))
        raise TypeError(f"{name} must hold integers; got the float {first}: round or truncate to integers "
                        f"first, e.g. torch.tensor({name}).long()")
    return tensor.to(dtype if dtype in INDEX_DTYPES else torch.int64)


def _any_device(values: dict) -> torch.device:
    """The device of the first tensor among ``values`` (CPU if none)."""
    for value in values.values():
        if is_ragged(value):
            value = value.tensor
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, torch.Tensor):
                return item.device
    return torch.device("cpu")


def _from_python(values: dict, fields: tuple, device: torch.device | None) -> dict:
    """``values`` with each list's Python samples made tensors: on ``device`` (else the first tensor's),
    in the dtype of the list's first tensor (else :func:`python_tensor`'s), empty ones (0, *trailing)."""
    converted = None
    for field in fields:
        value = values.get(field.name)
        if not isinstance(value, (list, tuple)) or all(type(v) is torch.Tensor for v in value):
            continue
        like = next((v for v in value if isinstance(v, torch.Tensor)), None)
        where = device if device is not None else like.device if like is not None else _any_device(values)
        dtype = like.dtype if like is not None and like.is_floating_point() == field.floating else None
        samples = [python_tensor(v, f"{field.name}[{b}]", where, field.floating, dtype) if is_numbers(v) else v
                   for b, v in enumerate(value)]
        template = like if like is not None else next((t for t in samples if isinstance(t, torch.Tensor)
                                                      and t.dim() > 1), None)
        trailing = field.trailing if None not in field.trailing else (template.shape[1:] if template is not None
                                                                       else None)
        if trailing is not None:
            samples = [t.reshape(0, *trailing) if is_numbers(v) and not v else t for t, v in zip(samples, value)]
        converted = converted or dict(values)
        converted[field.name] = samples
    return converted or values


# ----------------------------------------------------------------------------
# messages for list inputs
# ----------------------------------------------------------------------------


def _check_list_input(value, field: Field, num_samples: int | None, device: torch.device | None,
                      against: str | None) -> None:
    """For a list input whose padded form failed a check: raise naming the list, or the element, that
    is wrong, as the caller gave it (nothing for other forms, or where each element is right)."""
    if not isinstance(value, (list, tuple)):
        return
    name = field.name
    if num_samples is not None and len(value) != num_samples:
        raise ValueError(f"{name} is a list of {len(value)} samples but {against} has {num_samples}: give one "
                         "tensor per sample")
    for b, element in enumerate(value):
        element_name = f"{name}[{b}]"
        if not isinstance(element, torch.Tensor):
            raise TypeError(f"{element_name} must be a torch.Tensor or a list of numbers; got "
                            f"{type(element).__name__}")
        if field.floating and not element.is_floating_point():
            raise TypeError(f"{element_name} must be a floating-point tensor; got {element.dtype}: convert with "
                            f"[t.float() for t in {name}]")
        if not field.floating and element.dtype not in INDEX_DTYPES:
            hint = "round or truncate to integers" if element.is_floating_point() else "convert"
            raise TypeError(f"{element_name} must be int32 or int64; got {element.dtype}: {hint}, e.g. "
                            f"[t.long() for t in {name}]")
        if device is not None and element.device != device:
            raise ValueError(f"{element_name} is on {element.device} but {against} is on {device}; put all "
                             "tensors on one device")
        _check_element_shape(element, element_name, field.trailing)


def _check_element_shape(element: torch.Tensor, name: str, trailing: tuple) -> None:
    """Raise unless ``element`` is (n, *trailing), with the fix for a missing or extra dimension."""
    shape, dims = tuple(element.shape), len(trailing) + 1
    if len(shape) == dims and all(w is None or w == s for w, s in zip(trailing, shape[1:])):
        return
    want = "(n, " + ", ".join("*" if w is None else str(w) for w in trailing) + ")" if trailing else "(n,)"
    known = None not in trailing
    fix = ""
    if len(shape) == dims - 1 and (not trailing or shape == trailing or not known):
        fix = f": for one box, pass {name}.unsqueeze(0)"
    elif len(shape) != dims and known and element.numel() % math.prod(trailing) == 0:
        fix = f": pass {name}.reshape(-1{''.join(f', {w}' for w in trailing)})"
    if len(shape) != dims:
        raise ValueError(f"{name} must be {want}, one entry per box; got {shape}{fix}")
    raise ValueError(f"{name} must have shape {want}; got {shape}")

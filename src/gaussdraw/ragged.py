"""Ragged batches: per-sample sets of boxes of different sizes.

``draw_heatmap_batched`` takes each per-box quantity in any of three forms, and
reduces all of them to one: a padded tensor of shape (B, Tmax, ...) plus the
number of valid entries per sample, ``counts`` (B,).

- a ragged batch: any object with ``.tensor`` (padded, (B, Tmax, ...)) and
  ``.sample_sizes`` ((B,)), such as :class:`Ragged` or ACCV-Lab's ``RaggedBatch``;
- a list (or tuple) of per-sample tensors, (T_b, ...) each (a sample may be a nested Python
  list of numbers: :mod:`gaussdraw.inputs` makes it a tensor);
- a padded tensor (B, Tmax, ...), with ``counts=`` given to the drawing function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch


@dataclass(frozen=True)
class Ragged:
    """A padded batch with per-sample sizes.

    Args:
        tensor: (B, Tmax, ...) values; entries at positions ``>= sample_sizes[b]``
            are padding and are never read for drawing.
        sample_sizes: (B,) integer tensor, number of valid entries per sample.

    Example:
        >>> r = Ragged.from_list([torch.tensor([[3, 4]]), torch.zeros(0, 2, dtype=torch.long)])
        >>> r.tensor.shape, r.sample_sizes.tolist()
        (torch.Size([2, 1, 2]), [1, 0])
    """

    tensor: torch.Tensor
    sample_sizes: torch.Tensor

    @classmethod
    def from_list(cls, tensors: Sequence[torch.Tensor]) -> "Ragged":
        """Pad a list of (T_b, ...) tensors into a ragged batch."""
        tensor, sizes = pad_list(tensors, "tensors")
        return cls(tensor, sizes)

    def to_list(self) -> list[torch.Tensor]:
        """The per-sample tensors (reads the sizes: syncs on GPU)."""
        return [self.tensor[b, :n] for b, n in enumerate(self.sample_sizes.tolist())]


RaggedLike = Union[Ragged, Sequence[torch.Tensor], torch.Tensor]


def is_ragged(value) -> bool:
    return hasattr(value, "tensor") and hasattr(value, "sample_sizes")


def pad_list(tensors: Sequence[torch.Tensor], name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, Tmax, ...) padded tensor and (B,) int64 sizes from a list of (T_b, ...) tensors, one copy
    per sample (:func:`to_padded_all` packs GPU lists with one copy for all)."""
    if len(tensors) == 0:
        raise ValueError(f"{name} is an empty list: give one tensor per sample")
    first = tensors[0]
    _check_list(tensors, name)
    sizes = [t.shape[0] for t in tensors]
    padded = first.new_zeros((len(tensors), max(sizes), *first.shape[1:]))
    for b, t in enumerate(tensors):  # one copy per sample, not per box
        padded[b, : t.shape[0]] = t
    return padded, sizes_tensor(sizes, first.device)


def _pad_concatenated(flat: torch.Tensor, sizes: list, rows: torch.Tensor):
    """``flat`` (sum T_b, ...) as (B, Tmax, ...): row t of sample b goes to b * Tmax + t. ``rows``: the
    (B + sum T_b,) sizes and destination rows on the device, from :func:`_destination_rows`."""
    count, longest = len(sizes), max(sizes)
    inner = math.prod(flat.shape[1:])
    padded = flat.new_empty((count, longest, *flat.shape[1:]))  # padding is never read: left as it is
    padded.view(count * longest, inner).index_copy_(0, rows[count:], flat.view(flat.shape[0], inner))
    return padded, rows[:count]


def _destination_rows(sizes: list, device: torch.device) -> torch.Tensor:
    """The sizes, then b * Tmax + t for each row t of each sample b, in one (pinned, on a GPU) copy."""
    lengths = np.asarray(sizes, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    rows = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(np.arange(len(sizes)) * max(sizes) - starts,
                                                                        lengths)
    return sizes_tensor(np.concatenate([lengths, rows]), device)


def check_lengths(lengths: dict) -> None:
    """Per-sample lists (name -> entries per sample, None where unknown) must agree in their number
    of samples and of entries per sample: raise ``ValueError`` naming the one that does not."""
    if not lengths:
        return
    (first, reference), *others = lengths.items()
    for name, sizes in others:
        if len(sizes) != len(reference):
            raise ValueError(f"{name} has {len(sizes)} samples but {first} has {len(reference)}: give one tensor "
                             "per sample in each")
        for b, (n, m) in enumerate(zip(sizes, reference)):
            if n is not None and m is not None and n != m:
                raise ValueError(f"{name}[{b}] has {n} entries but {first}[{b}] has {m}: each sample needs one "
                                 f"entry of {name} per entry of {first}")


def to_padded_all(values: dict) -> dict:
    """:func:`to_padded` of each named input (``None`` values are left out). List inputs must agree in
    their per-sample lengths (checked on the host, no sync). On a GPU, lists of more than 2 samples are
    concatenated (one kernel each) and copied to their padded rows (one more), with the sizes and the
    destination rows sent once, from pinned memory, for all of them; the checks are left to
    ``torch.cat`` and, when it refuses, made one tensor at a time for the message."""
    lists = {name: v for name, v in values.items() if isinstance(v, (list, tuple))}
    try:  # the common case, cheaply: plain tensors of equal lengths
        agree = [type(t) for v in lists.values() for t in v].count(torch.Tensor) == sum(map(len, lists.values()))
        lengths = [[t.shape[0] for t in v] for v in lists.values()] if agree else None
        agree = agree and all(sizes == lengths[0] for sizes in lengths)
    except IndexError:  # a 0-d tensor: the detailed check says which
        agree = False
    if not agree:
        check_lengths({name: [t.shape[0] if isinstance(t, torch.Tensor) and t.dim() else None for t in v]
                       for name, v in lists.items()})
    shared = {}
    if lists and not torch.compiler.is_compiling():  # traced: each list padded on its own (pad_list)
        first = next(iter(lists.values()))
        if len(first) > 2 and type(first[0]) is torch.Tensor and first[0].is_cuda and first[0].dim():
            try:
                flats = {name: torch.cat(v) for name, v in lists.items()}
            except (RuntimeError, TypeError):
                flats = {}  # each list again on its own, for the message
            if flats and all(f.dtype == lists[name][0].dtype and f.device == first[0].device
                             for name, f in flats.items()):
                sizes = [t.shape[0] for t in first]
                rows = _destination_rows(sizes, first[0].device)
                shared = {name: _pad_concatenated(f, sizes, rows) for name, f in flats.items()}
    return {name: shared[name] if name in shared else to_padded(value, name)
            for name, value in values.items() if value is not None}


def _check_list(tensors: Sequence[torch.Tensor], name: str) -> None:
    """Raise for the first tensor of ``tensors`` that is not one of one shape past dim 0, dtype and device."""
    for b, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}[{b}] must be a torch.Tensor; got {type(t).__name__}")
    first = tensors[0]
    for b, t in enumerate(tensors):
        if t.dim() != first.dim() or t.shape[1:] != first.shape[1:]:
            raise ValueError(
                f"{name}[{b}] has shape {tuple(t.shape)}, which does not match {name}[0]'s "
                f"{tuple(first.shape)} past the first dimension"
            )
        if t.device != first.device or t.dtype != first.dtype:
            raise ValueError(
                f"{name}[{b}] is {t.dtype} on {t.device}; {name}[0] is {first.dtype} on {first.device}"
            )
    if first.dim() == 0:
        raise ValueError(f"{name}[0] is a 0-d tensor; each sample needs a (T_b, ...) tensor")


def sizes_tensor(sizes, device: torch.device) -> torch.Tensor:
    """(B,) int64 ``sizes`` (a list or a NumPy array) on ``device``. On a GPU the copy is queued
    from pinned memory, so that the host does not wait for the device. Built from host values
    alone, so that torch.compile traces it as a constant."""
    if torch.compiler.is_compiling():  # list lengths are known when tracing: a constant of the graph
        return torch.tensor(sizes, dtype=torch.int64, device=device)
    sizes = torch.as_tensor(sizes, dtype=torch.int64)
    if device.type != "cuda":
        return sizes.to(device)
    return sizes.pin_memory().to(device, non_blocking=True)


def to_padded(value, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The padded (B, Tmax, ...) tensor behind ``value`` and its sizes (None for a plain tensor)."""
    if is_ragged(value):
        tensor, sizes = value.tensor, value.sample_sizes
        if not isinstance(tensor, torch.Tensor) or not isinstance(sizes, torch.Tensor):
            raise TypeError(f"{name}.tensor and {name}.sample_sizes must be torch.Tensors")
        return tensor, sizes
    if isinstance(value, (list, tuple)):
        return pad_list(value, name)
    if isinstance(value, torch.Tensor):
        return value, None
    raise TypeError(
        f"{name} must be a ragged batch (.tensor, .sample_sizes), a list of per-sample tensors, "
        f"or a padded tensor; got {type(value).__name__}"
    )


def device_of(value, name: str) -> torch.device:
    """The device of a batched input, read off it (a list is not padded for it)."""
    if isinstance(value, torch.Tensor):
        return value.device
    if isinstance(value, (list, tuple)) and value:
        first = next((v for v in value if isinstance(v, torch.Tensor)), None)
        if first is not None:
            return first.device
        if all(isinstance(v, (list, tuple)) for v in value):  # Python samples: made tensors on the CPU
            return torch.device("cpu")
    if is_ragged(value) and isinstance(value.tensor, torch.Tensor):
        return value.tensor.device
    return to_padded(value, name)[0].device  # raises for what is not a batched input

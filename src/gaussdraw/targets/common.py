"""What the target functions share: options, the batched input forms, the backend choice."""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass

import torch

from ..checks import check_float_tensor, check_index_tensor, raise_first
from ..ragged import to_padded_all

def freeze(value):
    """A hashable key for a configuration value, with each number's type (8.0 is not 8);
    ``TypeError`` for values not to cache by (tensors, unhashable objects)."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is int or kind is float or kind is bool:
        return kind, value
    if kind is list or kind is tuple:
        return kind, tuple([freeze(v) for v in value])
    if isinstance(value, torch.Tensor):
        raise TypeError("tensors are not cached")
    hash(value)
    return kind, value


def cached(check):
    """``check(*options)`` memoized on the options' frozen keys: a head calls with the same
    configuration every step. The same objects as the last call, still equal to a copy
    taken then, hit without freezing; options that cannot be frozen are checked each call."""
    memo, last = {}, [None]

    def checked(*options):
        if torch.compiler.is_compiling():  # traced once per compiled graph
            return check(*options)
        previous = last[0]
        if (previous is not None and all(a is b for a, b in zip(options, previous[0]))
                and list(options) == previous[1]):
            return previous[2]
        try:
            key = tuple(freeze(o) for o in options)
        except TypeError:
            return check(*options)
        if key not in memo:
            if len(memo) >= 64:
                memo.clear()
            memo[key] = check(*options)
        last[0] = (options, copy.deepcopy(list(options)), memo[key])
        return memo[key]

    return checked


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return int(value)


def positive_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0; got {value}")
    return float(value)


def overlap(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1); got {value}")
    return float(value)


def pair(value, name: str, convert, what: str) -> tuple:
    """Two values, each checked by ``convert(value, name)``; ``what`` names them for the message."""
    if isinstance(value, torch.Tensor) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name} must be a pair {what}; got {value!r}")
    return tuple(convert(v, f"{name}[{i}]") for i, v in enumerate(value))


@dataclass
class Batch:
    """Per-sample inputs as padded (B, T, ...) tensors, with the (B,) number of entries in use."""

    tensors: dict
    counts: torch.Tensor
    counts_name: str
    sizes: list  # (name, (B,) tensor) for each input that came with its own sample sizes
    boxes_per_sample: int

    def used(self, name: str) -> torch.Tensor:
        tensor = self.tensors[name]
        return tensor if tensor.shape[1] == self.boxes_per_sample else tensor[:, : self.boxes_per_sample]

    def check_counts(self) -> None:
        """Counts in [0, T] and sample sizes that agree (reads values: one sync on a GPU)."""
        checks = [((self.counts < 0) | (self.counts > self.boxes_per_sample), self.counts,
                   f"{self.counts_name} must be in [0, {self.boxes_per_sample}] (the padded length of the inputs)")]
        checks += [(sizes != self.counts, sizes, f"{name} must equal {self.counts_name}")
                   for name, sizes in self.sizes if sizes is not self.counts]
        raise_first(checks, per_sample=1)


def gather(inputs: dict, trailing: dict, floating: set, counts) -> Batch:
    """The padded tensors behind ``inputs`` (name -> ragged batch, list or padded tensor), checked
    for type, dtype, shape (B, T, *trailing[name]) and device (the first input's); ``floating``
    names the float inputs, the others are int32/int64."""
    padded, sizes = {}, []
    device = num_samples = first = None
    for name, (tensor, sample_sizes) in to_padded_all(inputs).items():
        if first is None:
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"{name} must hold tensors; got {type(tensor).__name__}")
            first, device = name, tensor.device
            num_samples = tensor.shape[0] if tensor.dim() else None
        check = check_float_tensor if name in floating else check_index_tensor
        check(tensor, name, (num_samples, None, *trailing[name]), device, first)
        if sample_sizes is not None:
            check_index_tensor(sample_sizes, f"{name}.sample_sizes", (num_samples,), device, first)
            sizes.append((f"{name}.sample_sizes", sample_sizes))
        padded[name] = tensor
    if counts is not None:
        check_index_tensor(counts, "counts", (num_samples,), device, first)
        counts_name = "counts"
    elif sizes:
        counts_name, counts = sizes[0]
    else:
        raise ValueError(
            f"counts is required when {', '.join(inputs)} are padded tensors: pass counts=(B,) valid entries "
            "per sample (torch.full((B,), T) if all are valid)"
        )
    boxes_per_sample = min(t.shape[1] for t in padded.values())
    return Batch(padded, counts, counts_name, sizes, boxes_per_sample)


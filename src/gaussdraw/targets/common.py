"""What the target functions share: checks of their configuration options, cached per configuration."""

from __future__ import annotations

import copy
import math
import numbers
import operator

import torch


def freeze(value):
    """A hashable key for a configuration value (numbers, strings, lists, tuples and dicts of them), with
    each number's type (8.0 is not 8); ``TypeError`` for values not to cache by (tensors, unhashable
    objects)."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is int or kind is float or kind is bool:
        return kind, value
    if kind is list or kind is tuple:
        return kind, tuple([freeze(v) for v in value])
    if kind is dict:  # a config dict (a task's num_class, class_names): its items in order
        return kind, tuple([(name, freeze(v)) for name, v in value.items()])
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
        if previous is not None and all(map(operator.is_, options, previous[0])) and list(options) == previous[1]:
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

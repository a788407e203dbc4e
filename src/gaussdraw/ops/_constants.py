"""Small constant tensors on a device (thresholds, offsets, blur weights), made once and kept.

A constant is built on the host, pinned and copied without blocking: no host sync, and a later
call (one that a CUDA graph captures, say) finds it on the device with nothing to copy.
"""

from __future__ import annotations

import torch

_CONSTANTS: dict = {}
_MOST = 256  # kept constants; past this the cache starts over


def device_constant(values, dtype: torch.dtype, device: torch.device, convert=None) -> torch.Tensor:
    """A tensor of ``values`` (a tuple of numbers, or of tuples; each number through ``convert``
    if given) on ``device``, the same tensor for the next call with the same arguments. Callers
    never write to it. While ``torch.compile`` traces, a fresh ``torch.tensor`` (a graph constant)."""
    def converted():
        return [convert(v) for v in values] if convert else values

    if torch.compiler.is_compiling():
        return torch.tensor(converted(), dtype=dtype, device=device)
    key = (values, dtype, device, convert)
    tensor = _CONSTANTS.get(key)
    if tensor is None:
        tensor = torch.tensor(converted(), dtype=dtype)
        tensor = tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor.to(device)
        if len(_CONSTANTS) >= _MOST:
            _CONSTANTS.clear()
        _CONSTANTS[key] = tensor
    return tensor

"""CenterPoint's two-stage top-k (the top ``per_class_k`` peaks of each class, then the top ``k`` of
those) on the GPU in two launches, without ``torch.topk``.

1. one program a (sample, class) plane: the plane's values (mmdet's local maximum, or the heatmap
   for kernel 1) in registers, the ``per_class_k``-th largest of their int32 order (bisection, 32
   counts, or where a thread holds few keys 2-bit digits, 16 rounds of three counts packed in one sum:
   :func:`._triton.digit_bits`),
   then the values above it and the first equal ones (smallest pixels) written as int64 keys (value,
   then ascending index) in pixel order;
2. one program a sample: the same selection of its classes' keys (k of C * per_class_k, stored in
   ascending index order, so equal values at the k-th place are taken smallest index first), one
   sort of the k chosen keys, and the five outputs.

Equal scores come in ascending index order, as :func:`gaussdraw.decode.peaks._best_first` orders them.
"""

from __future__ import annotations

import torch

from ._triton import check_device, digit_bits, next_power_of_2

PLANE_LIMIT = 32768  # the most pixels of a plane, and keys of a sample, one program holds
KEEP_LIMIT = 4096  # the most results one program sorts


def class_peaks_triton(heat: torch.Tensor, k: int, kernel: int, per_class_k: int) -> list[torch.Tensor] | None:
    """(scores, labels, ys, xs, indices), each (B, k), of CenterPoint's two-stage top-k of (B, C, H, W)
    ``heat`` (float16/bfloat16/float32), best first; None where the path does not apply (float64,
    planes or C * per_class_k over PLANE_LIMIT, k over KEEP_LIMIT: the caller takes the top-ks)."""
    check_device(heat.device)
    batch, classes, height, width = heat.shape
    per_sample = classes * per_class_k
    if (heat.dtype == torch.float64 or height * width > PLANE_LIMIT or per_sample > PLANE_LIMIT or k > KEEP_LIMIT
            or batch * classes == 0 or classes * height * width >= 2**31):
        return None
    steps, outputs = class_peaks_launches(heat.contiguous(), k, kernel, per_class_k)
    for step in steps.values():
        step()
    return outputs


def class_peaks_launches(heat: torch.Tensor, k: int, kernel: int, per_class_k: int):
    """({name: the launch, a callable}, the outputs they fill) of contiguous ``heat`` within the path's
    limits, in their order; apart, for benchmarks/peaks_profile.py to time each."""
    from .kernels.class_peaks import class_select_kernel, class_top_kernel
    from .launch import launch

    batch, classes, height, width = heat.shape
    per_sample = classes * per_class_k
    keys = torch.empty((batch, per_sample), dtype=torch.int64, device=heat.device)
    keep = next_power_of_2(k)
    best = torch.empty((batch, keep), dtype=torch.int64, device=heat.device)
    outputs = [torch.empty((batch, k), dtype=heat.dtype, device=heat.device)]
    outputs += [torch.empty((batch, k), dtype=torch.int64, device=heat.device) for _ in range(4)]
    plane_block, sample_block = next_power_of_2(height * width), next_power_of_2(per_sample)
    plane_warps, sample_warps = _warps(plane_block), _warps(max(sample_block, keep))
    steps = {
        "per-class top": lambda: launch(
            class_top_kernel, (batch * classes,), num_warps=plane_warps, heat_ptr=heat, keys_ptr=keys,
            classes=classes, height=height, width=width, per_class_k=per_class_k, KERNEL=kernel, BLOCK=plane_block,
            BITS=digit_bits(plane_block, plane_warps)),
        "select": lambda: launch(
            class_select_kernel, (batch,), num_warps=sample_warps, keys_ptr=keys, best_ptr=best,
            scores_ptr=outputs[0], labels_ptr=outputs[1], ys_ptr=outputs[2], xs_ptr=outputs[3],
            indices_ptr=outputs[4], per_sample=per_sample, k=k, plane=height * width, width=width,
            BLOCK=sample_block, KEEP=keep, BITS=digit_bits(sample_block, sample_warps)),
    }
    return steps, outputs


def _warps(block: int) -> int:
    """Warps of a program holding ``block`` values: about 32 a thread, 4 to 16 warps."""
    return min(16, max(4, block // 1024))

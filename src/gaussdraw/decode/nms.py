"""Circle NMS: mmdet3d's greedy ``circle_nms``, one call for a batch (:func:`circle_nms_batched`)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..checks import raise_first, resolve_validate
from ..dispatch import check_backend, route, run
from ..inputs import Field, batch_inputs, is_numbers, python_tensor
from ..ops.circle_nms import CIRCLE_NMS, float32_threshold, sorted_candidates, sorted_candidates_triton
from ..ragged import RaggedLike

NMS_FIELDS = (Field("scores", floating=True), Field("centers", (2,), floating=True))  # scores set S and counts


class KeptBoxes(NamedTuple):
    """Circle NMS of a batch: ``indices`` (S, P) int64, each sample's kept boxes (indices into
    its own boxes) best first, padded with -1; ``counts`` (S,) int64, how many were kept."""

    indices: torch.Tensor
    counts: torch.Tensor


_THRESHOLD_TENSORS: dict = {}


def _thresholds(values: tuple, device: torch.device, convert=float32_threshold) -> torch.Tensor:
    """(S,) float32 thresholds on ``device`` (each ``convert``-ed: by default the largest float32 at
    most the given one, see :func:`~gaussdraw.ops.circle_nms.float32_threshold`), kept for the next
    call with the same ones: made once, copied from pinned memory (no sync, and nothing to copy
    while a CUDA graph captures)."""
    if torch.compiler.is_compiling():
        return torch.tensor([convert(v) for v in values], dtype=torch.float32, device=device)
    key = (values, device, convert)
    tensor = _THRESHOLD_TENSORS.get(key)
    if tensor is None:
        tensor = torch.tensor([convert(v) for v in values], dtype=torch.float32)
        tensor = tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor.to(device)
        if len(_THRESHOLD_TENSORS) >= 64:
            _THRESHOLD_TENSORS.clear()
        _THRESHOLD_TENSORS[key] = tensor
    return tensor


def circle_nms_batched(centers: RaggedLike, scores: RaggedLike, thresh, *, post_max_size: int | None = 83,
                       counts: torch.Tensor | None = None, backend: str = "auto",
                       validate: bool | None = None) -> KeptBoxes:
    """mmdet3d's ``circle_nms`` for each sample (or task) of a batch, in one call, no host sync.

    Greedy by descending score (equal scores: the later box first, as mmdet3d's
    ``argsort()[::-1]`` orders them with a stable sort), a box is suppressed where a kept box's
    center is within ``thresh``: squared distance ``dx * dx + dy * dy <= thresh``, computed in
    float32 as mmdet3d computes it on CenterHead's float32 boxes; then the first
    ``post_max_size`` kept boxes.

    Args:
        centers: per-sample (N_b, 2) float (x, y) centers: a list of tensors (or of nested Python
            lists of numbers), a ragged batch, or a padded (S, Nmax, 2) tensor with ``counts``.
        scores: per-sample (N_b,) float scores, in the same form.
        thresh: the squared-distance threshold: a number, or one per sample (a sequence of S numbers,
            e.g. CenterPoint's ``min_radius`` of each task).
        post_max_size: keep at most this many per sample (None: all).
        counts: (S,) boxes per sample, with padded tensors.
        backend: "auto" (Triton on CUDA, torch on CPU), "triton" or "torch".
        validate: check that counts lie in [0, Nmax] and agree with the inputs' sample sizes, and
            raise ``ValueError`` if not. The default, ``None``, checks on the CPU and not on a GPU,
            where the check reads values (a host sync).

    Returns:
        :class:`KeptBoxes`.

    Example:
        >>> centers = [torch.tensor([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0]]), torch.tensor([[1.0, 1.0]])]
        >>> scores = [torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0.5])]
        >>> kept = circle_nms_batched(centers, scores, 1.0)
        >>> kept.indices.tolist(), kept.counts.tolist()
        ([[0, 2], [0, -1]], [2, 1])
    """
    check_backend(backend)
    batch = batch_inputs({"centers": centers, "scores": scores}, NMS_FIELDS, counts)
    center_tensor, score_tensor, sizes = batch.tensors["centers"], batch.tensors["scores"], batch.counts
    device = score_tensor.device
    num_samples, longest = score_tensor.shape
    if center_tensor.shape[1] != longest:  # one center per score: never cut either to the other's length
        raise ValueError(f"centers must have shape ({num_samples}, {longest}, 2), one center per score; got "
                         f"{tuple(center_tensor.shape)}")
    if post_max_size is not None and (type(post_max_size) is not int or post_max_size < 0):
        raise ValueError(f"post_max_size must be an integer >= 0 or None; got {post_max_size!r}")
    if num_samples and resolve_validate(validate, device):
        raise_first(batch.count_checks())
    thresholds = [thresh] * num_samples if isinstance(thresh, (int, float)) and not isinstance(thresh, bool) \
        else list(thresh)
    if len(thresholds) != num_samples or not all(isinstance(t, (int, float)) for t in thresholds):
        raise ValueError(f"thresh must be a number or one number per sample ({num_samples}); got {thresh!r}")
    thresholds = _thresholds(tuple(float(t) for t in thresholds), device)
    size = min(post_max_size, longest) if post_max_size is not None else longest
    centers_f32 = center_tensor.float().contiguous()
    chosen = route(backend, device)
    if chosen.use_triton and not chosen.traced:  # eager Triton: the candidates' order by a kernel too
        order = sorted_candidates_triton(score_tensor.contiguous(), sizes)
    else:
        order = sorted_candidates(score_tensor, sizes)
    kept, kept_counts = run(CIRCLE_NMS, chosen, centers_f32, order, sizes, thresholds, size)
    return KeptBoxes(kept, kept_counts)


def circle_nms(centers: torch.Tensor, scores: torch.Tensor, thresh: float, *, post_max_size: int | None = 83,
               backend: str = "auto") -> torch.Tensor:
    """mmdet3d's ``circle_nms`` of one set of boxes: the (K,) int64 indices of the kept boxes,
    best first (see :func:`circle_nms_batched` for the rule and a batched form). On a GPU the
    result's length is read from the device (one sync, as ``torchvision.ops.nms``);
    :func:`circle_nms_batched` does not sync.

    Args:
        centers: (N, 2) float (x, y); mmdet3d passes ``dets[:, :2]``.
        scores: (N,) float; mmdet3d passes ``dets[:, 2]``. Either may be a nested Python
            list of numbers (made a tensor of the default float dtype).
        thresh: squared-distance threshold.
        post_max_size: keep at most this many (None: all).

    Example:
        >>> circle_nms(torch.tensor([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0]]), torch.tensor([0.7, 0.8, 0.9]), 1.0).tolist()
        [2, 1]
    """
    device = next((v.device for v in (centers, scores) if isinstance(v, torch.Tensor)), None)
    centers, scores = (python_tensor(v, name, device, floating=True) if is_numbers(v) else v
                       for v, name in ((centers, "centers"), (scores, "scores")))
    for name, value in (("centers", centers), ("scores", scores)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or a list of numbers; got {type(value).__name__} "
                            "(for per-sample lists of tensors, use circle_nms_batched)")
    if centers.dim() != 2 or centers.shape[1] != 2:
        raise ValueError(f"centers must be (N, 2), the (x, y) of each box (mmdet3d passes dets[:, :2]); got "
                         f"{tuple(centers.shape)}")
    if scores.dim() != 1 or scores.shape[0] != centers.shape[0]:
        raise ValueError(f"scores must be ({centers.shape[0]},), one score per center of centers "
                         f"{tuple(centers.shape)} (mmdet3d passes dets[:, 2]); got {tuple(scores.shape)}")
    count = torch.tensor([scores.shape[0]], device=scores.device)
    kept = circle_nms_batched(centers.unsqueeze(0), scores.unsqueeze(0), thresh, post_max_size=post_max_size,
                              counts=count, backend=backend)
    return kept.indices[0, : int(kept.counts[0])]

"""Circle NMS: mmdet3d's greedy ``circle_nms``, one call for a batch (:func:`circle_nms_batched`)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..checks import raise_first, resolve_validate
from ..dispatch import check_backend, route, run
from ..draw_plans import layout, planned, remember
from ..inputs import Field, batch_inputs, is_numbers, python_tensor
from ..ops._constants import device_constant
from ..ops.circle_nms import (CIRCLE_NMS, circle_nms_sorted_triton, float32_threshold, sorted_candidates,
                              sorted_candidates_triton, sorted_walk_fits)
from ..ragged import RaggedLike

NMS_FIELDS = (Field("scores", floating=True), Field("centers", (2,), floating=True))  # scores set S and counts


class KeptBoxes(NamedTuple):
    """Circle NMS of a batch: ``indices`` (S, P) int64, each sample's kept boxes (indices into
    its own boxes) best first, padded with -1; ``counts`` (S,) int64, how many were kept."""

    indices: torch.Tensor
    counts: torch.Tensor


def _threshold_tensor(thresh, num_samples: int, device: torch.device) -> torch.Tensor:
    """(S,) float32 thresholds on ``device`` of ``thresh`` (a number, or one per sample), each the largest
    float32 at most the given one (see :func:`~gaussdraw.ops.circle_nms.float32_threshold`), kept for
    the next call with the same ones."""
    thresholds = [thresh] * num_samples if isinstance(thresh, (int, float)) and not isinstance(thresh, bool) \
        else list(thresh)
    if len(thresholds) != num_samples or not all(isinstance(t, (int, float)) for t in thresholds):
        raise ValueError(f"thresh must be a number or one number per sample ({num_samples}); got {thresh!r}")
    return device_constant(tuple(float(t) for t in thresholds), torch.float32, device, float32_threshold)


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
    key, relaunch = planned(scores, validate, False, lambda: _layout_key(centers, scores, counts, thresh,
                                                                          post_max_size, backend))
    if relaunch is not None:  # a repeated unchecked CUDA call: the launch of an earlier one of its layout
        return _replay(relaunch, centers, scores, counts, post_max_size)
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
    thresholds = _threshold_tensor(thresh, num_samples, device)
    size = min(post_max_size, longest) if post_max_size is not None else longest
    chosen = route(backend, device)
    if chosen.use_triton and not chosen.traced and sorted_walk_fits(longest):  # one launch: sort and walk
        kept, kept_counts, relaunch = circle_nms_sorted_triton(score_tensor, center_tensor, sizes, thresholds, size,
                                                               bind=key is not None)
        remember(key, relaunch)
        return KeptBoxes(kept, kept_counts)
    centers_f32 = center_tensor.float().contiguous()
    if chosen.use_triton and not chosen.traced:  # eager Triton: the candidates' order by a kernel too
        order = sorted_candidates_triton(score_tensor.contiguous(), sizes)
    else:
        order = sorted_candidates(score_tensor, sizes)
    kept, kept_counts = run(CIRCLE_NMS, chosen, centers_f32, order, sizes, thresholds, size)
    return KeptBoxes(kept, kept_counts)


_NUMBER_TYPES = frozenset({float, int})


def _replay(relaunch, centers, scores, counts, post_max_size) -> KeptBoxes:
    """A call whose layout (:func:`_layout_key`) an earlier checked call had: its outputs, and the
    earlier call's launch repeated with this call's tensors."""
    num_samples, longest = scores.shape
    size = min(post_max_size, longest) if post_max_size is not None else longest
    kept = torch.empty((num_samples, size), dtype=torch.int64, device=scores.device)
    kept_counts = torch.empty(num_samples, dtype=torch.int64, device=scores.device)
    relaunch(kept, kept_counts, scores, centers, counts)
    return KeptBoxes(kept, kept_counts)


def _layout_key(centers, scores, counts, thresh, post_max_size, backend) -> tuple:
    """What a call's checks and launch read of its arguments (:mod:`gaussdraw.draw_plans`): the
    tensors' layouts and 16-byte alignment, the thresholds' values and the options; TypeError where
    an argument is not a plain tensor, a number or a list of numbers."""
    if type(thresh) is not float and type(thresh) is not int:
        if type(thresh) is not list and type(thresh) is not tuple:
            raise TypeError
        thresh = tuple(thresh)
        if not set(map(type, thresh)) <= _NUMBER_TYPES:
            raise TypeError
    return ("circle_nms", layout(centers), layout(scores), layout(counts), centers.data_ptr() % 16,
            scores.data_ptr() % 16, counts.data_ptr() % 16, thresh, post_max_size, backend)


def one_set_kept(batched, values: dict, columns: int, layout: str, item: str, score_note: str,
                 **options) -> torch.Tensor:
    """The (K,) kept indices of a one-set NMS call (``values``: {boxes' name: (N, ``columns``), "scores":
    (N,)}, either a tensor or a nested list of numbers): ``batched`` (``circle_nms_batched``,
    ``rotated_nms_batched``) on a batch of one, its length read from the device (one sync). The
    messages name ``layout`` (the columns), ``item`` (one row) and ``score_note`` (where scores come from)."""
    (name, boxes), (_, scores) = values.items()
    device = next((v.device for v in (boxes, scores) if isinstance(v, torch.Tensor)), None)
    boxes, scores = (python_tensor(v, key, device, floating=True) if is_numbers(v) else v for key, v in values.items())
    for key, value in ((name, boxes), ("scores", scores)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{key} must be a torch.Tensor or a list of numbers; got {type(value).__name__} "
                            f"(for per-sample lists of tensors, use {batched.__name__})")
    if boxes.dim() != 2 or boxes.shape[1] != columns:
        raise ValueError(f"{name} must be (N, {columns}), {layout}; got {tuple(boxes.shape)}")
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores must be ({boxes.shape[0]},), one score per {item} of {name} {tuple(boxes.shape)}"
                         f"{score_note}; got {tuple(scores.shape)}")
    count = device_constant((scores.shape[0],), torch.int64, scores.device)  # the same tensor each time
    kept = batched(boxes.unsqueeze(0), scores.unsqueeze(0), counts=count, **options)
    return kept.indices[0, : int(kept.counts[0])]


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
    return one_set_kept(circle_nms_batched, {"centers": centers, "scores": scores}, 2,
                        "the (x, y) of each box (mmdet3d passes dets[:, :2])", "center", " (mmdet3d passes dets[:, 2])",
                        thresh=thresh, post_max_size=post_max_size, backend=backend)

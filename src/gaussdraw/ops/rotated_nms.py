"""The rotated-NMS op: mmcv's ``nms_rotated`` (as mmdet3d's ``nms_bev`` calls it) for a batch of
problems: a pairwise suppression matrix, then a greedy walk.

Both implementations take each problem's boxes already in visiting order (:func:`stable_score_order`,
cut to ``pre_max_size``) as :func:`box_geometry` rows, computed once by torch for both, so that
their inputs are the same bits:

1. Every pair (i, j), i before j, gets its IoU from the two boxes' corners about the pair's
   midpoint. The intersection area is the boundary integral (Green's theorem) of the common
   region: each edge P->Q of one box, clipped to the other box's four half-planes (Cyrus-Beck),
   adds ``cross(P, Q - P) * (t1 - t0)``; the edges of the first box count where on the second's
   boundary, those of the second only where they run against the first's edge there (so a
   boundary the two share is counted once, and a touching one cancels). "On" has a tolerance:
   edges on one line in exact arithmetic (same angle and size, shifted along an edge) are not
   quite once their corners are rounded, and the tiny crosses of their ends with each other's
   line come with either sign, so both edges (or neither) would count: an IoU far off. An edge of
   the first box is on a line of the second where both its ends are within ``ON_LINE`` (2^-20 in
   float32, 2^-46 in float64) times the two boxes' reaches of it (|cross| <= tol * (|gx| + |gy|));
   an edge of the second box takes that same decision, computed with the same operations, for
   the edge of the first on its line (one decision for the pair, never two that could disagree).
   Lines nearer than that are taken as one (an area error under ~2^-20 of the reach times the
   edge). No branches, a fixed count of steps: vectorized over pairs in torch, one lane a pair
   in Triton, the same operations in the same order (Triton's compiled without fused
   multiply-adds, dividing with IEEE rounding), so both give the same bits. Identical boxes have IoU exactly 1.
2. j is suppressed by i where IoU >= the problem's threshold. The greedy walk over the ranks keeps
   a box unless a kept box suppresses it, until ``post_max_size`` are kept.

- Triton (:mod:`.kernels.rotated_nms`): one kernel fills a bit matrix (S, P, ceil(P / 64)) int64
  (one program = 8 ranks x 64 later ranks of one problem), a second walks it (one program per
  problem), as mmcv's CUDA kernel and host loop do, without the host.
- torch: the IoU matrix in row chunks, then a loop over ranks on (S, P) tensors.

Outputs: ``kept`` (S, K) int64 indices into each problem's own boxes in keeping order, padded with
-1, and ``counts`` (S,) int64.
"""

from __future__ import annotations

import torch

from ._nms_op import nms_implementations
from ._triton import cdiv, check_device, next_power_of_2

DEGENERATE_AREA = 1e-14  # mmcv: a box with w * h below this has IoU 0 with every box
WORD = 64  # suppression bits per int64 word
ROWS = 8  # ranks per program of the bit-matrix kernel (on a GPU; 64 in the interpreter: fewer programs)
PAIRS_PER_CHUNK = 1 << 15  # torch: pairs whose IoU is computed at once
# an edge is on another's line where both its ends are within ON_LINE * (the two reaches) of that line
# (a few times the rounding of the corners about the pair's midpoint: 8 float32 ulps, 64 float64 ulps)
ON_LINE = {torch.float32: 2.0**-20, torch.float64: 2.0**-46}


def stable_score_order(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(S, N) int64: each problem's box indices by descending score, equal scores by index (a
    stable descending ``torch.sort``; NaN first, as torch sorts it), entries past ``counts`` last."""
    position = torch.arange(scores.shape[1], device=scores.device)
    padded = scores.masked_fill(position >= counts.unsqueeze(1), float("-inf"))
    return torch.sort(padded, dim=1, descending=True, stable=True).indices


def box_geometry(boxes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(..., 8) ``dtype`` rows of (..., 5) boxes (x, y, w, h, angle): x, y, the offsets of corners 0
    and 1 from the center (corners 2 and 3 are their negatives), 1 where ``w * h`` is below 1e-14
    (else 0), and a reach: a little over the half diagonal (boxes whose reaches do not meet have
    IoU 0). As mmcv's ``get_rotated_vertices``: cos and sin in float64, then ``dtype``; corner 0
    is (-w/2, +h/2) rotated counter-clockwise by the angle, corner 1 (-w/2, -h/2)."""
    x, y, w, h = (boxes[..., k].to(dtype) for k in range(4))
    angle = boxes[..., 4].double()
    cos_half, sin_half = torch.cos(angle).to(dtype) * 0.5, torch.sin(angle).to(dtype) * 0.5
    first_x, first_y = -(sin_half * h) - cos_half * w, cos_half * h - sin_half * w
    second_x, second_y = sin_half * h - cos_half * w, -(cos_half * h) - sin_half * w
    degenerate = ((w * h) < DEGENERATE_AREA).to(dtype)
    reach = torch.maximum(first_x * first_x + first_y * first_y, second_x * second_x + second_y * second_y).sqrt()
    return torch.stack([x, y, first_x, first_y, second_x, second_y, degenerate, reach * 1.001], -1)


def far_apart(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(...) bool: pairs of :func:`box_geometry` rows whose reaches do not meet (IoU 0)."""
    return _beyond_reach(first[..., 0] - second[..., 0], first[..., 1] - second[..., 1], first[..., 7] + second[..., 7])


def _beyond_reach(dx, dy, reach):
    return (dx * dx + dy * dy) > reach * reach


# ----------------------------------------------------------------------------
# torch implementation (the kernels' twin, operation for operation)
# ----------------------------------------------------------------------------


def _corners(center_x, center_y, geometry):
    first_x, first_y, second_x, second_y = (geometry[..., k] for k in (2, 3, 4, 5))
    return [(center_x + first_x, center_y + first_y), (center_x + second_x, center_y + second_y),
            (center_x - first_x, center_y - first_y), (center_x - second_x, center_y - second_y)]


def _on_line(gx, gy, fp, fq, near):
    """Both ends of an edge on the line of direction (gx, gy), from their crosses ``fp``, ``fq``
    with it: each within ``near`` (|gx| + |gy| standing for |g|) of the line."""
    tol = (torch.abs(gx) + torch.abs(gy)) * near
    return (fp >= -tol) & (fp <= tol) & (fq >= -tol) & (fq <= tol)


def _inside_against(on, opposite, fp, fq):
    """Whether each end of an edge of the second box counts as inside a half-plane of the first: on the
    first box's edge line (``on``), where the two run opposite ways; else strictly inside, or exactly on
    the line running opposite."""
    return ((on & opposite) | (~on & ((fp > 0) | ((fp == 0) & opposite))),
            (on & opposite) | (~on & ((fq > 0) | ((fq == 0) & opposite))))


def _edge_part(start, end, polygon, near, against: bool):
    """Twice the signed area that edge ``start`` -> ``end`` adds: cross(P, Q - P) times the length
    (as a fraction) of its part inside ``polygon``'s half-planes. ``against``: a part on a
    half-plane's boundary line counts only where the two edges run opposite ways. An edge is on a
    line where both its ends are within ``near`` of it; for an edge of the second box, where the
    first box's edge is on its line (the same operations as the first pass): one decision for both."""
    (px, py), (qx, qy) = start, end
    ex, ey = qx - px, qy - py
    t0, t1 = torch.zeros_like(px), torch.ones_like(px)
    for m in range(4):
        (ax, ay), (bx, by) = polygon[m], polygon[(m + 1) % 4]
        gx, gy = bx - ax, by - ay
        fp = gx * (py - ay) - gy * (px - ax)
        fq = gx * (qy - ay) - gy * (qx - ax)
        if against:  # on the line where the polygon's edge A->B is on this edge's line (as the other pass sees it)
            on = _on_line(ex, ey, ex * (ay - py) - ey * (ax - px), ex * (by - py) - ey * (bx - px), near)
            inside_p, inside_q = _inside_against(on, (gx * ex + gy * ey) < 0, fp, fq)
        else:
            on = _on_line(gx, gy, fp, fq, near)
            inside_p, inside_q = on | (fp >= 0), on | (fq >= 0)
        t = fp / torch.where(inside_p != inside_q, fp - fq, torch.ones_like(fp))
        t0 = torch.where(~inside_p & inside_q, torch.maximum(t0, t), t0)
        t1 = torch.where(inside_p & ~inside_q, torch.minimum(t1, t), t1)
        t1 = torch.where(~inside_p & ~inside_q, -torch.ones_like(t1), t1)
    return (px * ey - py * ex) * torch.clamp(t1 - t0, min=0)


def pair_iou(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """IoU of broadcast pairs of :func:`box_geometry` rows (..., 8) -> (...)."""
    half_dx, half_dy = (first[..., 0] - second[..., 0]) * 0.5, (first[..., 1] - second[..., 1]) * 0.5
    polygon_a, polygon_b = _corners(half_dx, half_dy, first), _corners(-half_dx, -half_dy, second)
    near = (first[..., 7] + second[..., 7]) * ON_LINE[first.dtype]
    area_a = area_b = inter = None
    for k in range(4):
        (ax, ay), (anx, any_) = polygon_a[k], polygon_a[(k + 1) % 4]
        (bx, by), (bnx, bny) = polygon_b[k], polygon_b[(k + 1) % 4]
        part_a, part_b = ax * (any_ - ay) - ay * (anx - ax), bx * (bny - by) - by * (bnx - bx)
        area_a = part_a if area_a is None else area_a + part_a
        area_b = part_b if area_b is None else area_b + part_b
    for k in range(4):
        part = _edge_part(polygon_a[k], polygon_a[(k + 1) % 4], polygon_b, near, against=False)
        inter = part if inter is None else inter + part
    for k in range(4):
        inter = inter + _edge_part(polygon_b[k], polygon_b[(k + 1) % 4], polygon_a, near, against=True)
    inter = torch.clamp(inter, min=0)
    iou = inter / (area_a + area_b - inter)
    zero = ((first[..., 6] + second[..., 6]) > 0) | far_apart(first, second)
    return torch.where(zero, torch.zeros_like(iou), iou)


def suppression_matrix(geometry: torch.Tensor, counts: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """(S, P, P) bool: [s, i, j] where rank j (< counts[s]) comes after rank i and IoU >= threshold.
    The IoU is computed for the pairs whose reaches meet (read back: one sync), in chunks; it is 0
    for the others."""
    num_problems, longest, _ = geometry.shape
    ranks = torch.arange(longest, device=geometry.device)
    limit = thresholds.to(geometry.dtype)
    pairs = (ranks[None, :] > ranks[:, None]) & (ranks < counts[:, None])[:, None, :]
    x, y, reach = (geometry[..., k].contiguous() for k in (0, 1, 7))
    far = _beyond_reach(x[:, :, None] - x[:, None, :], y[:, :, None] - y[:, None, :],
                        reach[:, :, None] + reach[:, None, :])
    near = pairs & ~far
    suppress = pairs & (limit <= 0)[:, None, None]  # IoU 0 of the pairs far apart
    problem, row, col = near.nonzero(as_tuple=True)
    for start in range(0, problem.shape[0], PAIRS_PER_CHUNK):  # a loop over chunks, each a batch of pairs
        p, i, j = (index[start:start + PAIRS_PER_CHUNK] for index in (problem, row, col))
        suppress[p, i, j] = pair_iou(geometry[p, i], geometry[p, j]) >= limit[p]
    return suppress


def rotated_nms_torch(geometry, order, counts, thresholds, post_max_size: int):
    """(kept (S, K) int64, counts (S,) int64) of (S, P, 8) :func:`box_geometry` rows in visiting
    ``order`` (S, P) (the boxes' own indices), ``counts`` (S,) boxes per problem, ``thresholds``
    (S,) float32; K = ``post_max_size``."""
    num_problems, longest = order.shape
    counts = counts.clamp(0, longest)
    suppress = suppression_matrix(geometry, counts, thresholds)
    removed = torch.zeros((num_problems, longest), dtype=torch.bool, device=order.device)
    keep = torch.zeros_like(removed)
    valid = torch.arange(longest, device=order.device) < counts[:, None]
    on_cpu = order.device.type == "cpu"
    for rank in range(longest):  # the greedy walk, all problems at once
        if on_cpu and rank % 64 == 0 and rank and bool((keep.sum(1) >= post_max_size).all()):
            break  # every problem has its post_max_size boxes (checked where a check costs no sync)
        kept_now = valid[:, rank] & ~removed[:, rank]
        keep[:, rank] = kept_now
        removed |= suppress[:, rank] & kept_now[:, None]
    slot = torch.cumsum(keep.long(), 1) - 1
    taken = keep & (slot < post_max_size)
    kept = torch.full((num_problems, post_max_size + 1), -1, dtype=torch.int64, device=order.device)
    kept.scatter_(1, torch.where(taken, slot, post_max_size), torch.where(taken, order, -1))
    return kept[:, :post_max_size].contiguous(), taken.sum(1)


# ----------------------------------------------------------------------------
# Triton launch (the kernels: kernels/rotated_nms.py)
# ----------------------------------------------------------------------------


def rotated_nms_triton(geometry, order, counts, thresholds, post_max_size: int):
    """The Triton twin of :func:`rotated_nms_torch` (same arguments and outputs)."""
    check_device(geometry.device)
    num_problems, longest = order.shape
    kept = torch.empty((num_problems, post_max_size), dtype=torch.int64, device=order.device)
    kept_counts = torch.empty(num_problems, dtype=torch.int64, device=order.device)
    if num_problems == 0 or post_max_size == 0 or longest == 0:
        return kept.fill_(-1), kept_counts.zero_()
    from .kernels.rotated_nms import greedy_walk_kernel, suppression_bits_kernel
    from .launch import launch

    words = cdiv(longest, WORD)
    rows = ROWS if geometry.device.type == "cuda" else WORD
    bits = torch.empty((num_problems, longest, words), dtype=torch.int64, device=order.device)
    geometry, order = geometry.contiguous(), order.contiguous()
    launch(suppression_bits_kernel, (num_problems, cdiv(longest, rows), words), num_warps=8,
           compile_options={"enable_fp_fusion": False}, geometry_ptr=geometry, counts_ptr=counts,
           thresh_ptr=thresholds, bits_ptr=bits, longest=longest, words=words, ROWS=rows, WORD=WORD)
    launch(greedy_walk_kernel, (num_problems,), num_warps=1, bits_ptr=bits, order_ptr=order, counts_ptr=counts,
           kept_ptr=kept, kept_count_ptr=kept_counts, longest=longest, words=words, post_max_size=post_max_size,
           WORDS=max(16, next_power_of_2(words)), WORD=WORD, BLOCK=128)
    return kept, kept_counts


# ----------------------------------------------------------------------------
# torch.library registration
# ----------------------------------------------------------------------------


ROTATED_NMS = nms_implementations("rotated_nms", triton=rotated_nms_triton, torch_impl=rotated_nms_torch)
rotated_nms_op = ROTATED_NMS.registered

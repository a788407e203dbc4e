"""The rotated-NMS kernels: the pairwise suppression bits, and the greedy walk over them (one
program per problem); see :mod:`gaussdraw.ops.rotated_nms`, whose torch twin does the same
operations in the same order (compile without fused multiply-adds)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _divide(x, y):
    """x / y rounded to nearest (float32's plain division may be approximate on a GPU)."""
    if x.dtype == tl.float32:
        return tl.math.div_rn(x, y)
    else:
        return x / y


@triton.jit
def _on_line(gx, gy, fp, fq, near):
    """Both ends of an edge within ``near`` of the line of direction (gx, gy) (their crosses fp, fq)."""
    tol = (tl.abs(gx) + tl.abs(gy)) * near
    return (fp >= -tol) & (fp <= tol) & (fq >= -tol) & (fq <= tol)


@triton.jit
def _clip(t0, t1, px, py, qx, qy, ex, ey, ax, ay, bx, by, near, AGAINST: tl.constexpr):
    """Edge P->Q (direction (ex, ey)) clipped to the half-plane left of A->B: new (t0, t1). On the
    line: both ends within ``near`` of it; AGAINST (the second box's edges): where A->B is on P->Q's
    line, as the first pass computed it."""
    gx = bx - ax
    gy = by - ay
    fp = gx * (py - ay) - gy * (px - ax)
    fq = gx * (qy - ay) - gy * (qx - ax)
    if AGAINST:
        on = _on_line(ex, ey, ex * (ay - py) - ey * (ax - px), ex * (by - py) - ey * (bx - px), near)
        opposite = (gx * ex + gy * ey) < 0
        inside_p = (on & opposite) | (~on & ((fp > 0) | ((fp == 0) & opposite)))
        inside_q = (on & opposite) | (~on & ((fq > 0) | ((fq == 0) & opposite)))
    else:
        on = _on_line(gx, gy, fp, fq, near)
        inside_p = on | (fp >= 0)
        inside_q = on | (fq >= 0)
    t = _divide(fp, tl.where(inside_p != inside_q, fp - fq, 1.0))
    t0 = tl.where(~inside_p & inside_q, tl.maximum(t0, t), t0)
    t1 = tl.where(inside_p & ~inside_q, tl.minimum(t1, t), t1)
    t1 = tl.where(~inside_p & ~inside_q, -1.0, t1)
    return t0, t1


@triton.jit
def _edge_part(px, py, qx, qy, x0, y0, x1, y1, x2, y2, x3, y3, near, AGAINST: tl.constexpr):
    """Twice the signed area edge P->Q adds: cross(P, Q - P) times its part inside the quad."""
    ex = qx - px
    ey = qy - py
    t0 = tl.zeros_like(px)
    t1 = tl.zeros_like(px) + 1.0
    t0, t1 = _clip(t0, t1, px, py, qx, qy, ex, ey, x0, y0, x1, y1, near, AGAINST)
    t0, t1 = _clip(t0, t1, px, py, qx, qy, ex, ey, x1, y1, x2, y2, near, AGAINST)
    t0, t1 = _clip(t0, t1, px, py, qx, qy, ex, ey, x2, y2, x3, y3, near, AGAINST)
    t0, t1 = _clip(t0, t1, px, py, qx, qy, ex, ey, x3, y3, x0, y0, near, AGAINST)
    return (px * ey - py * ex) * tl.maximum(t1 - t0, 0.0)


@triton.jit
def _cross_next(px, py, qx, qy):
    return px * (qy - py) - py * (qx - px)


@triton.jit
def _far_apart(xa, ya, xb, yb, g_ptr_a, g_ptr_b, mask_a, mask_b):
    """Pairs whose reaches (slot 7 of the geometry rows) do not meet: IoU 0."""
    dx = xa - xb
    dy = ya - yb
    reach = tl.load(g_ptr_a + 7, mask=mask_a, other=0.0) + tl.load(g_ptr_b + 7, mask=mask_b, other=0.0)
    return (dx * dx + dy * dy) > reach * reach


@triton.jit
def _pair_iou(g_ptr_a, g_ptr_b, mask_a, mask_b, xa, ya, xb, yb, far):
    """IoU of the boxes whose geometry rows (8 values) start at the (broadcast) pointers; (xa, ya),
    (xb, yb) their centers and ``far`` :func:`_far_apart` of them."""
    half_dx = (xa - xb) * 0.5
    half_dy = (ya - yb) * 0.5
    fxa = tl.load(g_ptr_a + 2, mask=mask_a, other=0.0)
    fya = tl.load(g_ptr_a + 3, mask=mask_a, other=0.0)
    sxa = tl.load(g_ptr_a + 4, mask=mask_a, other=0.0)
    sya = tl.load(g_ptr_a + 5, mask=mask_a, other=0.0)
    fxb = tl.load(g_ptr_b + 2, mask=mask_b, other=0.0)
    fyb = tl.load(g_ptr_b + 3, mask=mask_b, other=0.0)
    sxb = tl.load(g_ptr_b + 4, mask=mask_b, other=0.0)
    syb = tl.load(g_ptr_b + 5, mask=mask_b, other=0.0)
    degenerate = tl.load(g_ptr_a + 6, mask=mask_a, other=1.0) + tl.load(g_ptr_b + 6, mask=mask_b, other=1.0)
    # corners: the center plus the offsets of corners 0 and 1, minus them for corners 2 and 3
    a0x = half_dx + fxa
    a0y = half_dy + fya
    a1x = half_dx + sxa
    a1y = half_dy + sya
    a2x = half_dx - fxa
    a2y = half_dy - fya
    a3x = half_dx - sxa
    a3y = half_dy - sya
    b0x = -half_dx + fxb
    b0y = -half_dy + fyb
    b1x = -half_dx + sxb
    b1y = -half_dy + syb
    b2x = -half_dx - fxb
    b2y = -half_dy - fyb
    b3x = -half_dx - sxb
    b3y = -half_dy - syb
    area_a = _cross_next(a0x, a0y, a1x, a1y) + _cross_next(a1x, a1y, a2x, a2y)
    area_a = area_a + _cross_next(a2x, a2y, a3x, a3y)
    area_a = area_a + _cross_next(a3x, a3y, a0x, a0y)
    area_b = _cross_next(b0x, b0y, b1x, b1y) + _cross_next(b1x, b1y, b2x, b2y)
    area_b = area_b + _cross_next(b2x, b2y, b3x, b3y)
    area_b = area_b + _cross_next(b3x, b3y, b0x, b0y)
    near = tl.load(g_ptr_a + 7, mask=mask_a, other=0.0) + tl.load(g_ptr_b + 7, mask=mask_b, other=0.0)
    if near.dtype == tl.float32:  # ON_LINE of the torch twin
        near = near * 9.5367431640625e-07
    else:
        near = near * 1.4210854715202004e-14
    inter = _edge_part(a0x, a0y, a1x, a1y, b0x, b0y, b1x, b1y, b2x, b2y, b3x, b3y, near, False)
    inter = inter + _edge_part(a1x, a1y, a2x, a2y, b0x, b0y, b1x, b1y, b2x, b2y, b3x, b3y, near, False)
    inter = inter + _edge_part(a2x, a2y, a3x, a3y, b0x, b0y, b1x, b1y, b2x, b2y, b3x, b3y, near, False)
    inter = inter + _edge_part(a3x, a3y, a0x, a0y, b0x, b0y, b1x, b1y, b2x, b2y, b3x, b3y, near, False)
    inter = inter + _edge_part(b0x, b0y, b1x, b1y, a0x, a0y, a1x, a1y, a2x, a2y, a3x, a3y, near, True)
    inter = inter + _edge_part(b1x, b1y, b2x, b2y, a0x, a0y, a1x, a1y, a2x, a2y, a3x, a3y, near, True)
    inter = inter + _edge_part(b2x, b2y, b3x, b3y, a0x, a0y, a1x, a1y, a2x, a2y, a3x, a3y, near, True)
    inter = inter + _edge_part(b3x, b3y, b0x, b0y, a0x, a0y, a1x, a1y, a2x, a2y, a3x, a3y, near, True)
    inter = tl.maximum(inter, 0.0)
    iou = _divide(inter, area_a + area_b - inter)
    return tl.where((degenerate > 0) | far, 0.0, iou)


@triton.jit
def suppression_bits_kernel(geometry_ptr, counts_ptr, thresh_ptr, bits_ptr, longest, words,
                            ROWS: tl.constexpr, WORD: tl.constexpr):
    """One program = ROWS ranks x WORD later ranks of one problem: bit c of word [s, i, w] is set
    where rank w * WORD + c (< count) comes after rank i and their IoU >= the threshold."""
    problem = tl.program_id(0).to(tl.int64)
    first_row = tl.program_id(1) * ROWS
    word = tl.program_id(2)
    n = tl.load(counts_ptr + problem)
    n = tl.minimum(tl.maximum(n, 0), longest)
    rows = first_row + tl.arange(0, ROWS)
    lanes = tl.arange(0, WORD)
    cols = word * WORD + lanes
    bits = tl.zeros((ROWS,), dtype=tl.int64)
    if (word * WORD + WORD - 1 > first_row) & (first_row < n):  # some later rank in this tile
        row_ok = rows < n
        col_ok = cols < n
        pairs = (cols[None, :] > rows[:, None]) & row_ok[:, None] & col_ok[None, :]
        p_rows = (geometry_ptr + (problem * longest + rows) * 8)[:, None]
        p_cols = (geometry_ptr + (problem * longest + cols) * 8)[None, :]
        xa = tl.load(p_rows, mask=row_ok[:, None], other=0.0)
        ya = tl.load(p_rows + 1, mask=row_ok[:, None], other=0.0)
        xb = tl.load(p_cols, mask=col_ok[None, :], other=0.0)
        yb = tl.load(p_cols + 1, mask=col_ok[None, :], other=0.0)
        far = _far_apart(xa, ya, xb, yb, p_rows, p_cols, row_ok[:, None], col_ok[None, :])
        limit = tl.load(thresh_ptr + problem).to(xa.dtype)
        suppress = pairs & (tl.zeros_like(xa) >= limit)  # IoU 0 of the pairs far apart
        if tl.max((pairs & ~far).to(tl.int32)) > 0:  # some pair near enough to overlap
            iou = _pair_iou(p_rows, p_cols, row_ok[:, None], col_ok[None, :], xa, ya, xb, yb, far)
            suppress = pairs & (iou >= limit)
        bits = tl.sum(suppress.to(tl.int64) << lanes[None, :].to(tl.int64), axis=1)  # disjoint bits: sum = or
    tl.store(bits_ptr + (problem * longest + rows) * words + word, bits, mask=rows < longest)


@triton.jit
def greedy_walk_kernel(bits_ptr, order_ptr, counts_ptr, kept_ptr, kept_count_ptr, longest, words, post_max_size,
                       WORDS: tl.constexpr, WORD: tl.constexpr, BLOCK: tl.constexpr):
    """One program = one problem: walk its ranks, keep a rank unless a kept one's bits remove it,
    until ``post_max_size`` are kept; write the kept boxes' own indices (``order``), then -1."""
    problem = tl.program_id(0).to(tl.int64)
    n = tl.load(counts_ptr + problem)
    n = tl.minimum(tl.maximum(n, 0), longest)
    lanes = tl.arange(0, WORDS)
    removed = tl.zeros((WORDS,), dtype=tl.int64)
    count = n * 0
    rank = n * 0
    while (rank < n) & (count < post_max_size):
        word = tl.sum(tl.where(lanes == rank // WORD, removed, 0), axis=0)
        keep = ((word >> (rank % WORD)) & 1) == 0
        wanted = (lanes < words) & (lanes * 0 + keep.to(tl.int32) > 0)
        row = tl.load(bits_ptr + (problem * longest + rank) * words + lanes, mask=wanted, other=0)
        removed = removed | row
        box = tl.load(order_ptr + problem * longest + rank)
        tl.store(kept_ptr + problem * post_max_size + count, box, mask=keep)
        count = count + keep.to(count.dtype)
        rank = rank + 1
    tl.store(kept_count_ptr + problem, count)
    fill = tl.arange(0, BLOCK)
    for first in range(count, post_max_size, BLOCK):  # the rest of the row: -1
        tl.store(kept_ptr + problem * post_max_size + first + fill, -1, mask=first + fill < post_max_size)

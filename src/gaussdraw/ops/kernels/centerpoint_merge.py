"""The CenterPoint merge kernel (see :mod:`gaussdraw.ops.centerpoint_merge`)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def centerpoint_merge_kernel(boxes_ptr, scores_ptr, labels_ptr, kept_ptr, kept_counts_ptr,
                             out_boxes_ptr, out_scores_ptr, out_labels_ptr, out_counts_ptr, candidates, kept_width,
                             TASKS: tl.constexpr, BLOCK_T: tl.constexpr, COLUMNS: tl.constexpr,
                             BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    # one program = one task of one sample: its kept boxes to their rows, and the padding rows of its
    # row range [task * kept_width, (task + 1) * kept_width) that lie past the sample's count
    task = tl.program_id(0)
    sample = tl.program_id(1).to(tl.int64)
    problem = sample * TASKS + task
    o_t = tl.arange(0, BLOCK_T)
    task_counts = tl.load(kept_counts_ptr + sample * TASKS + o_t, mask=o_t < TASKS, other=0)
    start = tl.sum(tl.where(o_t < task, task_counts, 0), axis=0)
    total = tl.sum(task_counts, axis=0)
    count = tl.load(kept_counts_ptr + problem)
    o_c = tl.arange(0, BLOCK_C)
    m_c = o_c < COLUMNS
    out_base = sample * TASKS * kept_width
    for first in range(0, kept_width, BLOCK_P):
        o_p = first + tl.arange(0, BLOCK_P)
        m_kept = o_p < count
        cand = tl.load(kept_ptr + problem * kept_width + o_p, mask=m_kept, other=0)
        p_box = boxes_ptr + (problem * candidates + cand) * COLUMNS
        b_box = tl.load(p_box[:, None] + o_c[None, :], mask=m_kept[:, None] & m_c[None, :], other=0.0)
        z = tl.load(p_box + 2, mask=m_kept, other=0.0)
        dz = tl.load(p_box + 5, mask=m_kept, other=0.0)
        b_box = tl.where(o_c[None, :] == 2, (z - dz * 0.5)[:, None], b_box)  # the bottom center
        row = out_base + start + o_p
        tl.store(out_boxes_ptr + row[:, None] * COLUMNS + o_c[None, :], b_box, mask=m_kept[:, None] & m_c[None, :])
        tl.store(out_scores_ptr + row, tl.load(scores_ptr + problem * candidates + cand, mask=m_kept), mask=m_kept)
        tl.store(out_labels_ptr + row, tl.load(labels_ptr + problem * candidates + cand, mask=m_kept), mask=m_kept)
        padding = task * kept_width + o_p
        m_pad = (o_p < kept_width) & (padding >= total)
        tl.store(out_boxes_ptr + (out_base + padding)[:, None] * COLUMNS + o_c[None, :],
                 tl.zeros((BLOCK_P, BLOCK_C), dtype=out_boxes_ptr.dtype.element_ty), mask=m_pad[:, None] & m_c[None, :])
        tl.store(out_scores_ptr + out_base + padding, tl.zeros((BLOCK_P,), dtype=out_scores_ptr.dtype.element_ty),
                 mask=m_pad)
        tl.store(out_labels_ptr + out_base + padding, tl.full((BLOCK_P,), -1, dtype=tl.int64), mask=m_pad)
    if task == 0:
        tl.store(out_counts_ptr + sample, total.to(tl.int64))

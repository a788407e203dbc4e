"""The CenterNet box kernel (see :mod:`gaussdraw.ops.centernet_boxes`)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def centernet_boxes_kernel(wh_ptr, offset_ptr, indices_ptr, out_ptr, k, plane, width, ratio_x, ratio_y,
                           BLOCK: tl.constexpr):
    # one program = BLOCK peaks of one sample: gather size and offset at each, write its box
    sample = tl.program_id(1).to(tl.int64)
    o_peak = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m_peak = o_peak < k
    pixel = tl.load(indices_ptr + sample * k + o_peak, mask=m_peak, other=0)
    base = sample * 2 * plane + pixel
    w = tl.load(wh_ptr + base, mask=m_peak, other=0.0)
    h = tl.load(wh_ptr + base + plane, mask=m_peak, other=0.0)
    xs = (pixel % width).to(tl.float32) + tl.load(offset_ptr + base, mask=m_peak, other=0.0)
    ys = (pixel // width).to(tl.float32) + tl.load(offset_ptr + base + plane, mask=m_peak, other=0.0)
    half_w = w * 0.5  # = w / 2 exactly (mmdet's division), never an approximate divide
    half_h = h * 0.5  # ratio_x, ratio_y: float32 arguments, mmdet's float32 products
    p_out = out_ptr + (sample * k + o_peak) * 4
    tl.store(p_out, (xs - half_w) * ratio_x, mask=m_peak)
    tl.store(p_out + 1, (ys - half_h) * ratio_y, mask=m_peak)
    tl.store(p_out + 2, (xs + half_w) * ratio_x, mask=m_peak)
    tl.store(p_out + 3, (ys + half_h) * ratio_y, mask=m_peak)

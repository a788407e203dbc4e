"""The keypoint-decode kernels (see :mod:`gaussdraw.ops.keypoint_decode`): the maximum pass and the
DARK step, each vectorised over MAPS maps (a power of 2) a program.

1. :func:`keypoint_maximum_kernel`: each program reads its maps once, in chunks of BLOCK pixels;
   each lane keeps its largest value and where it first saw it (later chunks replace it only when
   strictly larger), so the lane-wise minimum position among the lanes holding the maximum is the
   first maximum in row-major order. It writes the scores and the locations, moved by the shift
   refinement (the four neighbours) or by the DARK step (REFINE 2, 3: fused);
2. :func:`keypoint_step_kernel`: the DARK / DARK-UDP step of MAPS keypoints a program after the
   maximum pass (its scores and integer locations), in place;
3. the step (:func:`_offsets`): the blurred values of the stencil's pixels from the window of
   KSIZE + 4 rows and columns around the peak (zero outside the map, as mmpose's padding): each
   window row, one load, is added into the vertical blurs of the five rows y - 2 ... y + 2 in
   registers, then each stencil pixel is one weighted sum across the window's columns;
4. the rescale to the map's maximum cancels in the step unless a clamp bites at some stencil pixels
   and not at others (:func:`_rescale_cancels`); only then the map is blurred whole for its blurred
   maximum (small tiles, exact, slow; a loop over the program's keypoints that need it).
"""

from __future__ import annotations

import triton
import triton.language as tl

DARK_LOW = tl.constexpr(1e-10)  # refine_keypoints_dark's clamp
UDP_LOW = tl.constexpr(1e-3)  # refine_keypoints_dark_udp's clip
UDP_HIGH = tl.constexpr(50.0)


@triton.jit
def _first_maxima(bases, size, rows_ok, MAPS: tl.constexpr, BLOCK: tl.constexpr):
    """(MAPS,) values in the maps' dtype and flat positions of the first maximum of each map of ``size``
    pixels at ``bases`` (MAPS, 1) where ``rows_ok`` (MAPS, 1)."""
    lanes = tl.arange(0, BLOCK)[None, :]
    best = tl.load(bases + lanes, mask=rows_ok & (lanes < size), other=float("-inf"))
    best_at = tl.zeros((MAPS, BLOCK), tl.int32) + lanes
    for start in range(BLOCK, size, BLOCK):
        at = start + lanes
        values = tl.load(bases + at, mask=rows_ok & (at < size), other=float("-inf"))
        better = values > best
        best = tl.where(better, values, best)
        best_at = tl.where(better, at, best_at)
    maximum = tl.max(best, axis=1)
    return maximum, tl.min(tl.where(best == maximum[:, None], best_at, size), axis=1)


@triton.jit
def _vertical(total, pixels, weights_ptr, ROW: tl.constexpr, DY: tl.constexpr, KSIZE: tl.constexpr):
    """``total`` plus window row ROW times its weight in the blur at map row y + DY (if it has one)."""
    if ROW - DY - 2 >= 0:
        if ROW - DY - 2 < KSIZE:
            total = total + tl.load(weights_ptr + (ROW - DY - 2)) * pixels
    return total


@triton.jit
def _column_blurs(bases, x, y, loading, height, width, weights_ptr, KSIZE: tl.constexpr, REGION: tl.constexpr,
                  MAPS: tl.constexpr):
    """Five (MAPS, REGION) float32: the window's columns (map columns x - 2 - KSIZE // 2 + j, j < KSIZE + 4)
    blurred vertically at map rows y - 2 ... y + 2; the map is zero outside (mmpose's padding) and
    where not ``loading``. One row of the window a load, each added to the blurs it reaches, in
    registers (no reduction across lanes)."""
    region = tl.arange(0, REGION)[None, :]
    cols = (x - 2 - KSIZE // 2)[:, None] + region
    col_ok = loading[:, None] & (cols >= 0) & (cols < width) & (region < KSIZE + 4)
    up2 = tl.zeros((MAPS, REGION), tl.float32)
    up1 = tl.zeros((MAPS, REGION), tl.float32)
    mid = tl.zeros((MAPS, REGION), tl.float32)
    down1 = tl.zeros((MAPS, REGION), tl.float32)
    down2 = tl.zeros((MAPS, REGION), tl.float32)
    for r in tl.static_range(KSIZE + 4):
        row = (y - 2 - KSIZE // 2 + r)[:, None]
        pixels = tl.load(bases[:, None] + row * width + cols, mask=col_ok & (row >= 0) & (row < height),
                         other=0.0).to(tl.float32)
        up2 = _vertical(up2, pixels, weights_ptr, r, -2, KSIZE)
        up1 = _vertical(up1, pixels, weights_ptr, r, -1, KSIZE)
        mid = _vertical(mid, pixels, weights_ptr, r, 0, KSIZE)
        down1 = _vertical(down1, pixels, weights_ptr, r, 1, KSIZE)
        down2 = _vertical(down2, pixels, weights_ptr, r, 2, KSIZE)
    return up2, up1, mid, down1, down2


@triton.jit
def _band(weights_ptr, OFFSET: tl.constexpr, KSIZE: tl.constexpr, REGION: tl.constexpr):
    """(REGION,) the blur's weights placed for window index i = OFFSET + 2 + tap, zero elsewhere."""
    tap = tl.arange(0, REGION) - (OFFSET + 2)
    return tl.load(weights_ptr + tap, mask=(tap >= 0) & (tap < KSIZE), other=0.0)


@triton.jit
def _blurred(column, weights_ptr, DX: tl.constexpr, KSIZE: tl.constexpr, REGION: tl.constexpr):
    """(MAPS,): the blur at map column x + DX of the row whose vertical blurs ``column`` holds."""
    return tl.sum(column * _band(weights_ptr, DX, KSIZE, REGION)[None, :], axis=1)


@triton.jit
def _blurred_maximum(base, weights_ptr, height, width, KSIZE: tl.constexpr, TILE_W: tl.constexpr):
    """The maximum of the whole blurred map (before the rescale): tiles of 16 x TILE_W, direct sums."""
    radius = KSIZE // 2
    rows0 = tl.arange(0, 16)[:, None]
    cols0 = tl.arange(0, TILE_W)[None, :]
    best = tl.full((16, TILE_W), float("-inf"), tl.float32)
    for top in range(0, height, 16):
        for left in range(0, width, TILE_W):
            rows, cols = top + rows0, left + cols0
            total = tl.zeros((16, TILE_W), tl.float32)
            for i in range(KSIZE):
                along_row = tl.zeros((16, TILE_W), tl.float32)
                r = rows + i - radius
                for j in range(KSIZE):
                    c = cols + j - radius
                    pixels = tl.load(base + r * width + c, mask=(r >= 0) & (r < height) & (c >= 0) & (c < width),
                                     other=0.0).to(tl.float32)
                    along_row += tl.load(weights_ptr + j) * pixels
                total += tl.load(weights_ptr + i) * along_row
            best = tl.maximum(best, tl.where((rows < height) & (cols < width), total, float("-inf")))
    return tl.max(tl.max(best, axis=1), axis=0)


@triton.jit
def _rescale(heat_ptr, weights_ptr, plane, maximum, needed, height, width, size, KSIZE: tl.constexpr,
             TILE_W: tl.constexpr, MAPS: tl.constexpr):
    """(MAPS,) maximum / the blurred map's maximum where ``needed``, else 1: the whole map blurred, one
    keypoint at a time, only where some keypoint of the program needs it."""
    scale = tl.zeros((MAPS,), tl.float32) + 1.0
    if tl.max(needed.to(tl.int32), axis=0) > 0:
        lanes = tl.arange(0, MAPS)
        for i in range(MAPS):
            pick = lanes == i
            if tl.max((pick & needed).to(tl.int32), axis=0) > 0:
                plane_i = tl.sum(tl.where(pick, plane, 0), axis=0)
                blurred = _blurred_maximum(heat_ptr + plane_i * size, weights_ptr, height, width, KSIZE, TILE_W)
                scale = tl.where(pick, maximum / blurred, scale)
    return scale


@triton.jit
def _rescale_cancels(smallest, largest, maximum, low, high):
    """Whether the step is the same for every rescale s = maximum / (blurred map's maximum), as when
    s = 1: no clamp bites at the stencil's pixels (their smallest blurred value above ``low``, with
    s >= 1, and the maximum, the largest rescaled value, below ``high``), or it bites at every pixel
    (the maximum below ``low``, with a positive blurred value: every rescaled value <= the maximum).
    Margins of 1e-4 cover float32 sums."""
    no_clamp = (smallest > low * 1.0001) & (maximum < high * 0.9999)
    return no_clamp | ((largest > 0) & (maximum < low * 0.9999))


@triton.jit
def _clamped_log(value, scale, low, high):
    scaled = value * scale
    return tl.log(tl.where(scaled < low, low, tl.where(scaled > high, high, scaled)))


@triton.jit
def _dark_offsets(heat_ptr, weights_ptr, plane, x, y, maximum, valid, height, width, size, KSIZE: tl.constexpr,
                  REGION: tl.constexpr, TILE_W: tl.constexpr, MAPS: tl.constexpr):
    """(offset x, offset y) (MAPS,) of refine_keypoints_dark: 5-point derivatives of the log at interior
    peaks (1 < x < W - 2, 1 < y < H - 2); zeros where the Hessian's determinant is 0."""
    refining = valid & (x > 1) & (x < width - 2) & (y > 1) & (y < height - 2)
    up2, up1, mid, down1, down2 = _column_blurs(heat_ptr + plane * size, x, y, refining, height, width,
                                                weights_ptr, KSIZE, REGION, MAPS)
    c = _blurred(mid, weights_ptr, 0, KSIZE, REGION)
    l1 = _blurred(mid, weights_ptr, -1, KSIZE, REGION)
    r1 = _blurred(mid, weights_ptr, 1, KSIZE, REGION)
    l2 = _blurred(mid, weights_ptr, -2, KSIZE, REGION)
    r2 = _blurred(mid, weights_ptr, 2, KSIZE, REGION)
    u1 = _blurred(up1, weights_ptr, 0, KSIZE, REGION)
    d1 = _blurred(down1, weights_ptr, 0, KSIZE, REGION)
    u2 = _blurred(up2, weights_ptr, 0, KSIZE, REGION)
    d2 = _blurred(down2, weights_ptr, 0, KSIZE, REGION)
    ul = _blurred(up1, weights_ptr, -1, KSIZE, REGION)
    dl = _blurred(down1, weights_ptr, -1, KSIZE, REGION)
    ur = _blurred(up1, weights_ptr, 1, KSIZE, REGION)
    dr = _blurred(down1, weights_ptr, 1, KSIZE, REGION)
    smallest = tl.minimum(tl.minimum(tl.minimum(tl.minimum(c, l1), tl.minimum(r1, l2)),
                                     tl.minimum(tl.minimum(r2, u1), tl.minimum(d1, u2))),
                          tl.minimum(tl.minimum(tl.minimum(d2, ul), tl.minimum(dl, ur)), dr))
    largest = tl.maximum(tl.maximum(tl.maximum(tl.maximum(c, l1), tl.maximum(r1, l2)),
                                    tl.maximum(tl.maximum(r2, u1), tl.maximum(d1, u2))),
                         tl.maximum(tl.maximum(tl.maximum(d2, ul), tl.maximum(dl, ur)), dr))
    exact = _rescale_cancels(smallest, largest, maximum, DARK_LOW, float("inf"))
    scale = _rescale(heat_ptr, weights_ptr, plane, maximum, refining & ~exact, height, width, size, KSIZE, TILE_W,
                     MAPS)
    high = float("inf")
    lc = _clamped_log(c, scale, DARK_LOW, high)
    dx = 0.5 * (_clamped_log(r1, scale, DARK_LOW, high) - _clamped_log(l1, scale, DARK_LOW, high))
    dy = 0.5 * (_clamped_log(d1, scale, DARK_LOW, high) - _clamped_log(u1, scale, DARK_LOW, high))
    dxx = 0.25 * (_clamped_log(r2, scale, DARK_LOW, high) - 2 * lc + _clamped_log(l2, scale, DARK_LOW, high))
    dxy = 0.25 * (_clamped_log(dr, scale, DARK_LOW, high) - _clamped_log(ur, scale, DARK_LOW, high)
                  - _clamped_log(dl, scale, DARK_LOW, high) + _clamped_log(ul, scale, DARK_LOW, high))
    dyy = 0.25 * (_clamped_log(d2, scale, DARK_LOW, high) - 2 * lc + _clamped_log(u2, scale, DARK_LOW, high))
    det = dxx * dyy - dxy * dxy
    stepping = refining & (det != 0)
    det = tl.where(stepping, det, 1.0)
    return (tl.where(stepping, -(dyy * dx - dxy * dy) / det, 0.0),
            tl.where(stepping, -(dxx * dy - dxy * dx) / det, 0.0))


@triton.jit
def _udp_offsets(heat_ptr, weights_ptr, plane, x, y, maximum, valid, height, width, size, udp_eps,
                 KSIZE: tl.constexpr, REGION: tl.constexpr, TILE_W: tl.constexpr, MAPS: tl.constexpr):
    """(offset x, offset y) (MAPS,) of refine_keypoints_dark_udp: a 3 x 3 stencil, edge-replicated (a
    neighbour outside the map is the pixel on the border; along an axis of one pixel the terms cancel
    exactly), a Newton step with Hessian + eps * I (non-finite where singular)."""
    up2, up1, mid, down1, down2 = _column_blurs(heat_ptr + plane * size, x, y, valid, height, width, weights_ptr,
                                                KSIZE, REGION, MAPS)  # the rows y +- 2 unused: left out
    c = _blurred(mid, weights_ptr, 0, KSIZE, REGION)
    left = tl.where(x > 0, _blurred(mid, weights_ptr, -1, KSIZE, REGION), c)
    right = tl.where(x < width - 1, _blurred(mid, weights_ptr, 1, KSIZE, REGION), c)
    up = tl.where(y > 0, _blurred(up1, weights_ptr, 0, KSIZE, REGION), c)
    down = tl.where(y < height - 1, _blurred(down1, weights_ptr, 0, KSIZE, REGION), c)
    up_left = tl.where(y > 0, tl.where(x > 0, _blurred(up1, weights_ptr, -1, KSIZE, REGION), up), left)
    down_right = tl.where(y < height - 1, tl.where(x < width - 1, _blurred(down1, weights_ptr, 1, KSIZE, REGION),
                                                   down), right)
    smallest = tl.minimum(tl.minimum(tl.minimum(c, left), tl.minimum(right, up)),
                          tl.minimum(tl.minimum(down, up_left), down_right))
    largest = tl.maximum(tl.maximum(tl.maximum(c, left), tl.maximum(right, up)),
                         tl.maximum(tl.maximum(down, up_left), down_right))
    exact = _rescale_cancels(smallest, largest, maximum, UDP_LOW, UDP_HIGH)
    scale = _rescale(heat_ptr, weights_ptr, plane, maximum, valid & ~exact, height, width, size, KSIZE, TILE_W, MAPS)
    lc = _clamped_log(c, scale, UDP_LOW, UDP_HIGH)
    ll, lr = _clamped_log(left, scale, UDP_LOW, UDP_HIGH), _clamped_log(right, scale, UDP_LOW, UDP_HIGH)
    lu, ld = _clamped_log(up, scale, UDP_LOW, UDP_HIGH), _clamped_log(down, scale, UDP_LOW, UDP_HIGH)
    dx, dy = 0.5 * (lr - ll), 0.5 * (ld - lu)
    dxx = lr - 2 * lc + ll + udp_eps
    dyy = ld - 2 * lc + lu + udp_eps
    # mmpose's cross term: (x+1, y+1) - (x+1) - (y+1) + 2 (x, y) - (x-1) - (y-1) + (x-1, y-1)
    dxy = 0.5 * ((_clamped_log(down_right, scale, UDP_LOW, UDP_HIGH) - ld) - (lr - lc)
                 + (_clamped_log(up_left, scale, UDP_LOW, UDP_HIGH) - ll) - (lu - lc))
    det = dxx * dyy - dxy * dxy
    return (tl.where(valid, -(dyy * dx - dxy * dy) / det, 0.0), tl.where(valid, -(dxx * dy - dxy * dx) / det, 0.0))


@triton.jit
def _offsets(heat_ptr, weights_ptr, plane, x, y, maximum, valid, height, width, size, udp_eps, REFINE: tl.constexpr,
             KSIZE: tl.constexpr, REGION: tl.constexpr, TILE_W: tl.constexpr, MAPS: tl.constexpr):
    """(offset x, offset y) (MAPS,) float32 of the DARK (REFINE 2) or DARK-UDP (3) step."""
    if REFINE == 2:
        offset_x, offset_y = _dark_offsets(heat_ptr, weights_ptr, plane, x, y, maximum, valid, height, width, size,
                                           KSIZE, REGION, TILE_W, MAPS)
    else:
        offset_x, offset_y = _udp_offsets(heat_ptr, weights_ptr, plane, x, y, maximum, valid, height, width, size,
                                          udp_eps, KSIZE, REGION, TILE_W, MAPS)
    return offset_x, offset_y


@triton.jit
def keypoint_maximum_kernel(heat_ptr, weights_ptr, keypoints_ptr, scores_ptr, maps, height, width, size, udp_eps,
                            REFINE: tl.constexpr, KSIZE: tl.constexpr, REGION: tl.constexpr, TILE_W: tl.constexpr,
                            MAPS: tl.constexpr, BLOCK: tl.constexpr):
    """Scores and locations of MAPS maps a program; REFINE 1: shifted; 2, 3: the DARK step fused."""
    plane = tl.program_id(0).to(tl.int64) * MAPS + tl.arange(0, MAPS)
    plane_ok = plane < maps
    maximum, flat = _first_maxima(heat_ptr + plane[:, None] * size, size, plane_ok[:, None], MAPS, BLOCK)
    tl.store(scores_ptr + plane, maximum, mask=plane_ok)
    x, y = flat % width, flat // width
    valid = plane_ok & (maximum > 0)
    offset_x = tl.zeros((MAPS,), tl.float32)
    offset_y = tl.zeros((MAPS,), tl.float32)
    if REFINE == 1:  # shift: a quarter pixel toward the larger neighbour, mmpose's bounds
        at = heat_ptr + plane * size + flat
        left = tl.load(at - 1, mask=valid & (x > 0), other=0.0)
        right = tl.load(at + 1, mask=valid & (x < width - 1), other=0.0)
        up = tl.load(at - width, mask=valid & (y > 0), other=0.0)
        down = tl.load(at + width, mask=valid & (y < height - 1), other=0.0)
        step_x = tl.where(right > left, 0.25, tl.where(right < left, -0.25, 0.0))
        step_y = tl.where(down > up, 0.25, tl.where(down < up, -0.25, 0.0))
        offset_x = tl.where((x > 1) & (x < width - 1) & (y > 0), step_x, 0.0)
        offset_y = tl.where((y > 1) & (y < height - 1) & (x > 0), step_y, 0.0)
    if REFINE >= 2:
        offset_x, offset_y = _offsets(heat_ptr, weights_ptr, plane, x, y, maximum.to(tl.float32), valid, height,
                                      width, size, udp_eps, REFINE, KSIZE, REGION, TILE_W, MAPS)
    tl.store(keypoints_ptr + plane * 2, tl.where(valid, x.to(tl.float32) + offset_x, -1.0), mask=plane_ok)
    tl.store(keypoints_ptr + plane * 2 + 1, tl.where(valid, y.to(tl.float32) + offset_y, -1.0), mask=plane_ok)


@triton.jit
def keypoint_step_kernel(heat_ptr, weights_ptr, keypoints_ptr, scores_ptr, maps, height, width, size, udp_eps,
                         REFINE: tl.constexpr, KSIZE: tl.constexpr, REGION: tl.constexpr, TILE_W: tl.constexpr,
                         MAPS: tl.constexpr):
    """The DARK (REFINE 2) or DARK-UDP (3) step of MAPS keypoints a program, after the maximum pass:
    reads their scores and integer locations, adds the offsets in place."""
    plane = tl.program_id(0).to(tl.int64) * MAPS + tl.arange(0, MAPS)
    plane_ok = plane < maps
    score = tl.load(scores_ptr + plane, mask=plane_ok, other=0.0)
    valid = plane_ok & (score > 0)
    maximum = score.to(tl.float32)
    keypoint_x = tl.load(keypoints_ptr + plane * 2, mask=valid, other=0.0)
    keypoint_y = tl.load(keypoints_ptr + plane * 2 + 1, mask=valid, other=0.0)
    offset_x, offset_y = _offsets(heat_ptr, weights_ptr, plane, keypoint_x.to(tl.int32), keypoint_y.to(tl.int32),
                                  maximum, valid, height, width, size, udp_eps, REFINE, KSIZE, REGION, TILE_W, MAPS)
    tl.store(keypoints_ptr + plane * 2, keypoint_x + offset_x, mask=valid)
    tl.store(keypoints_ptr + plane * 2 + 1, keypoint_y + offset_y, mask=valid)

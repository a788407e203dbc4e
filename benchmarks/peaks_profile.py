"""Where heatmap_peaks' GPU time goes on the CenterNet shape: each stage of the tile-bound path
(ops/peaks.py) alone, CUDA-graph replay, for a few tile shapes and warp counts."""

import torch

from gaussdraw.bench.decode import peak_inputs
from gaussdraw.bench.timing import graph_time
from gaussdraw.ops import peaks

heat = peak_inputs((32, 80, 128, 128), "cuda")
k, kernel = 100, 3
batch, classes, height, width = heat.shape


def stages():
    tiles_w = -(-width // peaks.BLOCK_W)
    per_plane = -(-height // peaks.BLOCK_H) * tiles_w
    tile_max = torch.empty((batch, classes * per_plane), dtype=torch.int32, device="cuda")
    grid = (per_plane, batch * classes)
    shape = dict(KERNEL=kernel, BLOCK_H=peaks.BLOCK_H, BLOCK_W=peaks.BLOCK_W)
    capacity = min(classes * height * width, max(peaks.CAPACITY[0] * k, peaks.CAPACITY[1]))
    candidates = torch.empty((batch, capacity), dtype=torch.int64, device="cuda")
    count = torch.zeros(batch, dtype=torch.int32, device="cuda")
    best = torch.empty((batch, 128), dtype=torch.int64, device="cuda")
    tiles = lambda: peaks._launch_tiles(grid, (heat, tile_max, classes, height, width, tiles_w, per_plane), shape,  # noqa: E731
                                        num_warps=peaks.WARPS)
    tiles()
    bound = torch.topk(tile_max, k, dim=1).values[:, -1].contiguous()
    cands = lambda: (count.zero_(), peaks._launch_candidates(  # noqa: E731
        grid, (heat, tile_max, bound, candidates, count, classes, height, width, tiles_w, per_plane, capacity), shape,
        num_warps=peaks.WARPS))
    cands()
    print(f"  candidates per sample: {count.tolist()[:8]} ...")
    select = lambda: peaks._launch_select((batch,), (heat, candidates, count, best, classes, height, width, capacity),  # noqa: E731
                                          dict(KERNEL=kernel, KEEP=128, CHUNK=max(peaks.CHUNK, 256)), num_warps=8)
    for name, fn in (("tile maxima", tiles), ("top-k of tile maxima", lambda: torch.topk(tile_max, k, dim=1)),
                     ("candidates (with its count reset)", cands), ("select", select),
                     ("whole heatmap_peaks", lambda: peaks.peak_keys_triton(heat, k, kernel))):
        print(f"  {name}: {graph_time(fn) * 1e6:.1f} us", flush=True)


for block_h, block_w, warps in ((8, 128, 4), (16, 64, 4), (8, 64, 4), (32, 32, 4), (16, 64, 8)):
    peaks.BLOCK_H, peaks.BLOCK_W, peaks.WARPS = block_h, block_w, warps
    print(f"tile {block_h}x{block_w}, {warps} warps:")
    stages()

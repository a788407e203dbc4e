"""CPU keypoint encoder against mmpose's per-sample loop, 2 torch threads (the data-loader case).

For each config of ``gaussdraw bench --keypoints`` (COCO, WholeBody; one instance per sample)
and each method (msra, udp, dark): interleaved rounds, each timing gaussdraw's
``keypoint_heatmaps`` (torch backend, CPU tensors, validate=False as the bench) and mmpose
1.3.2's own NumPy encoder looped over the batch, one after the other; prints the medians and
the ratio (mmpose ÷ gaussdraw) of each round's pair, median and min–max. On a shared machine
compare ratios, not times.

    PYTHONPATH=src python benchmarks/keypoints_cpu.py [--rounds 7] [--threads 2] [--configs coco wholebody]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gaussdraw.bench.keypoints import KEYPOINT_CONFIGS, keypoint_inputs, mmpose_encoder
from gaussdraw.keypoints import keypoint_heatmaps
from gaussdraw.ops.keypoint_heatmaps import METHODS


def _seconds(fn, calls: int) -> float:
    """Mean seconds of ``calls`` calls of ``fn``."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(config, method: str, rounds: int) -> dict:
    keypoints, visible = keypoint_inputs(config)
    counts = torch.full((config.samples,), config.instances)
    size = (config.width, config.height)
    encode = mmpose_encoder(method)
    points, flags = keypoints.numpy(), visible.numpy()

    def ours():
        return keypoint_heatmaps(keypoints, visible, size, config.sigma, method=method, counts=counts,
                                 backend="torch", validate=False)

    def theirs():
        return [encode(size, points[b], flags[b], config.sigma) for b in range(config.samples)]

    mine, loop = ours(), theirs()  # warm up, and check the values
    heat = torch.from_numpy(np.stack([h for h, _ in loop]))
    weights = torch.from_numpy(np.stack([w for _, w in loop])).float()
    max_diff = float((mine.heatmaps - heat).abs().max())
    assert torch.equal(mine.weights, weights), "weights differ from mmpose's"
    assert max_diff < 1e-6, f"heatmaps differ from mmpose's by {max_diff}"
    calls = max(1, round(0.05 / max(_seconds(ours, 1), 1e-6)))  # about 50 ms of gaussdraw a round
    ours_s, theirs_s = [], []
    for _ in range(rounds):
        ours_s.append(_seconds(ours, calls))
        theirs_s.append(_seconds(theirs, 1))
    ratios = [t / o for o, t in zip(ours_s, theirs_s)]
    return dict(config=config.name, method=method, ours_ms=statistics.median(ours_s) * 1e3,
                mmpose_ms=statistics.median(theirs_s) * 1e3, ratio=statistics.median(ratios),
                ratio_min=min(ratios), ratio_max=max(ratios), max_diff=max_diff)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="*", default=list(KEYPOINT_CONFIGS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds")
    print("| config | method | gaussdraw (ms) | mmpose loop (ms) | × mmpose (median, min–max) | max diff |")
    print("|---|---|---|---|---|---|")
    for name in args.configs:
        for method in args.methods:
            r = compare(KEYPOINT_CONFIGS[name], method, args.rounds)
            print(f"| {r['config']} | {r['method']} | {r['ours_ms']:.2f} | {r['mmpose_ms']:.2f} | "
                  f"{r['ratio']:.1f} ({r['ratio_min']:.1f}–{r['ratio_max']:.1f}) | {r['max_diff']:.2g} |", flush=True)


if __name__ == "__main__":
    main()

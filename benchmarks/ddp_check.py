"""Targets and the focal loss under DistributedDataParallel, one process per GPU.

    torchrun --nproc-per-node=2 benchmarks/ddp_check.py [--out results.json]

Each rank builds CenterNet and CenterPoint targets from its own boxes on its own GPU
(``cuda:<rank>``), once also with another device current and on a side stream, checks
them against the CPU path, trains a small CenterNet-style head for a few DDP steps with
``gaussian_focal_loss_with_logits`` and an L1 loss on ``wh``, and checks that every rank
ends with the same parameters. Rank 0 prints a summary (and writes it with --out).
Uses torch.distributed alone (NCCL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
from torch import nn

import gaussdraw

CENTERPOINT = dict(tasks=[["car"], ["truck", "construction_vehicle"], ["bus", "trailer"], ["barrier"],
                          ["motorcycle", "bicycle"], ["pedestrian", "traffic_cone"]],
                   point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], voxel_size=[0.1, 0.1, 0.2],
                   grid_size=[1024, 1024, 40], out_size_factor=8)


def boxes_2d(generator, samples=4, classes=8, img=256):
    boxes, labels = [], []
    for _ in range(samples):
        n = int(torch.randint(0, 12, (), generator=generator))
        xy = torch.rand(n, 2, generator=generator) * (img - 40)
        boxes.append(torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=generator) * 36], 1))
        labels.append(torch.randint(0, classes, (n,), generator=generator))
    return boxes, labels


def boxes_3d(generator, samples=2, count=40):
    boxes, labels = [], []
    for _ in range(samples):
        xy = (torch.rand(count, 2, generator=generator) * 2 - 1) * 50
        rest = torch.rand(count, 7, generator=generator) + torch.tensor([-1.0, 0.5, 0.5, 0.5, -3.0, -2.0, -2.0])
        boxes.append(torch.cat([xy, rest], 1))
        labels.append(torch.randint(0, 10, (count,), generator=generator))
    return boxes, labels


def same(a, b) -> bool:
    tol = 1e-6 if a.is_floating_point() else 0
    return a.shape == b.shape and bool(((a.cpu().double() - b.cpu().double()).abs() <= tol).all())


def check_targets(rank, device, generator) -> dict:
    """GPU targets against the CPU path: on this rank's device, then with another device current on a side stream."""
    boxes, labels = boxes_2d(generator)
    on_gpu = ([b.to(device) for b in boxes], [lab.to(device) for lab in labels])
    options = dict(num_classes=8, feat_size=(64, 64), img_size=(256, 256))
    expected = gaussdraw.centernet_targets(boxes, labels, **options)
    actual = gaussdraw.centernet_targets(*on_gpu, **options)
    results = {"centernet": all(same(a, e) for a, e in zip(actual, expected))}

    boxes3d, labels3d = boxes_3d(generator)
    expected3d = gaussdraw.centerpoint_targets(boxes3d, labels3d, **CENTERPOINT)
    inputs3d = ([b.to(device) for b in boxes3d], [lab.to(device) for lab in labels3d])
    if device.type == "cuda":
        other = (device.index + 1) % torch.cuda.device_count()
        with torch.cuda.device(other):  # the current device is not the tensors' device
            stream = torch.cuda.Stream(device=device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                actual3d = gaussdraw.centerpoint_targets(*inputs3d, **CENTERPOINT)
            torch.cuda.current_stream(device).wait_stream(stream)
    else:
        actual3d = gaussdraw.centerpoint_targets(*inputs3d, **CENTERPOINT)
    results["centerpoint_other_current_device_side_stream"] = all(
        same(a, e) for group_a, group_e in zip(actual3d, expected3d) for a, e in zip(group_a, group_e))
    results["centerpoint_boxes_drawn"] = int(sum(m.sum() for m in actual3d.masks))
    return results


class TinyHead(nn.Module):
    """Heatmap logits (8 classes) and wh from a feature map, as a CenterNet head does."""

    def __init__(self, channels=16, classes=8):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU())
        self.heatmap = nn.Conv2d(channels, classes, 1)
        self.wh = nn.Conv2d(channels, 2, 1)
        nn.init.constant_(self.heatmap.bias, -2.19)  # CenterNet's prior

    def forward(self, x):
        features = self.trunk(x)
        return self.heatmap(features), self.wh(features)


def train(rank, device, generator, steps=5) -> dict:
    torch.manual_seed(0)  # the same initial weights on every rank
    model = nn.parallel.DistributedDataParallel(TinyHead().to(device),
                                                device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        boxes, labels = boxes_2d(generator)  # this rank's own batch
        boxes, labels = [b.to(device) for b in boxes], [lab.to(device) for lab in labels]
        targets = gaussdraw.centernet_targets(boxes, labels, 8, (64, 64), (256, 256))
        images = torch.rand(4, 3, 64, 64, generator=generator).to(device)
        logits, wh = model(images)
        heatmap_loss = gaussdraw.gaussian_focal_loss_with_logits(logits, targets.heatmap,
                                                                 avg_factor=targets.avg_factor)
        wh_loss = ((wh - targets.wh).abs() * targets.weight).sum() / (targets.avg_factor * 2)
        loss = heatmap_loss + 0.1 * wh_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()])
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    mean_loss = torch.stack(losses)
    dist.all_reduce(mean_loss)
    return dict(losses=(mean_loss / dist.get_world_size()).tolist(),
                parameters_equal_on_every_rank=all(torch.equal(g, gathered[0]) for g in gathered),
                finite=bool(torch.isfinite(mean_loss).all()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None, help="JSON file for rank 0's summary")
    parser.add_argument("--cpu", action="store_true", help="a dry run of the script on CPU processes (gloo)")
    args = parser.parse_args()
    dist.init_process_group("gloo" if args.cpu else "nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.cpu:
        device = torch.device("cpu")
    else:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    generator = torch.Generator().manual_seed(100 + rank)
    start = time.perf_counter()
    result = dict(rank=rank, device=str(device),
                  gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                  targets=check_targets(rank, device, generator), training=train(rank, device, generator))
    result["seconds"] = round(time.perf_counter() - start, 2)
    results = [None] * world
    dist.all_gather_object(results, result)
    ok = all(all(r["targets"][k] for k in ("centernet", "centerpoint_other_current_device_side_stream"))
             and r["training"]["parameters_equal_on_every_rank"] and r["training"]["finite"] for r in results)
    if rank == 0:
        summary = dict(world_size=world, torch=torch.__version__, gaussdraw=gaussdraw.__version__, ok=ok,
                       nccl_nvls_enable=os.environ.get("NCCL_NVLS_ENABLE"), ranks=results)
        print(json.dumps(summary, indent=1))
        if args.out:
            with open(args.out, "w") as f:
                json.dump(summary, f, indent=1)
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

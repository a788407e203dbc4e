"""``gaussdraw demo``: draw the class heatmaps of a small synthetic scene and show them.

The scene is embedded: a few dozen boxes of three classes on a synthetic image.
Radii come from CornerNet's rule (:func:`gaussdraw.gaussian_radius`, as in mmdet3d,
CenterNet and CenterPoint), the heatmaps are drawn at stride 4, and the figure shows
the boxes and their centers over the image next to each class's heatmap, with the
centers marked; boxes whose center leaves the frame draw only the part of their
Gaussian inside it. Two more panels show the inference side: the heatmaps decoded back
into boxes (:func:`gaussdraw.centernet_decode`), and a pose's keypoint heatmaps (mmpose's
MSRA encoding) with the keypoints decoded from them (DARK refinement).
"""

from __future__ import annotations

import time

import torch

from .draw import draw_heatmap_batched
from .radius import gaussian_radius
from .reference import draw_heatmap_batched_per_box

CLASSES = ("car", "pedestrian", "cyclist")
STRIDE = 4
IMAGE_SIZE = (384, 640)  # (H, W)


def example_scene(seed: int = 7):
    """(image (3, H, W) in [0, 1], boxes (T, 4) x1 y1 x2 y2 in pixels, labels (T,))."""
    g = torch.Generator().manual_seed(seed)
    height, width = IMAGE_SIZE
    yy = torch.linspace(0, 1, height).unsqueeze(1)
    xx = torch.linspace(0, 1, width).unsqueeze(0)
    sky = torch.stack([0.55 + 0.3 * (1 - yy), 0.65 + 0.25 * (1 - yy), 0.85 + 0.1 * (1 - yy)]).expand(3, height, width)
    road = torch.stack([0.35 + 0.05 * xx, 0.35 + 0.05 * xx, 0.38 + 0.05 * xx]).expand(3, height, width)
    image = torch.where(yy.expand(height, width) < 0.45, sky, road).clone()
    image += 0.03 * torch.rand(3, height, width, generator=g)

    sizes = {0: ((40, 110), (60, 180)), 1: ((50, 120), (18, 40)), 2: ((45, 90), (30, 70))}  # (h range, w range)
    colors = torch.tensor([[0.8, 0.2, 0.2], [0.2, 0.7, 0.3], [0.9, 0.7, 0.1]])
    boxes, labels = [], []
    for _ in range(36):
        label = int(torch.randint(0, 3, (1,), generator=g))
        (h0, h1), (w0, w1) = sizes[label]
        h = int(torch.randint(h0, h1, (1,), generator=g))
        w = int(torch.randint(w0, w1, (1,), generator=g))
        cx = int(torch.randint(-w // 4, width + w // 4, (1,), generator=g))  # some leave the frame
        cy = int(torch.randint(int(0.45 * height), height + h // 4, (1,), generator=g))
        x1, y1, x2, y2 = cx - w // 2, cy - h // 2, cx + w // 2, cy + h // 2
        boxes.append((x1, y1, x2, y2))
        labels.append(label)
        ys, xs = slice(max(y1, 0), max(min(y2, height), 0)), slice(max(x1, 0), max(min(x2, width), 0))
        image[:, ys, xs] = 0.25 * image[:, ys, xs] + 0.75 * colors[label].view(3, 1, 1)
    return image.clamp(0, 1), torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels)


def scene_targets(boxes: torch.Tensor, labels: torch.Tensor, device: torch.device):
    """Centers and radii on the stride-4 heatmap, as one sample."""
    centers = ((boxes[:, :2] + boxes[:, 2:]) / 2 / STRIDE).floor().long()
    sizes = (boxes[:, 2:] - boxes[:, :2]) / STRIDE
    radii = gaussian_radius(sizes[:, 1], sizes[:, 0], 0.7).long().clamp(min=0)
    return centers.to(device), radii.to(device), labels.to(device)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved_times(calls: dict, rounds: int = 7, budget_s: float = 0.04) -> dict:
    """Seconds per call of each of ``calls`` (name -> function) in each of ``rounds`` rounds; in every
    round each function runs in turn, as many calls as fill ``budget_s`` (at least one), so that a
    slow spell of the machine falls on all of them alike."""
    counts = {}
    for name, fn in calls.items():  # warm up, and size each function's batch of calls
        fn()
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        counts[name] = max(1, int(budget_s / max(time.perf_counter() - start, 1e-7)))
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            start = time.perf_counter()
            for _ in range(counts[name]):
                fn()
            _sync()
            times[name].append((time.perf_counter() - start) / counts[name])
    return times


def _median(values: list) -> float:
    return sorted(values)[len(values) // 2]


def run(out: str = "demo.png", device: str | None = None) -> str:
    """Draw the scene's heatmaps, save the figure to ``out``, return the timing line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    image, boxes, labels = example_scene()
    centers, radii, labels_d = scene_targets(boxes, labels, device)
    shape = (1, len(CLASSES), IMAGE_SIZE[0] // STRIDE, IMAGE_SIZE[1] // STRIDE)

    heatmap = torch.zeros(shape, device=device)
    draw_heatmap_batched(heatmap, [centers], [radii], labels=[labels_d])

    def ours():
        draw_heatmap_batched(torch.zeros(shape, device=device), [centers], [radii], labels=[labels_d], validate=False)

    def per_box():
        draw_heatmap_batched_per_box(torch.zeros(shape, device=device), [centers], [radii], labels_list=[labels_d])

    times = interleaved_times({"ours": ours, "loop": per_box})

    fig, axes = plt.subplots(2, 3, figsize=(18, 7.5), constrained_layout=True)
    centers_px = ((boxes[:, :2] + boxes[:, 2:]) / 2).tolist()
    outside = [(x < 0 or x >= IMAGE_SIZE[1] or y < 0 or y >= IMAGE_SIZE[0]) for x, y in centers_px]
    _plot_scene(axes[0, 0], image, boxes, labels, centers_px, outside)
    shown = _plot_heatmaps(axes[:, :2], image, heatmap[0].cpu(), labels, centers_px, outside, shape)
    _plot_decoded(axes[0, 2], image, heatmap, boxes, centers, device)
    _plot_pose(axes[1, 2], device)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes[:, 2], shrink=0.8, label="heatmap value")
    fig.suptitle("gaussdraw: class-wise Gaussian heatmap targets (boxes whose center leaves the frame draw only "
                 "the part of their Gaussian inside it), the same heatmaps decoded into boxes, and a pose's keypoint "
                 "heatmaps", fontsize=10)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return _timing_line(times, len(boxes), device) + f"; wrote {out}"


def _timing_line(times: dict, num_boxes: int, device: torch.device) -> str:
    """Medians and min–max of the interleaved rounds, and the ratio of the medians."""
    ours, loop = (sorted(times[name]) for name in ("ours", "loop"))
    ratio = _median(loop) / _median(ours)
    speedup = f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"
    return (f"gaussdraw {_median(ours) * 1e3:.3f} ms ({ours[0] * 1e3:.3f}-{ours[-1] * 1e3:.3f}) vs per-box loop "
            f"{_median(loop) * 1e3:.2f} ms ({loop[0] * 1e3:.2f}-{loop[-1] * 1e3:.2f}): {speedup}, medians of "
            f"{len(ours)} interleaved rounds, the same {num_boxes} boxes, on {device.type}")


_EDGE_COLORS = ["tab:red", "tab:green", "gold"]


def _plot_scene(ax, image, boxes, labels, centers_px, outside) -> None:
    """The image with its boxes (dashed where the center leaves the frame) and their centers."""
    import matplotlib.patches as patches

    edge = _EDGE_COLORS
    ax.imshow(image.permute(1, 2, 0).numpy())
    for (x1, y1, x2, y2), (x, y), label, out_of_frame in zip(boxes.tolist(), centers_px, labels.tolist(), outside):
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=edge[label], lw=1.5,
                                       ls="--" if out_of_frame else "-"))
        if not out_of_frame:
            ax.plot(x, y, "+", color=edge[label], ms=7, mew=1.5)
    handles = [patches.Patch(edgecolor=edge[c], facecolor="none", label=name) for c, name in enumerate(CLASSES)]
    handles.append(patches.Patch(edgecolor="black", facecolor="none", ls="--",
                                 label=f"center outside the frame ({sum(outside)})"))
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.85)
    ax.set_title(f"scene: {len(boxes)} boxes, {len(CLASSES)} classes (+ centers)")
    ax.set_xlim(0, IMAGE_SIZE[1])
    ax.set_ylim(IMAGE_SIZE[0], 0)


def _plot_heatmaps(axes, image, hm, labels, centers_px, outside, shape):
    """One heatmap per class over the faded image, with that class's centers; returns the last image."""
    extent = (0, IMAGE_SIZE[1], IMAGE_SIZE[0], 0)
    for c, name in enumerate(CLASSES):
        ax = axes.flat[c + 1]
        ax.imshow(image.permute(1, 2, 0).numpy(), extent=extent, alpha=0.35)
        shown = ax.imshow(hm[c].numpy(), cmap="magma", vmin=0, vmax=1, alpha=0.8, extent=extent)
        mine = [(x, y) for (x, y), label, o in zip(centers_px, labels.tolist(), outside) if label == c and not o]
        if mine:
            ax.plot(*zip(*mine), "x", color="cyan", ms=5, mew=1.2, label="box centers")
            ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
        ax.set_title(f"heatmap '{name}' ({shape[2]}x{shape[3]}, stride {STRIDE}): {int((labels == c).sum())} boxes")
    return shown


def _plot_decoded(ax, image, heatmap, boxes, centers, device) -> None:
    """The drawn heatmaps read as a head's output: sizes and offsets at the centers, decoded back into
    boxes by :func:`gaussdraw.centernet_decode` (mmdet's ``_decode_heatmap``) over the image."""
    import matplotlib.patches as patches

    from .decode import centernet_decode

    _, _, height, width = heatmap.shape
    wh = torch.zeros(1, 2, height, width, device=device)
    offset = torch.zeros(1, 2, height, width, device=device)
    inside = (centers[:, 0] >= 0) & (centers[:, 0] < width) & (centers[:, 1] >= 0) & (centers[:, 1] < height)
    x, y = centers[inside, 0], centers[inside, 1]
    box = boxes.to(device)[inside] / STRIDE
    wh[0, :, y, x] = (box[:, 2:] - box[:, :2]).T
    offset[0, :, y, x] = ((box[:, :2] + box[:, 2:]) / 2 - centers[inside]).T
    found = centernet_decode(heatmap, wh, offset, IMAGE_SIZE, k=int(inside.sum()) + 8)
    extent = (0, IMAGE_SIZE[1], IMAGE_SIZE[0], 0)
    ax.imshow(image.permute(1, 2, 0).numpy(), extent=extent, alpha=0.35)
    ax.imshow(heatmap[0].amax(0).cpu().numpy(), cmap="magma", vmin=0, vmax=1, alpha=0.8, extent=extent)
    kept = found.scores[0] > 0.5
    for (x1, y1, x2, y2), label in zip(found.bboxes[0][kept].tolist(), found.labels[0][kept].tolist()):
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=_EDGE_COLORS[label], lw=1.5))
    ax.set_title(f"decoded: centernet_decode, {int(kept.sum())} boxes with score > 0.5")
    ax.set_xlim(0, IMAGE_SIZE[1])
    ax.set_ylim(IMAGE_SIZE[0], 0)


# a standing figure in a 192 x 256 crop: COCO's 17 keypoints (x, y) and its skeleton
POSE = ((96, 40), (102, 34), (90, 34), (110, 38), (82, 38), (124, 72), (68, 72), (136, 112), (56, 112),
        (140, 150), (52, 150), (114, 150), (78, 150), (118, 196), (74, 196), (120, 240), (72, 240))
SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
            (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))


def _plot_pose(ax, device) -> None:
    """A pose's 17 keypoint heatmaps (MSRA, 48 x 64, sigma 2: their maximum shown) over its skeleton, and the
    keypoints the DARK decoder reads back from them."""
    from .keypoints import MSRAHeatmap

    codec = MSRAHeatmap(input_size=(192, 256), heatmap_size=(48, 64), sigma=2, unbiased=True)
    keypoints = torch.tensor(POSE, dtype=torch.float32, device=device)[None]
    encoded = codec.encode_batch([keypoints], [torch.ones(1, 17, device=device)])
    decoded = codec.decode_batch(encoded.heatmaps).keypoints[0].cpu()
    ax.imshow(encoded.heatmaps[0].amax(0).cpu().numpy(), cmap="magma", vmin=0, vmax=1, extent=(0, 192, 256, 0))
    for a, b in SKELETON:
        ax.plot([POSE[a][0], POSE[b][0]], [POSE[a][1], POSE[b][1]], color="cyan", lw=1.2, alpha=0.8)
    ax.plot(decoded[:, 0], decoded[:, 1], "o", mfc="none", color="white", ms=6, mew=1.2, label="decoded (DARK)")
    ax.legend(loc="lower right", fontsize=8, framealpha=0.85)
    ax.set_title("pose: 17 keypoint heatmaps,\ndecoded (DARK)")
    ax.set_xlim(0, 192)
    ax.set_ylim(256, 0)

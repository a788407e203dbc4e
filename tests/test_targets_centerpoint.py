"""centerpoint_targets: every backend and input form against mmdet3d's own CenterHead.get_targets."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaussdraw import Ragged, centerpoint_targets
from gaussdraw.reference import centerpoint_targets_per_box

from .helpers import assert_close
from .oracles import mmdet3d_centerpoint_get_targets

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NUSCENES_TASKS = [["car"], ["truck", "construction_vehicle"], ["bus", "trailer"], ["barrier"],
                  ["motorcycle", "bicycle"], ["pedestrian", "traffic_cone"]]


@st.composite
def scenes(draw, max_boxes=12):
    """(tasks, train_cfg, boxes list, labels list): 1 or 6 tasks, odd maps, boxes outside the
    range, centers that truncate to 0 from below, zero and negative sizes, shared pixels,
    more boxes than max_objs in a task, empty samples."""
    tasks = draw(st.sampled_from([[["car", "truck", "bus"]], NUSCENES_TASKS, [["a"], ["b", "c"]]]))
    num_labels = sum(len(t) for t in tasks)
    factor = draw(st.sampled_from([1, 2, 4, 3]))
    grid_x, grid_y = draw(st.integers(factor, 23 * factor)), draw(st.integers(factor, 19 * factor))
    voxel = draw(st.sampled_from([0.1, 0.2, 0.075, 0.25]))
    x_min, y_min = -grid_x * voxel / 2, -draw(st.sampled_from([0.5, 0.3])) * grid_y * voxel
    cfg = dict(max_objs=draw(st.integers(1, 6)), dense_reg=draw(st.sampled_from([1, 2])),
               grid_size=[grid_x, grid_y, 40], point_cloud_range=[x_min, y_min, -5.0, -x_min, -y_min, 3.0],
               voxel_size=[voxel, voxel, 0.2], out_size_factor=factor,
               gaussian_overlap=draw(st.sampled_from([0.1, 0.3])), min_radius=draw(st.sampled_from([0, 2])))
    extent = (grid_x * voxel, grid_y * voxel)
    boxes, labels = [], []
    for _ in range(draw(st.integers(1, 3))):
        count = draw(st.integers(0, max_boxes))
        rows = []
        for _ in range(count):
            kind = draw(st.sampled_from(["in", "in", "in", "outside", "below", "flat", "copy"]))
            if kind == "copy" and rows:
                rows.append(list(draw(st.sampled_from(rows))))
                continue
            x = x_min + draw(st.floats(0, 1, width=32)) * extent[0]
            y = y_min + draw(st.floats(0, 1, width=32)) * extent[1]
            if kind == "outside":
                x = x_min - draw(st.floats(0.0625, 5, width=32))
            if kind == "below":  # (x - x_min) / voxel / factor in (-1, 0): truncates to 0
                y = y_min - draw(st.floats(0.0625, 0.9375, width=32)) * voxel * factor
            dims = [draw(st.floats(0.0625, 6, width=32)) for _ in range(3)]
            if kind == "flat":
                dims[draw(st.integers(0, 1))] = draw(st.sampled_from([0.0, -1.0]))
            rows.append([x, y, draw(st.floats(-3, 3, width=32)), *dims, draw(st.floats(-7, 7, width=32)),
                         draw(st.floats(-10, 10, width=32)), draw(st.floats(-10, 10, width=32))])
        boxes.append(torch.tensor(rows, dtype=torch.float32).reshape(count, 9))
        labels.append(torch.tensor(draw(st.lists(st.integers(0, num_labels - 1), min_size=count, max_size=count)),
                                   dtype=torch.int64))
    return tasks, cfg, boxes, labels


def _assert_matches(targets, expected, what="", anno_tol=1e-6):
    for name, mine, theirs in zip(("heatmaps", "anno_boxes", "inds", "masks"), targets, expected):
        assert len(mine) == len(theirs)
        for task, (a, e) in enumerate(zip(mine, theirs)):
            assert a.dtype == e.dtype, (name, a.dtype, e.dtype)
            # heatmaps: exp differs by an ulp; anno_boxes: log/sin/cos differ by an ulp between libraries
            atol = {"heatmaps": 1e-6, "anno_boxes": anno_tol}.get(name, 0)
            assert_close(a, e, atol, f"{what} {name}[{task}]:")


def _to(device, tensors):
    return [t.to(device) for t in tensors]


@SETTINGS
@given(scene=scenes())
def test_matches_mmdet3d(device_backend, scene):
    device, backend = device_backend
    tasks, cfg, boxes, labels = scene
    expected = mmdet3d_centerpoint_get_targets()(boxes, labels, tasks, cfg)
    targets = centerpoint_targets(_to(device, boxes), _to(device, labels), tasks, **cfg, backend=backend)
    assert targets.heatmaps[0].device.type == device
    _assert_matches(targets, expected, f"{device}-{backend}")


@SETTINGS
@given(scene=scenes(max_boxes=6), form=st.sampled_from(["ragged", "padded"]), norm_bbox=st.booleans(),
       velocity=st.booleans(), counts_as_tasks=st.booleans())
def test_input_forms_and_options(device_backend, scene, form, norm_bbox, velocity, counts_as_tasks):
    """Padded forms (NaN padding, never read), norm_bbox, 7-column boxes, tasks given as class counts."""
    device, backend = device_backend
    tasks, cfg, boxes, labels = scene
    expected = centerpoint_targets_per_box(boxes, labels, [len(t) for t in tasks], norm_bbox=norm_bbox, **cfg)
    if not velocity:
        boxes = [b[:, :7] for b in boxes]
        expected = (expected[0], [a[..., :8] for a in expected[1]], expected[2], expected[3])
    padded = Ragged.from_list(boxes).tensor
    padded = torch.cat([padded, padded[:, :1]], 1)
    counts = torch.tensor([len(b) for b in boxes])
    padded[torch.arange(padded.shape[1]) >= counts[:, None]] = float("nan")
    padded_labels = torch.full(padded.shape[:2], -7, dtype=torch.int32)
    for b, lab in enumerate(labels):
        padded_labels[b, : len(lab)] = lab
    padded, padded_labels, counts = _to(device, (padded, padded_labels, counts))
    if form == "ragged":
        args = dict(boxes=Ragged(padded, counts), labels=Ragged(padded_labels, counts))
    else:
        args = dict(boxes=padded, labels=padded_labels, counts=counts)
    task_arg = [len(t) for t in tasks] if counts_as_tasks else tasks
    targets = centerpoint_targets(**args, tasks=task_arg, **cfg, norm_bbox=norm_bbox, backend=backend)
    _assert_matches(targets, expected, form)


@SETTINGS
@given(scene=scenes(max_boxes=6), data=st.data())
def test_invalid_boxes_are_dropped_without_validation(device_backend, scene, data):
    """validate=False: a non-finite box is dropped in its slot, a label outside every task takes none."""
    device, backend = device_backend
    tasks, cfg, boxes, labels = scene
    num_labels = sum(len(t) for t in tasks)
    dirty_boxes, dirty_labels, clean_boxes = [], [], []
    for box, lab in zip(boxes, labels):
        kind = data.draw(st.sampled_from(["none", "nan", "label"]))
        if kind == "none" or len(box) == 0:
            dirty_boxes.append(box), dirty_labels.append(lab), clean_boxes.append(box)
            continue
        at = data.draw(st.integers(0, len(box) - 1))
        if kind == "nan":  # the box keeps its slot: mmdet3d with a box it skips there (dx = 0)
            column = data.draw(st.integers(0, 8))
            dirty = box.clone()
            dirty[at, column] = data.draw(st.sampled_from([float("nan"), float("inf")]))
            skipped = box.clone()
            skipped[at, 3] = 0.0
            dirty_boxes.append(dirty), dirty_labels.append(lab), clean_boxes.append(skipped)
        else:
            dirty_boxes.append(torch.cat([box[:at], box[at:at + 1], box[at:]]))
            dirty_labels.append(torch.cat([lab[:at], torch.tensor([num_labels + 3]), lab[at:]]))
            clean_boxes.append(box)
    expected = mmdet3d_centerpoint_get_targets()(clean_boxes, labels, tasks, cfg)
    targets = centerpoint_targets(_to(device, dirty_boxes), _to(device, dirty_labels), tasks, **cfg,
                                  backend=backend, validate=False)
    _assert_matches(targets, expected, "dropped")


def test_reference_loop_matches_mmdet3d():
    g = torch.Generator().manual_seed(5)
    boxes = [torch.cat([torch.rand(n, 2, generator=g) * 10 - 5, torch.rand(n, 7, generator=g) + 0.2], 1)
             for n in (9, 0, 14)]
    labels = [torch.randint(0, 10, (len(b),), generator=g) for b in boxes]
    cfg = dict(max_objs=4, dense_reg=1, grid_size=[96, 80, 1], point_cloud_range=[-4.8, -4.0, -3, 4.8, 4.0, 1],
               voxel_size=[0.1, 0.1, 4], out_size_factor=2, gaussian_overlap=0.1, min_radius=2)
    expected = mmdet3d_centerpoint_get_targets()(boxes, labels, NUSCENES_TASKS, cfg)
    _assert_matches(centerpoint_targets_per_box(boxes, labels, [len(t) for t in NUSCENES_TASKS], **cfg), expected)


def test_crowded_task_keeps_the_first_max_objs_in_class_order(device_backend):
    device, backend = device_backend
    n = 40
    boxes = torch.cat([torch.linspace(-3, 3, n)[:, None].repeat(1, 2), torch.ones(n, 7)], 1)
    labels = torch.tensor([1, 0] * (n // 2))  # task of classes (0, 1): class 0's boxes first
    cfg = dict(point_cloud_range=[-4.0, -4.0, -3, 4, 4, 1], voxel_size=[0.1, 0.1, 4], grid_size=[80, 80, 1],
               out_size_factor=1, max_objs=25)
    targets = centerpoint_targets([boxes.to(device)], [labels.to(device)], [2], **cfg, backend=backend)
    assert targets.masks[0].sum().item() == 25
    x = ((boxes[:, 0] + 4.0) / 0.1).long()
    order = torch.cat([(labels == 0).nonzero()[:, 0], (labels == 1).nonzero()[:, 0]])[:25]
    assert targets.inds[0][0].cpu().tolist() == (x[order] * 80 + x[order]).tolist()


def test_empty_inputs(device_backend):
    device, backend = device_backend
    cfg = dict(point_cloud_range=[-4.0, -4.0, -3, 4, 4, 1], voxel_size=[0.1, 0.1, 4], grid_size=[80, 80, 1],
               out_size_factor=4, max_objs=3)
    targets = centerpoint_targets([torch.zeros(0, 9, device=device)], [torch.zeros(0, dtype=torch.long,
                                  device=device)], [1, 2], **cfg, backend=backend)
    assert [h.shape for h in targets.heatmaps] == [(1, 1, 20, 20), (1, 2, 20, 20)]
    assert all(not t.any() for group in targets for t in group)


def T(x, **kw):  # noqa: N802 - short constructor for the table below
    return torch.tensor(x, **kw)


_BOX = [0.5, 0.3, 0.0, 1.0, 2.0, 1.0, 0.3, 0.1, 0.2]


def _case(**override):
    args = dict(boxes=[T([_BOX, _BOX])], labels=[T([0, 2])], tasks=[["car"], ["truck", "bus"]],
                point_cloud_range=[-5, -5, -3, 5, 5, 1], voxel_size=[0.1, 0.1, 4], grid_size=[100, 100, 1],
                out_size_factor=4)
    args.update(override)
    return args


def _box(**columns):
    row = list(_BOX)
    for column, value in columns.items():
        row["x y z dx dy dz yaw vx vy".split().index(column)] = value
    return row


BAD = {
    "label": (_case(labels=[T([0, 3])]), ValueError,
              r"labels must be in \[0, 3\): the tasks hold 3 classes; got 3 at sample 0, position 1"),
    "nan": (_case(boxes=[T([_BOX, _box(vx=float("nan"))])]), ValueError,
            r"boxes must be finite; got \[0.5, .*nan.*\] at sample 0, position 1"),
    "inf-outside": (_case(boxes=[T([_box(x=float("inf")), _BOX])]), ValueError, r"boxes must be finite"),
    "dz": (_case(boxes=[T([_BOX, _box(dz=0.0)])]), ValueError, r"dz > 0 with norm_bbox=True"),
    "huge": (_case(boxes=[T([_BOX, _box(dx=1e20, dy=1e20)])]), ValueError, r"too large for a finite Gaussian"),
    "columns": (_case(boxes=[T([_BOX[:8]] * 2)]), ValueError, r"boxes must have 9 columns"),
    "int-boxes": (_case(boxes=[T([[1] * 9] * 2)]), TypeError, r"boxes\[0\] must be a floating-point tensor"),
    "tasks-empty": (_case(tasks=[]), TypeError, r"tasks must be a non-empty list"),
    "task-empty": (_case(tasks=[["car"], []]), ValueError, r"tasks\[1\] must hold at least one class"),
    "task-type": (_case(tasks=[["car"], 2.5]), TypeError, r"tasks\[1\] must be a list of class names"),
    "voxel": (_case(voxel_size=[0.1, 0.0, 4]), ValueError, r"voxel_size\[1\] must be a finite number > 0"),
    "range": (_case(point_cloud_range=[float("nan"), -5]), ValueError, r"point_cloud_range\[0\] must be a finite"),
    "grid": (_case(grid_size=[100, 2, 1]), ValueError, r"grid_size\[:2\] // out_size_factor must be >= 1"),
    "factor": (_case(out_size_factor=0), ValueError, r"out_size_factor must be > 0"),
    "overlap": (_case(gaussian_overlap=0.0), ValueError, r"gaussian_overlap must be in \(0, 1\)"),
    "min-radius": (_case(min_radius=-1), ValueError, r"min_radius must be an int >= 0"),
    "max-objs": (_case(max_objs=0), ValueError, r"max_objs must be > 0"),
    "lengths": (_case(labels=[T([0])]), ValueError, r"labels\[0\] has 1 entries but boxes\[0\] has 2"),
    "counts-missing": (_case(boxes=torch.zeros(1, 2, 9), labels=T([[0, 1]])), ValueError, r"counts is required"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_raises(case):
    args, error, match = BAD[case]
    with pytest.raises(error, match=match):
        centerpoint_targets(**args)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_box_dtypes_compute_in_float32(device_backend, dtype):
    """Any float boxes: the targets of the same boxes rounded to ``dtype`` and computed in float32."""
    device, backend = device_backend
    if dtype == torch.bfloat16 and backend == "triton" and device == "cpu":
        pytest.skip("bf16 is unreliable in Triton's interpreter")
    g = torch.Generator().manual_seed(8)
    boxes = torch.cat([(torch.rand(2, 9, 2, generator=g) - 0.5) * 15, torch.rand(2, 9, 7, generator=g) + 0.3], -1)
    boxes = boxes.to(dtype)
    labels = torch.randint(0, 5, (2, 9), generator=g)
    cfg = dict(point_cloud_range=[-8.0, -6.4, -3, 8, 6.4, 1], voxel_size=[0.1, 0.1, 4], grid_size=[160, 128, 1],
               out_size_factor=4, max_objs=9, dense_reg=1, gaussian_overlap=0.1, min_radius=2)
    tasks = [["car"], ["truck", "bus"], ["ped", "cone"]]
    expected = mmdet3d_centerpoint_get_targets()(list(boxes.float()), list(labels), tasks, cfg)
    targets = centerpoint_targets(list(boxes.to(device)), list(labels.to(device)), tasks, **cfg, backend=backend)
    _assert_matches(targets, expected, str(dtype))


def test_options_are_checked_again_after_an_in_place_change():
    """The checked configuration is reused across calls, but not after the same list changes."""
    args = _case()
    tasks = [["car"], ["truck", "bus"]]
    args["tasks"] = tasks
    centerpoint_targets(**args)
    centerpoint_targets(**args)
    tasks.append([])
    with pytest.raises(ValueError, match=r"tasks\[2\] must hold at least one class"):
        centerpoint_targets(**args)
    tasks.pop()
    voxel = args["voxel_size"]
    centerpoint_targets(**args)
    voxel[1] = -0.1
    with pytest.raises(ValueError, match=r"voxel_size\[1\] must be a finite number > 0"):
        centerpoint_targets(**args)

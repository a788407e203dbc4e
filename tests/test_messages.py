"""Messages that name the argument as the caller gave it, with the fix; Python lists of numbers
taken where their tensor form is unambiguous."""

from __future__ import annotations

import torch

from gaussdraw import (
    CenterNetTargets,
    centernet_targets,
    centerpoint_targets,
    circle_nms,
    circle_nms_batched,
    draw_heatmap,
    draw_heatmap_batched,
    render_heatmaps,
    render_heatmaps_batched,
)

from .helpers import raises_text

T = torch.tensor


def _longs(*rows):
    return [T(r, dtype=torch.long) for r in rows]


# ----------------------------------------------------------------------------
# the messages of issue 20, point 5
# ----------------------------------------------------------------------------


def test_circle_nms_blames_the_scores_without_a_batch_dimension():
    with raises_text(ValueError, "scores must be (10,), one score per center of centers (10, 2) "
                             "(mmdet3d passes dets[:, 2]); got (9,)"):
        circle_nms(torch.rand(10, 2), torch.rand(9), 1.0)
    with raises_text(ValueError, "centers must be (N, 2), the (x, y) of each box (mmdet3d passes dets[:, :2]); "
                             "got (10, 3)"):
        circle_nms(torch.rand(10, 3), torch.rand(10), 1.0)
    with raises_text(TypeError, "centers must be a torch.Tensor or a list of numbers; got list (for per-sample "
                            "lists of tensors, use circle_nms_batched)"):
        circle_nms([torch.rand(3, 2)], torch.rand(3), 1.0)


def test_heatmap_dimensions_say_what_to_pass():
    centers, radii = _longs([[1, 1]], [[2, 2]]), _longs([1], [1])
    with raises_text(ValueError, "heatmap must be (B, H, W) without labels; got (2, 3, 8, 8): to draw into class "
                             "planes, pass labels= (per-box class indices in [0, 3))"):
        draw_heatmap_batched(torch.zeros(2, 3, 8, 8), centers, radii)
    with raises_text(ValueError, "heatmap must be (B, H, W) without labels; got (8, 8): for one sample, pass "
                             "heatmap.unsqueeze(0) (or draw_heatmap for one list of boxes)"):
        draw_heatmap_batched(torch.zeros(8, 8), centers, radii)
    with raises_text(ValueError, "heatmap must be (B, C, H, W) when labels are given; got (2, 8, 8): for one "
                             "plane per sample, leave out labels"):
        draw_heatmap_batched(torch.zeros(2, 8, 8), centers, radii, labels=_longs([0], [0]))
    with raises_text(ValueError, "shape must be (B, H, W) without labels; got (8, 8): for one sample, pass "
                             "shape=(1, H, W)"):
        render_heatmaps_batched((8, 8), centers, radii)


def test_list_inputs_are_named_by_element_not_by_their_padded_form():
    heatmap = torch.zeros(3, 8, 8)
    radii = _longs([1, 1], [1, 1, 1, 1], [1])
    centers = [torch.zeros(2, 2, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long),
               torch.zeros(1, 2, dtype=torch.long)]
    with raises_text(ValueError, "centers[1] must have shape (n, 2); got (4, 3)"):
        draw_heatmap_batched(heatmap, centers, radii)
    same = [torch.zeros(4, 3, dtype=torch.long)] * 3  # pads to (3, 4, 3): still the element is named
    with raises_text(ValueError, "centers[0] must have shape (n, 2); got (4, 3)"):
        draw_heatmap_batched(heatmap, same, [torch.ones(4, dtype=torch.long)] * 3)
    with raises_text(TypeError, "centers[0] must be int32 or int64; got torch.float32: round or truncate to integers, "
                            "e.g. [t.long() for t in centers]"):
        draw_heatmap_batched(heatmap, [c.float() for c in centers[:1]] * 3, [radii[2]] * 3)
    with raises_text(ValueError, "centers is a list of 3 samples but heatmap has 2: give one tensor per sample"):
        draw_heatmap_batched(torch.zeros(2, 8, 8), [centers[0]] * 3, [radii[0]] * 3)
    with raises_text(ValueError, "radii[0] must be (n,), one entry per box; got (2, 1): pass radii[0].reshape(-1)"):
        draw_heatmap_batched(heatmap, [centers[0]] * 3, [radii[0][:, None]] * 3)
    with raises_text(TypeError, "radii[1] must be a torch.Tensor or a list of numbers; got str"):
        draw_heatmap_batched(heatmap, [centers[0]] * 3, [radii[0], "1", radii[0]])


def test_a_one_dimensional_box_is_named_before_the_lengths():
    args = dict(num_classes=3, feat_size=(32, 32), img_size=(128, 128))
    with raises_text(ValueError, "bboxes[0] must be (n, 4), one entry per box; got (4,): for one box, pass "
                             "bboxes[0].unsqueeze(0)"):
        centernet_targets([T([1.0, 2.0, 30.0, 40.0])], [T([0])], **args)
    with raises_text(ValueError, "bboxes[1] must be (n, 4), one entry per box; got (8,): pass "
                                 "bboxes[1].reshape(-1, 4)"):
        centernet_targets([T([[1.0, 2.0, 30.0, 40.0]]), T([1.0, 2.0, 30.0, 40.0] * 2)], [T([0]), T([0, 1])], **args)


# ----------------------------------------------------------------------------
# Python lists of numbers
# ----------------------------------------------------------------------------


def test_python_lists_draw_as_their_tensors():
    centers, radii, labels = [[[1, 1], [6, 5]], [[4, 4]]], [[1, 2], [3]], [[0, 2], [1]]
    expected = draw_heatmap_batched(torch.zeros(2, 3, 8, 8), [T(c) for c in centers], [T(r) for r in radii],
                                    labels=[T(x) for x in labels])
    whole = draw_heatmap_batched(torch.zeros(2, 3, 8, 8), centers, radii, labels=labels)
    mixed = draw_heatmap_batched(torch.zeros(2, 3, 8, 8), [T(centers[0], dtype=torch.int32), centers[1]],
                                 radii, labels=[labels[0], T(labels[1])])  # samples beside int32 and int64 ones
    assert torch.equal(whole, expected) and torch.equal(mixed, expected)
    empty = draw_heatmap_batched(torch.zeros(2, 8, 8), [[[1, 1]], []], [[1], []])  # an empty sample: (0, 2)
    assert empty[0, 1, 1] == 1.0 and not empty[1].any()
    padded = draw_heatmap_batched(torch.zeros(2, 8, 8), T([[[1, 1]], [[2, 2]]]), T([[1], [0]]), counts=[1, 0])
    assert padded[0, 1, 1] == 1.0 and not padded[1].any()
    rendered = render_heatmaps_batched((2, 3, 8, 8), centers, radii, labels=labels)
    assert torch.equal(rendered, expected)


def test_python_lists_in_the_concatenated_and_decoding_forms():
    expected = draw_heatmap(torch.zeros(2, 5, 7), T([[3, 2], [0, 0]]), T([1, 2]), T([0, 1]))
    assert torch.equal(draw_heatmap(torch.zeros(2, 5, 7), [[3, 2], [0, 0]], [1, 2], [0, 1]), expected)
    assert torch.equal(render_heatmaps((2, 5, 7), [[3, 2], [0, 0]], [1, 2], [0, 1]), expected)
    centers, scores = [[0.0, 0.0], [0.5, 0.0], [3, 0]], [0.7, 0.8, 0.9]
    assert circle_nms(centers, scores, 1.0).tolist() == circle_nms(T(centers), T(scores), 1.0).tolist() == [2, 1]
    kept = circle_nms_batched([centers, [[1.0, 1.0]]], [scores, [0.5]], 1.0)
    assert kept.indices.tolist() == [[2, 1, -1], [0, -1, -1]] and kept.counts.tolist() == [2, 1]


def test_python_boxes_are_floats_and_labels_integers():
    args = dict(num_classes=3, feat_size=(8, 10), img_size=(16, 20))
    bboxes, labels = [[[1, 2, 9, 12], [3.0, 3.0, 5.0, 7.0]], [[0, 0, 4, 4]]], [[0, 2], [1]]
    expected = centernet_targets([T(b, dtype=torch.float32) for b in bboxes], [T(x) for x in labels], **args)
    got = centernet_targets(bboxes, labels, **args)
    assert isinstance(got, CenterNetTargets) and all(torch.equal(a, b) for a, b in zip(got, expected))
    with raises_text(TypeError, "labels[0] must hold integers; got the float 0.0: round or truncate to integers "
                            "first, e.g. torch.tensor(labels[0]).long()"):
        centernet_targets(bboxes, [[0.0, 2], [1]], **args)
    box = [0.5, 0.3, 0.0, 1.0, 2.0, 1.0, 0.3, 0.1, 0.2]
    options = dict(tasks=[["car"], ["truck", "bus"]], point_cloud_range=[-5, -5, -3, 5, 5, 1],
                   voxel_size=[0.1, 0.1, 4], grid_size=[100, 100, 1], out_size_factor=4)
    python = centerpoint_targets([[box, box], []], [[0, 2], []], **options)
    tensors = centerpoint_targets([T([box, box]), torch.zeros(0, 9)], [T([0, 2]), T([], dtype=torch.long)], **options)
    assert all(torch.equal(a, b) for field_a, field_b in zip(python, tensors) for a, b in zip(field_a, field_b))


def test_python_lists_that_are_not_rectangular_are_named():
    with raises_text(ValueError, "centers[0] must be a rectangular list of numbers (a tensor's nested rows); got rows "
                             "of different lengths"):
        draw_heatmap_batched(torch.zeros(1, 8, 8), [[[1, 1], [2]]], [[1, 1]])

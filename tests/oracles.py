"""The real mmdet / mmdet3d / mmpose functions, loaded by file path.

Their wheels are installed with ``--no-deps``; the files loaded here import only torch and
numpy (or are cut out of their files), so they load without the rest of each package.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import cache


@cache
def _load(package: str, relative_path: str):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed (pip install --no-deps {package})")
    path = os.path.join(spec.submodule_search_locations[0], relative_path)
    name = f"_oracle_{package}_" + relative_path.replace("/", "_").removesuffix(".py")
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    sys.modules[name] = module  # found by name: torch.compile of its functions imports their module
    return module


def mmdet_gen_gaussian_target():
    """mmdet 3.x ``gen_gaussian_target(heatmap (H, W), [x, y], radius, k)``."""
    return _load("mmdet", "models/utils/gaussian_target.py").gen_gaussian_target


def mmdet3d_draw_heatmap_gaussian():
    """mmdet3d 1.x ``draw_heatmap_gaussian(heatmap (H, W), center, radius, k)``."""
    return _load("mmdet3d", "models/utils/gaussian.py").draw_heatmap_gaussian


def draw_with_oracle(heatmap, centers, radii, heatmap_idxes, k=1.0, which="mmdet3d"):
    """Draw every box with the oracle, one call per box, into ``heatmap`` (..., H, W)."""
    draw = mmdet3d_draw_heatmap_gaussian() if which == "mmdet3d" else mmdet_gen_gaussian_target()
    planes = heatmap.view(-1, *heatmap.shape[-2:])
    for (x, y), radius, index in zip(centers.tolist(), radii.tolist(), heatmap_idxes.tolist()):
        if which == "mmdet3d":
            draw(planes[index], (x, y), radius, k)
        else:
            draw(planes[index], [x, y], radius, k)
    return heatmap


@cache
def mmdet_gaussian_focal_loss():
    """mmdet 3.x's ``gaussian_focal_loss`` (with its ``weighted_loss`` reduction) and
    ``GaussianFocalLoss``, executed from their source file.

    That file imports mmdet's registry (and through it mmengine), so it cannot be
    imported here; its functions and class are compiled from the file's own text
    with the names they use supplied: ``weighted_loss`` / ``weight_reduce_loss`` from
    mmdet's ``losses/utils.py`` (which imports only torch) and a registry stub."""
    import ast
    import typing

    import torch
    from torch import Tensor, nn

    utils = _load("mmdet", "models/losses/utils.py")
    spec = importlib.util.find_spec("mmdet")
    path = os.path.join(spec.submodule_search_locations[0], "models/losses/gaussian_focal_loss.py")
    source = open(path).read()
    tree = ast.parse(source)
    keep = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]

    class _Registry:
        @staticmethod
        def register_module():
            return lambda cls: cls

    namespace = dict(torch=torch, Tensor=Tensor, nn=nn, Optional=typing.Optional, Union=typing.Union,
                     weighted_loss=utils.weighted_loss, weight_reduce_loss=utils.weight_reduce_loss,
                     MODELS=_Registry)
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), namespace)
    return namespace["gaussian_focal_loss"], namespace["GaussianFocalLoss"]


def _cut_method(package: str, relative_path: str, class_name: str, method: str, names: dict):
    """A method's function, compiled from its class's source file with ``names`` as its globals.

    For modules that cannot be imported here (they import mmcv/mmengine): the method is
    cut out of the file's syntax tree and run with a stand-in for ``self``."""
    import ast
    import typing

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed (pip install --no-deps {package})")
    path = os.path.join(spec.submodule_search_locations[0], relative_path)
    tree = ast.parse(open(path).read())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method)
    namespace = dict(List=typing.List, Tuple=typing.Tuple, Optional=typing.Optional, **names)
    exec(compile(ast.Module(body=[fn], type_ignores=[]), path, "exec"), namespace)
    return namespace[method]


@cache
def mmdet_centernet_get_targets():
    """mmdet 3.x ``CenterNetHead.get_targets(gt_bboxes, gt_labels, feat_shape, img_shape)``,
    as ``fn(num_classes, gt_bboxes, gt_labels, feat_shape, img_shape)``."""
    import types

    import torch
    from torch import Tensor

    gaussian = _load("mmdet", "models/utils/gaussian_target.py")
    method = _cut_method("mmdet", "models/dense_heads/centernet_head.py", "CenterNetHead", "get_targets",
                         dict(torch=torch, Tensor=Tensor, gaussian_radius=gaussian.gaussian_radius,
                              gen_gaussian_target=gaussian.gen_gaussian_target))

    def get_targets(num_classes, gt_bboxes, gt_labels, feat_shape, img_shape):
        return method(types.SimpleNamespace(num_classes=num_classes), gt_bboxes, gt_labels, feat_shape, img_shape)

    return get_targets


def mmdet_gaussian_radius():
    """mmdet 3.x ``gaussian_radius(det_size, min_overlap)``."""
    return _load("mmdet", "models/utils/gaussian_target.py").gaussian_radius


def mmdet3d_gaussian_radius():
    """mmdet3d 1.x ``gaussian_radius(det_size, min_overlap)``."""
    return _load("mmdet3d", "models/utils/gaussian.py").gaussian_radius


class _LiDARBoxes:
    """What ``get_targets_single`` reads of ``LiDARInstance3DBoxes``: ``gravity_center`` and
    ``tensor``. Built from (n, 7 or 9) boxes whose z is already the gravity center, so the
    bottom center is z - dz / 2 as in mmdet3d."""

    def __init__(self, boxes):
        self.tensor = boxes.clone()
        self.tensor[:, 2] = boxes[:, 2] - boxes[:, 5] * 0.5
        self._gravity = boxes[:, :3]

    @property
    def gravity_center(self):
        return self._gravity


@cache
def mmdet3d_centerpoint_get_targets():
    """mmdet3d 1.x ``CenterHead.get_targets(batch_gt_instances_3d)`` with its
    ``get_targets_single``, as ``fn(boxes_list, labels_list, class_names, train_cfg, norm_bbox)``.
    Boxes: (n, 9) [x, y, z_gravity, dx, dy, dz, yaw, vx, vy]."""
    import types

    import numpy as np
    import torch

    gaussian = _load("mmdet3d", "models/utils/gaussian.py")

    def multi_apply(func, *args):  # mmdet's multi_apply
        return tuple(map(list, zip(*map(func, *args))))

    names = dict(torch=torch, np=np, draw_heatmap_gaussian=gaussian.draw_heatmap_gaussian,
                 gaussian_radius=gaussian.gaussian_radius, multi_apply=multi_apply, InstanceData=object,
                 Tensor=torch.Tensor)
    path = "models/dense_heads/centerpoint_head.py"
    single = _cut_method("mmdet3d", path, "CenterHead", "get_targets_single", names)
    batch = _cut_method("mmdet3d", path, "CenterHead", "get_targets", names)

    def get_targets(boxes_list, labels_list, class_names, train_cfg, norm_bbox=True):
        head = types.SimpleNamespace(class_names=class_names, task_heads=[None] * len(class_names),
                                     train_cfg=train_cfg, norm_bbox=norm_bbox)
        head.get_targets_single = lambda instances: single(head, instances)
        instances = [types.SimpleNamespace(bboxes_3d=_LiDARBoxes(b), labels_3d=l)
                     for b, l in zip(boxes_list, labels_list)]
        return batch(head, instances)

    return get_targets


def mmdet_topk_peaks():
    """mmdet 3.x ``get_topk_from_heatmap(get_local_maximum(heat, kernel), k)`` as ``fn(heat, k, kernel)``."""
    gaussian = _load("mmdet", "models/utils/gaussian_target.py")

    def peaks(heat, k, kernel=3):
        return gaussian.get_topk_from_heatmap(gaussian.get_local_maximum(heat, kernel), k)

    return peaks


@cache
def mmdet3d_centerpoint_topk():
    """mmdet3d 1.x ``CenterPointBBoxCoder._topk(scores, K)`` as ``fn(scores, K)`` (with its ``_gather_feat``)."""
    import types

    import torch
    from torch import Tensor

    names = dict(torch=torch, Tensor=Tensor)
    gather = _cut_method("mmdet3d", "models/task_modules/coders/centerpoint_bbox_coders.py", "CenterPointBBoxCoder",
                         "_gather_feat", names)
    topk = _cut_method("mmdet3d", "models/task_modules/coders/centerpoint_bbox_coders.py", "CenterPointBBoxCoder",
                       "_topk", names)
    stand_in = types.SimpleNamespace()
    stand_in._gather_feat = lambda *args: gather(stand_in, *args)
    return lambda scores, k: topk(stand_in, scores, k)


@cache
def mmdet3d_circle_nms(stable: bool = False):
    """mmdet3d 1.x ``circle_nms(dets, thresh, post_max_size)``, its numba decorator removed (plain
    Python over NumPy arrays, the same float32 arithmetic). ``stable``: its ``argsort()`` made stable,
    which fixes the order of equal scores (numba's quicksort leaves it open)."""
    import ast

    import numpy as np

    spec = importlib.util.find_spec("mmdet3d")
    path = os.path.join(spec.submodule_search_locations[0], "models/layers/box3d_nms.py")
    source = open(path).read()
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "circle_nms")
    fn.decorator_list = []
    if stable:
        text = ast.unparse(fn).replace("scores.argsort()", "scores.argsort(kind='stable')")
        assert "kind='stable'" in text
        fn = ast.parse(text).body[0]
    namespace = dict(np=np, Tensor=object)
    exec(compile(ast.Module(body=[fn], type_ignores=[]), path, "exec"), namespace)
    return namespace["circle_nms"]


def mmpose_keypoint_encoder(method: str):
    """mmpose 1.3.2's heatmap encoder of one sample, ``(heatmap_size (W, H), keypoints (N, K, D),
    keypoints_visible (N, K), sigma) -> (heatmaps (K, H, W), keypoint_weights (N, K))``:
    ``generate_gaussian_heatmaps`` ("msra"), ``generate_udp_gaussian_heatmaps`` ("udp") or
    ``generate_unbiased_gaussian_heatmaps`` ("dark"). Their file imports only NumPy."""
    module = _load("mmpose", "codecs/utils/gaussian_heatmap.py")
    return dict(msra=module.generate_gaussian_heatmaps, udp=module.generate_udp_gaussian_heatmaps,
                dark=module.generate_unbiased_gaussian_heatmaps)[method]


def _cut_function(package: str, relative_path: str, name: str, names: dict):
    """A module-level function compiled from its file's source with ``names`` as its globals, its
    decorators (numba's jit, mmdet3d's array_converter) removed."""
    import ast
    import typing

    spec = importlib.util.find_spec(package)
    path = os.path.join(spec.submodule_search_locations[0], relative_path)
    fn = next(n for n in ast.parse(open(path).read()).body if isinstance(n, ast.FunctionDef) and n.name == name)
    fn.decorator_list = []
    namespace = dict(Optional=typing.Optional, Union=typing.Union, Tuple=typing.Tuple, **names)
    exec(compile(ast.Module(body=[fn], type_ignores=[]), path, "exec"), namespace)
    return namespace[name]


@cache
def mmdet_centernet_decode_heatmap():
    """mmdet 3.x ``CenterNetHead._decode_heatmap(heat, wh, offset, img_shape, k, kernel)`` ->
    (bboxes (B, k, 5), labels (B, k)), as ``fn(heat, wh, offset, img_shape, k, kernel)``."""
    import torch
    from torch import Tensor

    gaussian = _load("mmdet", "models/utils/gaussian_target.py")
    method = _cut_method("mmdet", "models/dense_heads/centernet_head.py", "CenterNetHead", "_decode_heatmap",
                         dict(torch=torch, Tensor=Tensor, get_local_maximum=gaussian.get_local_maximum,
                              get_topk_from_heatmap=gaussian.get_topk_from_heatmap,
                              transpose_and_gather_feat=gaussian.transpose_and_gather_feat))
    return lambda *args, **kwargs: method(None, *args, **kwargs)


class _Instances:
    """mmengine's InstanceData, as far as predict_by_feat uses it: attributes set and read."""


class _BoxesStandIn:
    """What predict_by_feat reads of ``box_type_3d(tensor, code_size)``: ``tensor`` and ``bev``."""

    def __init__(self, tensor, box_dim=None):
        self.tensor = tensor

    @property
    def bev(self):
        return self.tensor[:, [0, 1, 3, 4, 6]]


@cache
def mmdet3d_centerpoint_predict(nms_rotated=None, circle_nms=None):
    """mmdet3d 1.x ``CenterHead.predict_by_feat`` (with ``CenterPointBBoxCoder.decode``, ``get_task_detections``,
    ``circle_nms`` without numba, stable as :func:`mmdet3d_circle_nms`, ``nms_bev``, ``xywhr2xyxyr``) as
    ``fn(preds_dicts, tasks, test_cfg, coder_cfg, norm_bbox)`` -> list over samples of (boxes, scores, labels).
    ``nms_rotated``: a stand-in for mmcv's ``nms_rotated(boxes, scores, thr) -> (dets, keep)``; ``circle_nms``:
    another ``circle_nms`` (e.g. the loop compiled by numba again, as mmdet3d runs it)."""
    import types

    import numpy as np
    import torch
    from torch import Tensor

    coder_path = "models/task_modules/coders/centerpoint_bbox_coders.py"
    names = dict(torch=torch, Tensor=Tensor, Dict=dict)
    coder_methods = {name: _cut_method("mmdet3d", coder_path, "CenterPointBBoxCoder", name, names)
                     for name in ("_gather_feat", "_topk", "_transpose_and_gather_feat", "decode")}
    xywhr2xyxyr = _cut_function("mmdet3d", "structures/bbox_3d/utils.py", "xywhr2xyxyr", dict(torch=torch, np=np,
                                                                                               Tensor=Tensor))
    nms_bev = _cut_function("mmdet3d", "models/layers/box3d_nms.py", "nms_bev",
                            dict(torch=torch, Tensor=Tensor, nms_rotated=nms_rotated))
    head_path = "models/dense_heads/centerpoint_head.py"
    head_names = dict(torch=torch, Tensor=Tensor, InstanceData=_Instances,
                      circle_nms=circle_nms or mmdet3d_circle_nms(True),
                      xywhr2xyxyr=xywhr2xyxyr, nms_bev=nms_bev, Dict=dict)
    predict = _cut_method("mmdet3d", head_path, "CenterHead", "predict_by_feat", head_names)
    task_detections = _cut_method("mmdet3d", head_path, "CenterHead", "get_task_detections", head_names)

    def run(preds_dicts, tasks, test_cfg, coder_cfg, norm_bbox=True):
        coder = types.SimpleNamespace(**coder_cfg)
        for name, method in coder_methods.items():
            setattr(coder, name, types.MethodType(method, coder))
        head = types.SimpleNamespace(num_classes=[t["num_class"] for t in tasks], norm_bbox=norm_bbox,
                                     bbox_coder=coder, test_cfg=test_cfg)
        head.get_task_detections = types.MethodType(task_detections, head)
        metas = [dict(box_type_3d=_BoxesStandIn) for _ in range(preds_dicts[0][0]["heatmap"].shape[0])]
        results = predict(head, preds_dicts, metas)
        return [(r.bboxes_3d.tensor, r.scores_3d, r.labels_3d) for r in results]

    return run

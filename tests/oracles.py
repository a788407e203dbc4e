"""The real mmdet / mmdet3d drawing functions, loaded by file path.

Their wheels are installed with ``--no-deps``; these two files import only torch and
numpy, so they load without the rest of either package.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache


@cache
def _load(package: str, relative_path: str):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed (pip install --no-deps {package})")
    path = os.path.join(spec.submodule_search_locations[0], relative_path)
    module_spec = importlib.util.spec_from_file_location(f"_oracle_{package}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
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

"""Repeated keypoint encodes: the launch of an earlier call with the same layout.

A pose model encodes the same batch layout every step. :func:`~gaussdraw.keypoints.keypoint_heatmaps`
keys an unchecked eager call by its options (map size, method, σ where it is a number), backend and
inputs' layouts (:func:`gaussdraw.targets.plans.plan_key`); the first call of a key whose launch was
direct (:mod:`gaussdraw.ops.launch`) leaves a :class:`KeypointPlan`, and later calls of the key skip
the input layer and the checks, allocate the outputs and repeat that launch with their own tensors.
"""

from __future__ import annotations

import torch

from ..ops.keypoint_heatmaps import keypoint_heatmaps_bound


class KeypointPlan:
    """A call's allocation and launch, repeated for new (keypoints, visible, counts[, σ tensor]) of its
    layout: returns fresh (heatmaps, weights)."""

    __slots__ = ("heat_shape", "weights_shape", "device", "relaunch")

    def __init__(self, heat_shape, weights_shape, device, relaunch):
        self.heat_shape, self.weights_shape, self.device = heat_shape, weights_shape, device
        self.relaunch = relaunch

    def __call__(self, keypoints, visible, counts, sigma_tensor=None):
        heat = torch.empty(self.heat_shape, dtype=torch.float32, device=self.device)
        weights = torch.empty(self.weights_shape, dtype=torch.float32, device=self.device)
        self.relaunch(heat, weights, keypoints, visible, counts, counts if sigma_tensor is None else sigma_tensor)
        return heat, weights


def keypoint_heatmaps_planned(*args):
    """((heatmaps, weights), plan) of the op's Triton launch on ``args`` (the op's arguments): a
    :class:`KeypointPlan` of it, or None where the launch was not direct."""
    heat, weights, relaunch = keypoint_heatmaps_bound(*args)
    plan = None if relaunch is None else KeypointPlan(heat.shape, weights.shape, heat.device, relaunch)
    return (heat, weights), plan

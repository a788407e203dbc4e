"""Pose heatmaps: mmpose's keypoint heatmap codecs for whole batches (encoding: :mod:`.encode`)."""

from .encode import KeypointHeatmaps, keypoint_heatmaps

__all__ = ["KeypointHeatmaps", "keypoint_heatmaps"]

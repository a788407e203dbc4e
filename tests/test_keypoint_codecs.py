"""gaussdraw.MSRAHeatmap / UDPHeatmap against mmpose 1.3.2's own codecs (their ``encode`` and
``decode`` cut out of the source and run with a stand-in for ``self``: the package needs mmcv)."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

import gaussdraw
from gaussdraw.bench.keypoint_decode import mmpose_decode_functions

from .oracles import _cut_method, mmpose_keypoint_encoder

pytest.importorskip("cv2")  # mmpose's refinements blur with OpenCV
CASES = [  # (codec, mmpose file, its constructor's keywords)
    ("MSRAHeatmap", "codecs/msra_heatmap.py", dict(sigma=2)),
    ("MSRAHeatmap", "codecs/msra_heatmap.py", dict(sigma=3, unbiased=True, blur_kernel_size=17)),
    ("UDPHeatmap", "codecs/udp_heatmap.py", dict(sigma=2.0)),
]
SIZES = [((192, 256), (48, 64)), ((288, 384), (72, 96)), ((10, 7), (5, 4))]


def _mmpose_codec(name, path, input_size, heatmap_size, options):
    """mmpose's codec methods on a stand-in ``self`` holding what its ``__init__`` sets."""
    decoding = mmpose_decode_functions()
    names = {key: value for key, value in decoding.items() if not key.startswith("__") and key not in ("Tuple", "Optional", "List")}
    names.update(np=np, generate_gaussian_heatmaps=mmpose_keypoint_encoder("msra"),
                 generate_udp_gaussian_heatmaps=mmpose_keypoint_encoder("udp"),
                 generate_unbiased_gaussian_heatmaps=mmpose_keypoint_encoder("dark"))
    this = types.SimpleNamespace(**{**dict(input_size=input_size, heatmap_size=heatmap_size, heatmap_type="gaussian",
                                           unbiased=False, blur_kernel_size=11), **options})
    if name == "MSRAHeatmap":
        this.scale_factor = (np.array(input_size) / heatmap_size).astype(np.float32)
    else:
        this.scale_factor = ((np.array(input_size) - 1) / (np.array(heatmap_size) - 1)).astype(np.float32)
    encode = _cut_method("mmpose", path, name, "encode", names)
    decode = _cut_method("mmpose", path, name, "decode", names)
    return (lambda *a: encode(this, *a)), (lambda heat: decode(this, heat))


@pytest.mark.parametrize("sizes", SIZES, ids=["coco", "wholebody", "tiny"])
@pytest.mark.parametrize("case", CASES, ids=["msra", "dark", "udp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_codec_equals_mmpose(case, sizes, dtype):
    name, path, options = case
    input_size, heatmap_size = sizes
    ours = getattr(gaussdraw, name)(input_size, heatmap_size, **options)
    encode, decode = _mmpose_codec(name, path, input_size, heatmap_size, options)
    rng = np.random.default_rng(hash((name, input_size, dtype == np.float32)) % 2**32)
    for _ in range(4):
        keypoints = (rng.uniform(-0.1, 1.1, (1, 17, 2)) * input_size).astype(dtype)
        visible = (rng.uniform(size=(1, 17)) > 0.2).astype(np.float32)
        want, got = encode(keypoints, visible), ours.encode(keypoints, visible)
        np.testing.assert_array_equal(got["keypoint_weights"], want["keypoint_weights"])
        # float32 Gaussians within float32 rounding of mmpose's (its DARK of float64 keypoints: float64 rounded once)
        np.testing.assert_allclose(got["heatmaps"], want["heatmaps"], rtol=0, atol=3e-7 if dtype == np.float32 else 1e-6)
        # decoding: keypoints well inside the map, a head's noise on top (a noise-only map makes DARK's Newton
        # step ill-conditioned: keypoint_decode's own tests bound that case)
        inside = (rng.uniform(0.15, 0.85, (1, 17, 2)) * input_size).astype(dtype)
        clean = encode(inside, np.ones((1, 17), dtype=np.float32))["heatmaps"]
        heat = clean + rng.uniform(0, 0.01, clean.shape).astype(np.float32)
        (want_k, want_s), (got_k, got_s) = decode(heat), ours.decode(heat)
        assert got_k.shape == want_k.shape and got_s.shape == want_s.shape
        np.testing.assert_array_equal(got_s, want_s)
        scale = np.array(input_size) / heatmap_size
        tolerance = 1e-3 * scale.max() if ours.refine != "shift" else 1e-5 * scale.max()  # DARK: 1e-3 px
        np.testing.assert_allclose(got_k, want_k, rtol=0, atol=tolerance)


@pytest.mark.parametrize("case", CASES, ids=["msra", "dark", "udp"])
def test_batched_forms_equal_the_single_sample_ones(case):
    name, _, options = case
    codec = getattr(gaussdraw, name)((192, 256), (48, 64), **options)
    rng = np.random.default_rng(3)
    keypoints = (rng.uniform(0, 1, (5, 1, 17, 2)) * (192, 256)).astype(np.float32)
    visible = np.ones((5, 1, 17), dtype=np.float32)
    batch = codec.encode_batch([torch.from_numpy(k) for k in keypoints], [torch.from_numpy(v) for v in visible])
    for b in range(5):
        single = codec.encode(keypoints[b], visible[b])
        np.testing.assert_array_equal(batch.heatmaps[b].numpy(), single["heatmaps"])
        np.testing.assert_array_equal(batch.weights[b].numpy(), single["keypoint_weights"])
    decoded = codec.decode_batch(batch.heatmaps)
    listed_k, listed_s = codec.batch_decode(batch.heatmaps)
    for b in range(5):
        np.testing.assert_allclose(decoded.keypoints[b].numpy(), listed_k[b][0], rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(decoded.scores[b].numpy(), listed_s[b][0])


def test_codec_errors_name_the_argument():
    with pytest.raises(ValueError, match="heatmap_size"):
        gaussdraw.MSRAHeatmap((192, 256), (48,), sigma=2)
    with pytest.raises(ValueError, match="combined"):
        gaussdraw.UDPHeatmap((192, 256), (48, 64), heatmap_type="combined")
    with pytest.raises(ValueError, match="one instance"):
        gaussdraw.MSRAHeatmap((192, 256), (48, 64), sigma=2).encode(np.zeros((2, 17, 2)))

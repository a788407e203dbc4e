"""The reference implementation, NVIDIA ACCV-Lab's ``draw_heatmap`` (a CUDA extension), timed on the
same inputs in the same run when it can be loaded.

``gaussdraw bench --reference DIR``: DIR holds ``load_reference.py``, which builds the extension
(``load_reference() -> (module, RaggedBatch)``). The reference takes int32 indices and float32
heatmaps only; it is given only valid inputs.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def load(directory: str | None):
    """(``accvlab.draw_heatmap`` module, ``RaggedBatch``), or None with the reason printed."""
    if not directory:
        return None
    path = os.path.join(directory, "load_reference.py")
    if not os.path.exists(path):
        print(f"reference: no load_reference.py in {directory}", file=sys.stderr)
        return None
    try:
        spec = importlib.util.spec_from_file_location("_gaussdraw_bench_reference", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.load_reference()
    except Exception as error:  # a build that fails leaves the reference columns out, with the reason
        print(f"reference: could not build or import it: {type(error).__name__}: {error}", file=sys.stderr)
        return None


def calls(reference, inputs):
    """A ``draw(heatmap)`` of the reference on ``inputs`` (a :class:`gaussdraw.bench.draw.Inputs`), in
    its own input form: concatenated int32 tensors, or ``RaggedBatch`` per input."""
    module, ragged_batch = reference
    config = inputs.config
    if config.form == "concat":
        centers, radii, idxes = (t.int() for t in (inputs.centers, inputs.radii, inputs.idxes))

        def draw(heatmap):
            module.draw_heatmap(heatmap, centers, radii, idxes, 6.0, 1.0)

        return draw
    counts = inputs.counts.int()
    centers = ragged_batch(inputs.centers.int(), sample_sizes=counts)
    radii = ragged_batch(inputs.radii.int(), sample_sizes=counts)
    labels = ragged_batch(inputs.labels.int(), sample_sizes=counts) if inputs.labels is not None else None

    def draw_batched(heatmap):
        module.draw_heatmap_batched(heatmap, centers, radii, 6.0, 1.0, labels)

    return draw_batched

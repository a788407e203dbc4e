"""Where a list input's host time goes on the GPU: each step of packing 48 per-sample tensors, per call."""

import numpy as np
import torch

from gaussdraw.bench.draw import CONFIGS, make_inputs
from gaussdraw.bench.timing import wall_time
from gaussdraw.ragged import pad_list


def per_call(fn, calls=300):
    """Wall µs per call: back-to-back calls, one sync, median of 5 rounds."""
    return wall_time(fn, torch.device("cuda"), calls) * 1e6


inputs = make_inputs(CONFIGS["seed-batched"], "cuda")
sizes = inputs.counts.tolist()
tensors = [inputs.centers[b, :n] for b, n in enumerate(sizes)]
flat = torch.cat(tensors)
lengths = np.asarray(sizes, dtype=np.int64)
rows = np.arange(flat.shape[0], dtype=np.int64) + np.repeat(np.arange(len(sizes)) * max(sizes) - (np.cumsum(lengths) - lengths), lengths)
host = torch.as_tensor(np.concatenate([lengths, rows]))
dest = torch.as_tensor(rows).cuda()
steps = {
    "pad_list (whole)": lambda: pad_list(tensors, "centers"),
    "torch.cat of 48": lambda: torch.cat(tensors),
    "shapes of 48": lambda: [t.shape[0] for t in tensors],
    "numpy rows": lambda: np.arange(flat.shape[0]) + np.repeat(np.arange(48) * 50 - (np.cumsum(lengths) - lengths), lengths),
    "as_tensor": lambda: torch.as_tensor(rows),
    "pin_memory": lambda: host.pin_memory(),
    "pinned copy non_blocking": lambda: host.pin_memory().to("cuda", non_blocking=True),
    "pageable copy (syncs)": lambda: host.to("cuda"),
    "new_zeros": lambda: flat.new_zeros((48, 50, 2)),
    "zeros + index_copy_": lambda: torch.zeros(48 * 50, 2, dtype=flat.dtype, device="cuda").index_copy_(0, dest, flat),
}
for name, fn in steps.items():
    print(f"{name}: {per_call(fn):.1f} us")

# the whole call, per form, and a cProfile of the list form's calls
import cProfile, io, pstats  # noqa: E402

from gaussdraw import draw_heatmap_batched  # noqa: E402

inputs = make_inputs(CONFIGS["seed-classwise"], "cuda")
sizes = inputs.counts.tolist()
lists = {name: [getattr(inputs, name)[b, :n] for b, n in enumerate(sizes)] for name in ("centers", "radii", "labels")}
heatmap = torch.zeros(CONFIGS["seed-classwise"].shape, device="cuda")
call = lambda: draw_heatmap_batched(heatmap, lists["centers"], lists["radii"], labels=lists["labels"])  # noqa: E731
print(f"seed-classwise lists, whole call: {per_call(call):.1f} us")
profile = cProfile.Profile()
profile.enable()
for _ in range(300):
    call()
torch.cuda.synchronize()
profile.disable()
text = io.StringIO()
pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(20)
print(text.getvalue()[:5000])

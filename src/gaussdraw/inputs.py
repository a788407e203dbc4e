"""The one input layer of the batched ops: every batched form to padded tensors + counts.

Each per-entry input of a batched op (centers, radii, labels, boxes, scores, ...) comes
in any of the forms of :mod:`gaussdraw.ragged`: a ragged batch, a list of per-sample
tensors, or a padded tensor with ``counts``. :func:`batch_inputs` turns them all into
one :class:`Batch`: padded (B, T, ...) tensors and the (B,) counts the kernels take,
with type, dtype, shape and device checked (no values read) and one set of messages.
Value checks (counts in range, sample sizes that agree) are :meth:`Batch.count_checks`,
for the caller to raise with its own value checks in one host sync
(:func:`gaussdraw.checks.raise_first`).

Example:
    >>> fields = (Field("centers", (2,)), Field("radii"))
    >>> batch = batch_inputs({"centers": [torch.tensor([[1, 2]]), torch.zeros(0, 2, dtype=torch.long)],
    ...                       "radii": [torch.tensor([3]), torch.zeros(0, dtype=torch.long)]}, fields)
    >>> batch.tensors["centers"].shape, batch.counts.tolist()
    (torch.Size([2, 1, 2]), [1, 0])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check_float_tensor, check_index_tensor
from .ragged import to_padded_all


@dataclass(frozen=True)
class Field:
    """One per-entry input: its name, its dims after (B, T) (``None``: any size), and whether it
    holds floats (else int32/int64)."""

    name: str
    trailing: tuple = ()
    floating: bool = False


@dataclass
class Batch:
    """Per-sample inputs as padded (B, T, ...) tensors, with the (B,) number of entries in use."""

    tensors: dict
    counts: torch.Tensor
    counts_name: str
    sizes: list  # (name, (B,) tensor) for each input that came with its own sample sizes
    boxes_per_sample: int

    def used(self, name: str) -> torch.Tensor | None:
        """Input ``name`` cut to the common padded length T (None where it was not given)."""
        tensor = self.tensors.get(name)
        if tensor is None or tensor.shape[1] == self.boxes_per_sample:
            return tensor
        return tensor[:, : self.boxes_per_sample]

    def in_use(self) -> torch.Tensor:
        """(B, T) bool: the entries at positions below each sample's count."""
        return torch.arange(self.boxes_per_sample, device=self.counts.device) < self.counts.unsqueeze(1)

    def count_checks(self) -> list:
        """Checks for :func:`~gaussdraw.checks.raise_first`: counts in [0, T] and sample sizes that
        agree with them."""
        checks = [((self.counts < 0) | (self.counts > self.boxes_per_sample), self.counts,
                   f"{self.counts_name} must be in [0, {self.boxes_per_sample}] (the padded length of the inputs)", 1)]
        checks += [(sizes != self.counts, sizes, f"{name} must equal {self.counts_name}", 1)
                   for name, sizes in self.sizes if sizes is not self.counts]
        return checks


def batch_inputs(values: dict, fields: tuple, counts: torch.Tensor | None = None, *, num_samples: int | None = None,
                 device: torch.device | None = None, against: str | None = None) -> Batch:
    """The padded tensors behind ``values`` (name -> a batched form, or None where optional), checked
    against ``fields`` for type, dtype, shape (B, T, *trailing) and device.

    ``num_samples`` and ``device`` default to the first input's; ``against`` names what ``device``
    belongs to, for the messages (default: the first input). ``counts`` (B,) is required when
    every input is a padded tensor; else the first ragged or list input's sizes count."""
    padded, sizes = {}, []
    padded_forms = to_padded_all({field.name: values.get(field.name) for field in fields})
    for field in fields:
        if field.name not in padded_forms:
            continue
        tensor, sample_sizes = padded_forms[field.name]
        if device is None:
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"{field.name} must hold tensors; got {type(tensor).__name__}")
            device, against = tensor.device, against or field.name
            num_samples = tensor.shape[0] if num_samples is None and tensor.dim() else num_samples
        check = check_float_tensor if field.floating else check_index_tensor
        check(tensor, field.name, (num_samples, None, *field.trailing), device, against)
        if sample_sizes is not None:
            check_index_tensor(sample_sizes, f"{field.name}.sample_sizes", (num_samples,), device, against)
            sizes.append((f"{field.name}.sample_sizes", sample_sizes))
        padded[field.name] = tensor
    if counts is not None:
        check_index_tensor(counts, "counts", (num_samples,), device, against)
        counts_name = "counts"
    elif sizes:
        counts_name, counts = sizes[0]
    else:
        names = ", ".join(padded)
        raise ValueError(f"counts is required when {names} are all padded tensors: pass counts=(B,) valid entries "
                         "per sample (torch.full((B,), T) if all are valid)")
    boxes_per_sample = min(t.shape[1] for t in padded.values())
    return Batch(padded, counts, counts_name, sizes, boxes_per_sample)

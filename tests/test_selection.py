"""The selection helpers every top-k kernel builds on (ops/kernels/common.py): ``kth_largest_by_digits``
and ``first_k`` give the same answer with 1-bit rounds (bisection) and 2-bit digits, whichever
``digit_bits`` picks, against a plain sort: ties at the k-th place (first lanes taken), the extreme int32
keys, invalid lanes, k equal to the number of valid keys."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gaussdraw.ops._triton import digit_bits

from .conftest import DEVICE_BACKENDS

DEVICES = [device for device, backend in DEVICE_BACKENDS if backend == "triton"]
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])  # the interpreter is too slow to shrink
EXTREMES = [-2147483647, -1, 0, 1, 2147483647]  # -2^31 is the padding: below every real key


def expected_selection(keys: list[int], valid: list[bool], k: int):
    """(the k-th largest valid key, chosen lanes, each chosen lane's position among the chosen in lane order)."""
    ranked = sorted((-key, lane) for lane, (key, ok) in enumerate(zip(keys, valid)) if ok)[:k]
    chosen = sorted(lane for _, lane in ranked)
    return -ranked[-1][0], chosen, {lane: position for position, lane in enumerate(chosen)}


@pytest.mark.skipif(not DEVICES, reason="needs Triton (a GPU, or the interpreter)")
@pytest.mark.parametrize("device", DEVICES or ["cpu"])
@pytest.mark.parametrize("bits", [1, 2])
@SETTINGS
@given(data=st.data(), n=st.integers(1, 64), levels=st.sampled_from([3, 50, 2**31]))
def test_both_digit_widths_select_the_sorted_answer(device, bits, data, n, levels):
    from ._selection_kernels import selection_kernel

    pool = st.sampled_from(EXTREMES) | st.integers(-min(levels, 2**31 - 1), min(levels, 2**31 - 1))
    keys = data.draw(st.lists(pool, min_size=n, max_size=n))
    valid = data.draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(any))
    k = data.draw(st.integers(1, sum(valid)))
    kth, chosen_lanes, position = expected_selection(keys, valid, k)
    block = max(16, 1 << (n - 1).bit_length())
    outputs = [torch.full((n,), -7, dtype=torch.int32, device=device) for _ in range(2)]
    kth_found = torch.full((1,), -7, dtype=torch.int32, device=device)
    selection_kernel[(1,)](torch.tensor(keys, dtype=torch.int32, device=device),
                           torch.tensor(valid, dtype=torch.int32, device=device), outputs[0], outputs[1], kth_found,
                           n, k, BLOCK=block, BITS=bits)
    chosen, at = (t.cpu().tolist() for t in outputs)
    assert int(kth_found) == kth
    assert [lane for lane in range(n) if chosen[lane]] == chosen_lanes
    assert all(at[lane] == position[lane] for lane in chosen_lanes)


@pytest.mark.skipif(not DEVICES, reason="needs Triton (a GPU, or the interpreter)")
@pytest.mark.parametrize("device", DEVICES or ["cpu"])
@pytest.mark.parametrize("bits", [1, 2])
@pytest.mark.parametrize("case", ["all-equal", "all-lowest", "random"])
def test_the_largest_block_on_two_bits_counts_every_key(device, bits, case):
    """8,192 keys (the most digit_bits sends to 2 bits with 16 warps): counts up to 8,192 in each packed field."""
    from ._selection_kernels import selection_kernel

    n = 8192
    generator = torch.Generator().manual_seed(bits)
    keys = {"all-equal": torch.full((n,), 12345), "all-lowest": torch.full((n,), -2147483647),
            "random": torch.randint(-2**31 + 1, 2**31 - 1, (n,), generator=generator)}[case].to(torch.int32)
    for k in (1, 100, n - 1, n):
        expected = int(torch.sort(keys, descending=True).values[k - 1])
        outputs = [torch.full((n,), -7, dtype=torch.int32, device=device) for _ in range(2)]
        kth_found = torch.full((1,), -7, dtype=torch.int32, device=device)
        selection_kernel[(1,)](keys.to(device), torch.ones(n, dtype=torch.int32, device=device), outputs[0],
                               outputs[1], kth_found, n, k, BLOCK=n, BITS=bits)
        assert int(kth_found) == expected
        assert int(outputs[0].sum()) == k


def test_digit_bits_takes_two_bits_only_where_a_thread_holds_few_keys():
    assert digit_bits(1024, 4) == 2 and digit_bits(2048, 4) == 2 and digit_bits(8192, 16) == 2
    assert digit_bits(4096, 4) == 1 and digit_bits(16384, 16) == 1 and digit_bits(32768, 16) == 1

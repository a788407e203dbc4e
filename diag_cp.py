import torch, sys
sys.path.insert(0, "tests"); sys.path.insert(0, ".")
from tests.test_centerpoint_tasks import _decoding, _heads
from gaussdraw.decode.centerpoint import _candidates
from gaussdraw.dispatch import route
from gaussdraw.ops._constants import device_constant
from gaussdraw.ops.centerpoint_tasks import centerpoint_tasks_triton
for size, batch in [(128, 1), (180, 4)]:
    classes = [1, 2, 2, 1, 2, 2]
    heads = [{n: t.cuda() for n, t in h.items()} for h in _heads(size, batch, classes, size, size)]
    for head in heads:
        head["heatmap"] -= 3.0
    decoding = _decoding(classes, torch.device("cuda"), True, 0.1, True)
    expected = _candidates(heads, classes, True, 500, decoding, route("triton", torch.device("cuda")), "triton")
    got = centerpoint_tasks_triton(heads, classes, 500, decoding[0], device_constant(tuple(classes), torch.int64, torch.device("cuda")), *decoding[1:])
    counts = got[3]
    valid = torch.arange(500, device="cuda") < counts.unsqueeze(1)
    print(size, batch, "counts equal", torch.equal(counts, expected[3]))
    for name, a, e in zip(["boxes", "scores", "labels"], got[:3], expected[:3]):
        print(" ", name, tuple(a.shape), tuple(e.shape), a.dtype, e.dtype)
        if a.shape != e.shape: continue
        d = (a.double() - e.double()).abs()
        v = valid.view(*valid.shape, *([1] * (a.dim() - 2))).expand_as(a)
        print("   valid rows: differing", int((d[v] > 0).sum()), "max", float(d[v].max()) if v.any() else 0,
              "| past counts: differing", int((d[~v] > 0).sum()), "nan-mismatch", int((a.isnan() != e.isnan()).sum()))
        if a.dim() == 3:
            for c in range(a.shape[2]):
                dc = d[..., c][valid]
                if (dc > 0).any():
                    i = int(dc.argmax())
                    print("    column", c, "differing", int((dc > 0).sum()), "max", float(dc.max()), "got", float(a[..., c][valid][i]), "expected", float(e[..., c][valid][i]))

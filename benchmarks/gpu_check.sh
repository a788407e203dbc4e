#!/usr/bin/env bash
# One device-machine call: GPU facts, the test suite on the GPU, and the full benchmark.
# Usage (on the GPU machine, repository root): OUT=dir bash benchmarks/gpu_check.sh
# Expects the mmdet/mmdet3d wheels (test oracles) in .whl/ when there is no network.
set -uo pipefail
OUT=${OUT:-benchmarks/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi -L | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/oracles .whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/oracles
fi
timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -p no:cacheprovider -rfs ${TESTS:-tests} 2>&1 | grep -v "^DEBUG" | tail -n 60 | tee "$OUT/gpu_tests.txt"
[ -n "${VARIANTS:-}" ] && timeout 200 python3 -m gaussdraw bench --variants "$OUT/variants.json" 2>&1 | tee "$OUT/variants.txt"
[ -n "${LOSS_VARIANTS:-}" ] && timeout 200 python3 -m gaussdraw bench --loss-variants "$OUT/loss-variants.json" 2>&1 | tee "$OUT/loss-variants.txt"
[ -n "${LOSS_PROFILE:-}" ] && timeout 200 python3 benchmarks/loss_profile.py 2>&1 | head -60 | tee "$OUT/loss-profile.txt"
[ -n "${LOSS:-}" ] && timeout 300 python3 -m gaussdraw bench --loss --json "$OUT/loss.json" 2>&1 | grep -v "^DEBUG" | tail -12 | tee "$OUT/loss.txt"
[ -n "${PROFILE:-}" ] && python3 -m gaussdraw bench --profile 2>&1 | head -45 | tee "$OUT/profile.txt"
[ -n "${TARGETS:-}" ] && timeout ${TARGETS_TIMEOUT:-300} python3 -m gaussdraw bench --targets --json "$OUT/targets.json" 2>/dev/null | tee "$OUT/targets.txt"
[ -n "${DDP:-}" ] && timeout 300 torchrun --nproc-per-node=${DDP} benchmarks/ddp_check.py --out "$OUT/ddp.json" 2>&1 | tail -n 40 | tee "$OUT/ddp.txt"
[ -z "${NO_BENCH:-}" ] && timeout ${BENCH_TIMEOUT:-400} python3 -m gaussdraw bench ${BENCH_ARGS:-} --json "$OUT/bench.json" --plot "$OUT/scaling.png" 2>/dev/null | tee "$OUT/bench.txt"

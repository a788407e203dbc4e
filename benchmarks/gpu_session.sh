#!/usr/bin/env bash
# One device-machine call: the test suite on the GPU (in parallel), then the benchmark suites, each
# under its own time limit. Usage (repository root, on the GPU machine): OUT=dir bash benchmarks/gpu_session.sh
# STEPS picks the steps (default: all but kp-variants): tests decode keypoints targets seeds peaks cp-decode plane-top
# kp-variants.
# The whole H200 suite takes ~4.5 min on 15 workers: with it, split the steps over two calls (a call runs 600 s at most).
set -uo pipefail
OUT=${OUT:-benchmarks/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then  # the oracles (mmdet, mmdet3d, mmpose), without their dependencies
  python3 -m pip install -q --no-index --no-deps --target /tmp/oracles .whl/*.whl
fi
export PYTHONPATH=src:/tmp/oracles
STEPS=${STEPS:-tests decode keypoints targets seeds peaks cp-decode plane-top}
log="$OUT/log.txt"
{ nvidia-smi -L; python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } >> "$log"
step() { [[ " $STEPS " == *" $1 "* ]]; }
step tests && timeout ${TEST_TIMEOUT:-330} python3 -m pytest -q -n ${WORKERS:-15} -p no:cacheprovider -p no:logging \
  ${TESTS:-tests} > "$OUT/tests.txt" 2>&1; tail -3 "$OUT/tests.txt" >> "$log"
step decode && timeout 150 python3 -m gaussdraw bench --decode --json "$OUT/decode.json" >> "$log" 2>&1
step keypoints && timeout 120 python3 -m gaussdraw bench --keypoints --no-cpu --json "$OUT/keypoints.json" >> "$log" 2>&1
step targets && timeout 60 python3 -m gaussdraw bench --targets --no-cpu --json "$OUT/targets.json" >> "$log" 2>&1
step seeds && timeout 90 python3 -m gaussdraw bench seed-concat seed-batched seed-classwise --no-cpu --no-baseline \
  --reference .ref/accvlab --json "$OUT/seeds.json" >> "$log" 2>&1
step peaks && timeout 90 python3 benchmarks/peaks_profile.py --quick \
  > "$OUT/peaks.txt" 2>&1
step cp-decode && timeout 90 python3 benchmarks/centerpoint_decode_profile.py > "$OUT/cp-decode.txt" 2>&1
step plane-top && timeout 180 python3 benchmarks/plane_top_variants.py > "$OUT/plane-top.txt" 2>&1
step kp-variants && timeout ${KP_TIMEOUT:-480} python3 benchmarks/keypoint_decode_profile.py > "$OUT/kp-decode.txt" 2>&1
echo "done" >> "$log"

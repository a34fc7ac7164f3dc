#!/usr/bin/env bash
# Issue 14 point 4 on the lent GPU machine, which has JAX but no TensorFlow, Keras or package registry.
# Run from the repository root with .whl/ (keras, namex, optree, typing_extensions, deflate) and .gpu_carry/ (models,
# references, images) carried, both made by bench/gpu_probe_prepare.sh. Writes gpu_probe.json, gpu_probe.log and nvidia_smi.txt under $OUT.
# Extra arguments go to `python -m bench.gpu_probe probe` (later flags win: `--batch_sizes 4 --processes 1`).
set -euo pipefail
OUT="${OUT:-/tmp/gpu_probe_out}"
SITE=/tmp/site
mkdir -p "$OUT"
# pip --target is an unzip for these wheels; the zipfile fallback covers a python3 without pip.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl ||
  for wheel in .whl/*.whl; do python3 -m zipfile -e "$wheel" "$SITE"; done
export PYTHONPATH="$SITE:$PWD" KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi >"$OUT/nvidia_smi.txt" 2>&1 || true
# The probe writes its JSON after every stage, so a run cut short by the timeout still returns what it measured.
timeout "${PROBE_SECONDS:-330}" python3 -m bench.gpu_probe probe \
  --model .gpu_carry/cam_mobilenetv2_a100_224.keras --model .gpu_carry/cam_mobilenetv2_a035_128.keras \
  --reference .gpu_carry/reference_224.npz --reference .gpu_carry/reference_128.npz \
  --images .gpu_carry/images --min_seconds 1.0 --nonmodel_seconds 2 \
  --out "$OUT/gpu_probe.json" "$@" 2>&1 | tee "$OUT/gpu_probe.log"

#!/usr/bin/env bash
# Prepares what bench/gpu_probe.sh needs on a GPU machine that has JAX but no Keras, TensorFlow or registry:
#   .whl/        Keras (the version installed here) and the wheels it needs beyond what that machine has
#   .gpu_carry/  the bench's two models, TensorFlow CPU references of their outputs, 200 archive images
# Both folders are git-ignored (.git/info/exclude); carry them with the run. Needs `make bench` to have made
# bench/out (models and archive) first. Run from the repository root: bash bench/gpu_probe_prepare.sh
set -euo pipefail
PY=.venv/bin/python
OUT=bench/out
grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >>.git/info/exclude
grep -qx '/.gpu_carry/' .git/info/exclude || echo '/.gpu_carry/' >>.git/info/exclude
rm -rf .whl .gpu_carry
mkdir -p .whl .gpu_carry/images
keras_version=$($PY -c 'import keras; print(keras.__version__)')
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64)
for wheel in "keras==$keras_version" namex optree typing_extensions deflate; do
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "$wheel"
done
cp "$OUT/cam_mobilenetv2_a100_224.keras" "$OUT/cam_mobilenetv2_a035_128.keras" .gpu_carry/
# 200 images in a fixed random order, flat names (the device tool keeps paths short).
$PY - <<'EOF'
import random
import shutil
from pathlib import Path

paths = sorted(Path("bench/out/archive_2000p/MURA-v1.1/train").rglob("*.png"))
for index, path in enumerate(random.Random(14).sample(paths, 200)):
    shutil.copyfile(path, Path(".gpu_carry/images") / f"image{index:03d}.png")
EOF
for model in cam_mobilenetv2_a100_224 cam_mobilenetv2_a035_128; do
  size=${model##*_}
  $PY -m bench.gpu_probe reference --model ".gpu_carry/$model.keras" --images .gpu_carry/images \
    --out ".gpu_carry/reference_$size.npz"
done
du -sh .whl .gpu_carry

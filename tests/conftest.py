"""Shared fixtures and helpers: a tiny CAM classifier, a small MURA-layout archive with bad files in it,
loaded images and a local TestPipeline."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from PIL import Image

from transforms.images import LoadedImage
from transforms.mura import ManifestEntry
from transforms.schema import RunFacts

if TYPE_CHECKING:
    import keras

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session", autouse=True)
def litert_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's own cache home: runs never touch the user's ~/.cache, and keep their LiteRT conversions
    (transforms/backends/litert_cache.py) for this session only. So only the first LiteRT run of a model in the
    session converts it; a test about conversion itself passes its own --litert_cache_dir (or calls
    `checked_flatbuffer` without a cache)."""
    folder = tmp_path_factory.mktemp("xdg_cache_home")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous

TINY_INPUT = 32

# Run-wide facts for stages tested on their own.
TEST_FACTS = RunFacts(run_id="test", model_sha256="0" * 64, threshold=0.2, class_names=("normal", "abnormal"))


def local_pipeline() -> TestPipeline:
    """A TestPipeline on FnApiRunner: Beam 2.77's DirectRunner would first try to download Prism."""
    return TestPipeline(runner="FnApiRunner")


def random_batch(size: int, height: int = TINY_INPUT, width: int = TINY_INPUT, seed: int = 1) -> np.ndarray:
    """A float32 RGB batch in 0..255, as the model's input."""
    return np.random.default_rng(seed).uniform(0, 255, (size, height, width, 3)).astype(np.float32)


def loaded_image(index: int, width: int = 50, height: int = 40) -> LoadedImage:
    """A decoded image `img<index>.png` of random pixels, with a random model-sized input."""
    rng = np.random.default_rng(index)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return LoadedImage(
        ManifestEntry(image_path=f"img{index}.png"),
        f"/x/img{index}.png",
        rgb,
        rng.uniform(0, 255, (TINY_INPUT, TINY_INPUT, 3)).astype(np.float32),
    )


def tiny_feature_maps(inputs: keras.KerasTensor) -> keras.KerasTensor:
    """Rescaling -> conv -> pool -> conv 'last_conv': 16x16x6 feature maps of a 32x32 input."""
    import keras

    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    return keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="last_conv")(x)


def build_tiny_cam_model(seed: int = 0, units: int = 2, activation: str = "softmax") -> keras.Model:
    """Input 32x32x3 -> Rescaling -> 2 conv blocks -> GAP -> Dense: the classic CAM head, tiny."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((TINY_INPUT, TINY_INPUT, 3))
    x = keras.layers.GlobalAveragePooling2D()(tiny_feature_maps(inputs))
    outputs = keras.layers.Dense(units, activation=activation, name="classifier")(x)
    return keras.Model(inputs, outputs)


def build_tiny_sequential_model() -> keras.Model:
    """A Sequential CAM classifier: one conv, GAP, a 3-class Dense softmax."""
    import keras

    return keras.Sequential(
        [
            keras.Input((TINY_INPUT, TINY_INPUT, 3)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax", name="classifier"),
        ]
    )


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny .keras CAM classifier (feature maps 16x16x6, two classes)."""
    path = tmp_path_factory.mktemp("model") / "tiny_cam.keras"
    build_tiny_cam_model().save(path)
    return path


@pytest.fixture(scope="session")
def flatten_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved classifier WITHOUT the GAP -> Dense head (Flatten instead)."""
    import keras

    inputs = keras.Input((TINY_INPUT, TINY_INPUT, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    path = tmp_path_factory.mktemp("model") / "flatten.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def xray_like(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A grey uint8 image with a bright blob somewhere: enough structure for CAMs to vary."""
    image = rng.integers(0, 40, size=(height, width), dtype=np.uint8)
    cx, cy = int(rng.integers(width // 4, 3 * width // 4)), int(rng.integers(height // 4, 3 * height // 4))
    cv2.circle(image, (cx, cy), max(4, min(width, height) // 6), 220, -1)
    return image


@dataclasses.dataclass(frozen=True)
class TinyArchive:
    """A MURA-layout folder whose manifest names good and bad images."""

    root: Path  # folder holding MURA-v1.1/
    manifest: Path  # valid_image_paths.csv
    labels: Path  # valid_labeled_studies.csv
    good: tuple[str, ...]  # manifest paths that decode
    bad: dict[str, str]  # manifest path -> a word its error must contain
    sizes: dict[str, tuple[int, int]]  # manifest path -> (width, height) of good images


def write_tiny_archive(root: Path, seed: int = 0) -> TinyArchive:
    """Write good images in every supported flavour, bad files, and a manifest with blank lines."""
    rng = np.random.default_rng(seed)
    base = "MURA-v1.1/valid"
    good: list[str] = []
    sizes: dict[str, tuple[int, int]] = {}

    def place(rel: str) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    flavours = ["grey", "rgb", "rgba", "palette", "grey16", "jpeg", "grey", "grey"]
    for index, flavour in enumerate(flavours):
        part = ["XR_WRIST", "XR_HAND", "XR_ELBOW"][index % 3]
        outcome = "positive" if index % 2 else "negative"
        ext = "jpg" if flavour == "jpeg" else "png"
        rel = f"{base}/{part}/patient{10000 + index // 2:05d}/study1_{outcome}/image{index % 2 + 1}.{ext}"
        width, height = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        grey = xray_like(rng, width, height)
        path = place(rel)
        if flavour in ("grey", "jpeg"):
            Image.fromarray(grey).save(path)
        elif flavour == "rgb":
            Image.fromarray(np.dstack([grey, grey, grey // 2])).save(path)
        elif flavour == "rgba":
            Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 255)])).save(path)
        elif flavour == "palette":
            Image.fromarray(grey).convert("P").save(path)
        elif flavour == "grey16":
            cv2.imwrite(str(path), grey.astype(np.uint16) * 16)
        good.append(rel)
        sizes[rel] = (width, height)

    bad = {
        f"{base}/XR_WRIST/patient20000/study1_positive/image1.png": "not found",
        f"{base}/XR_WRIST/patient20001/study1_negative/image1.png": "empty",
        f"{base}/XR_HAND/patient20002/study1_positive/image1.png": "truncated",
        f"{base}/XR_HAND/patient20003/study1_negative/image1.png": "not a PNG or JPEG",
        "not/a/mura/path.png": "not found",
    }
    ok_png = cv2.imencode(".png", xray_like(rng, 50, 60))[1].tobytes()
    place(f"{base}/XR_WRIST/patient20001/study1_negative/image1.png").write_bytes(b"")
    place(f"{base}/XR_HAND/patient20002/study1_positive/image1.png").write_bytes(ok_png[: len(ok_png) // 2])
    place(f"{base}/XR_HAND/patient20003/study1_negative/image1.png").write_bytes(b"this is not an image at all")

    lines = []
    for rel in [*good, *bad]:
        lines.append(f"{rel}  ")  # trailing spaces are tolerated
        lines.append("")  # and blank lines skipped
    manifest = place("MURA-v1.1/valid_image_paths.csv")
    manifest.write_bytes(("\r\n".join(lines) + "\r\n").encode())  # CRLF endings
    studies = sorted({rel.rsplit("/", 1)[0] + "/" for rel in [*good, *bad] if rel.startswith("MURA")})
    labels = place("MURA-v1.1/valid_labeled_studies.csv")
    labels.write_text("".join(f"{s},{1 if '_positive' in s else 0}\n" for s in studies))
    return TinyArchive(root, manifest, labels, tuple(good), bad, sizes)


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> TinyArchive:
    """The tiny archive, written once per test session."""
    return write_tiny_archive(tmp_path_factory.mktemp("archive"))


def write_audited_run(output: Path, seed: int = 0) -> list[dict]:
    """A finished run's records/, heatmaps/ and run_info.json, made without a model: 3 body parts,
    labelled studies of 1-3 images, one error row, one image without a study; returns the records."""
    import json

    from transforms import files
    from transforms.cam import CamStats
    from transforms.flags import FLAG_NAMES
    from transforms.schema import RECORD_SCHEMA, Prediction, to_record

    rng = np.random.default_rng(seed)
    records = []
    for index in range(36):
        part = ("XR_HAND", "XR_WRIST", "XR_ELBOW")[index % 3]
        study = f"valid/{part}/patient{index // 6:05d}/study{index % 2 + 1}_x/"
        label = int((index // 6 + index % 2) % 2)
        entry = ManifestEntry(image_path=f"{study}image{index}.png", study_id=study, patient_id=f"p{index // 6}",
                              body_part=part, split="valid", label=label)
        if index == 5:
            records.append(to_record(entry, "/x", TEST_FACTS, error="file not found: /x"))
            continue
        abnormal = float(np.clip(rng.normal(0.3 + 0.4 * label, 0.2), 0.01, 0.99))
        heatmap = output / "heatmaps" / f"{entry.image_path}.jpg"
        heatmap.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(heatmap), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
        flags = {name: bool(rng.random() < 0.2) for name in FLAG_NAMES}
        records.append(to_record(
            entry, "/x", TEST_FACTS, size=(60, 40),
            prediction=Prediction((1 - abnormal, abnormal), 1, np.ones((2, 3), np.float32)),
            stats=CamStats(int(rng.integers(60)), int(rng.integers(40)), 0.5, 0.5, 1.0, float(rng.random())),
            heatmap_path=str(heatmap), flags=flags,
        ))
    loose = ManifestEntry(image_path="loose.png", label=None)
    records.append(to_record(loose, "/x", TEST_FACTS, size=(60, 40),
                             prediction=Prediction((0.4, 0.6), 1, np.ones((2, 3), np.float32)),
                             stats=CamStats(1, 1, 0.1, 0.1, 1.0, 0.2),
                             flags={name: False for name in FLAG_NAMES}))
    import pyarrow as pa

    files.write_parquet(str(output / "records" / "part-00000-of-00001.parquet"),
                        pa.Table.from_pylist(records, schema=RECORD_SCHEMA))
    (output / "run_info.json").write_text(json.dumps({
        "run_id": "test", "model_sha256": "0" * 64, "class_names": ["normal", "abnormal"],
        "study_threshold": 0.5, "argv": ["--model", "m.keras"], "manifest": "m.csv"}))
    return records

"""Training: a tiny run gives a model the pipeline accepts; training and inference load identically."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.run import run
from reference import train
from reference.synth import generate_archive
from transforms.devices import ImageThreads
from transforms.images import _LoadImageDoFn
from transforms.imaging import DecodePolicy
from transforms.mura import ManifestEntry
from transforms.schema import RunFacts


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_archive(root, patients=14, seed=3, workers=1)
    return root / "MURA-v1.1"


def test_training_and_inference_load_identical_tensors(small_archive: Path) -> None:
    relative = (small_archive / "valid_image_paths.csv").read_text().splitlines()[0]
    uri = str(small_archive.parent / relative)
    trained, ok = train.load_for_training(uri.encode(), 64)
    facts = RunFacts("r", "0" * 64, 0.2, ("normal", "abnormal"))
    dofn = _LoadImageDoFn(str(small_archive.parent), (64, 64), facts, DecodePolicy(), ImageThreads(1))
    loaded = dofn.work(ManifestEntry(relative))
    assert ok and trained.dtype == np.float32
    np.testing.assert_array_equal(trained, loaded.model_input)


@pytest.mark.parametrize("mode", ["minmax", "scale"])
def test_training_and_inference_map_sixteen_bit_grey_identically(tmp_path: Path, mode: str) -> None:
    twelve_bit = (np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 3) % 4096
    cv2.imwrite(str(tmp_path / "grey16.png"), twelve_bit)
    trained, ok = train.load_for_training(str(tmp_path / "grey16.png").encode(), 32, mode)
    facts = RunFacts("r", "0" * 64, 0.2, ("normal", "abnormal"))
    dofn = _LoadImageDoFn(str(tmp_path), (32, 32), facts, DecodePolicy(sixteen_bit=mode), ImageThreads(1))
    loaded = dofn.work(ManifestEntry("grey16.png"))
    assert ok
    np.testing.assert_array_equal(trained, loaded.model_input)
    # the two policies give different pixels for 12-bit data: the option reaches the decoder
    other_mode = "scale" if mode == "minmax" else "minmax"
    other, _ = train.load_for_training(str(tmp_path / "grey16.png").encode(), 32, other_mode)
    assert not np.array_equal(trained, other)


def test_unreadable_training_image_is_flagged_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"nope")
    pixels, ok = train.load_for_training(str(tmp_path / "bad.png").encode(), 32)
    assert not ok and pixels.shape == (32, 32, 3)


def test_class_weights_balance_the_classes() -> None:
    weights = train.class_weights(np.array([0, 0, 0, 1]))
    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}


@pytest.mark.slow
def test_tiny_training_run_gives_a_model_the_pipeline_accepts(small_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.keras"
    train.main(
        [
            "--manifest", str(small_archive / "train_image_paths.csv"),
            "--labels", str(small_archive / "train_labeled_studies.csv"),
            "--valid_manifest", str(small_archive / "valid_image_paths.csv"),
            "--valid_labels", str(small_archive / "valid_labeled_studies.csv"),
            "--out", str(out), "--epochs", "1", "--image_size", "32", "--alpha", "0.35",
            "--batch_size", "16", "--verbose", "0",
        ]
    )  # fmt: skip
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["class_names"] == ["normal", "abnormal"] and sidecar["input_size"] == [32, 32]
    assert len(sidecar["train_manifest_sha256"]) == 64
    assert sidecar["metrics"]["valid"]["study_kappa"] is not None
    summary = run(["--manifest", str(small_archive / "valid_image_paths.csv"), "--model", str(out),
                   "--output", str(tmp_path / "audit"), "--no_heatmaps"])
    valid_lines = (small_archive / "valid_image_paths.csv").read_text().splitlines()
    assert summary.rows == summary.ok == len(valid_lines)

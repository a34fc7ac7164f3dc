"""Loading a Keras model file safely from a FileSystems path, and identifying it by hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import TINY_INPUT, build_tiny_cam_model
from transforms.cam_head import find_cam_head, model_input_size
from transforms.model_files import file_sha256, load_keras_model


def test_file_sha256_is_the_hex_digest() -> None:
    assert file_sha256(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_load_keras_model_checks_path_and_hashes(tmp_path: Path, tiny_model_path: Path) -> None:
    model, sha = load_keras_model(str(tiny_model_path))
    assert model_input_size(model) == (TINY_INPUT, TINY_INPUT)
    assert sha == hashlib.sha256(tiny_model_path.read_bytes()).hexdigest()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_keras_model(str(tmp_path / "missing.keras"))
    with pytest.raises(ValueError, match=r"\.keras or \.h5"):
        load_keras_model(str(tmp_path / "model.pt"))


def test_legacy_h5_loads(tmp_path: Path) -> None:
    path = tmp_path / "tiny.h5"
    build_tiny_cam_model().save(path)
    model, _ = load_keras_model(str(path))
    assert find_cam_head(model).num_classes == 2

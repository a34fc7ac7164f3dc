"""Model files: load a Keras classifier from any FileSystems path, safely, and identify it by hash."""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any

from transforms import files

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def file_sha256(data: bytes) -> str:
    """Hex SHA-256 of the model file's bytes: identifies the model in every record."""
    return hashlib.sha256(data).hexdigest()


def load_keras_model(path: str) -> tuple[Any, str]:
    """Load a .keras or legacy .h5 model from any Beam FileSystems path, safely, without compiling.

    Returns:
        (model, sha256 of the file).
    """
    import keras

    suffix = os.path.splitext(path)[1].lower()
    if suffix not in MODEL_SUFFIXES:
        raise ValueError(f"--model must be a .keras or .h5 file, got {path!r}")
    if not files.exists(path):
        raise FileNotFoundError(f"--model {path!r} does not exist")
    data = files.read_bytes(path)
    # Keras loads from a local file: copy remote (gs://, s3://) bytes to a private temp file.
    with tempfile.TemporaryDirectory(prefix="cam_audit_model_") as tmp:
        local = os.path.join(tmp, "model" + suffix)
        with open(local, "wb") as out:
            out.write(data)
        try:
            model = keras.saving.load_model(local, compile=False, safe_mode=True)
        except Exception as exc:  # noqa: BLE001 - whatever Keras raises, the file is not a model it can load
            raise ValueError(
                f"--model {path!r} is not a loadable Keras model ({len(data):,} bytes): {type(exc).__name__}: {exc}"
            ) from exc
    return model, file_sha256(data)

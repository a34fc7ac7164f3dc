"""LiteRT flatbuffers kept between runs on the launching machine: a model is converted once, not at every run.

The key is everything the flatbuffer is made from: the model file's SHA-256, the method and input scaling, the
TensorFlow and Keras versions that convert it, and the source of the code that builds and converts the one-pass
model, so a change to any of them makes a new entry. A cached flatbuffer is still checked against TensorFlow on the
probe inputs at every run (`choice.checked_flatbuffer`), as a fresh conversion is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import uuid
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

CACHE_SUBDIR = ("cam-audit", "litert")
SUFFIX = ".tflite"
# The modules whose code decides what the flatbuffer holds: the one-pass model's graph and its conversion.
SOURCE_MODULES = (
    "transforms.methods.base", "transforms.methods.cam", "transforms.cam_head", "transforms.backends.litert",
)


def default_cache_dir() -> str:
    """$XDG_CACHE_HOME/cam-audit/litert, or ~/.cache/cam-audit/litert: where per-user caches live on Linux."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, *CACHE_SUBDIR)


def source_digest(modules: tuple[str, ...] = SOURCE_MODULES) -> str:
    """SHA-256 over the source files of `modules`, in order."""
    import importlib

    digest = hashlib.sha256()
    for name in modules:
        digest.update(name.encode() + b"\0" + Path(importlib.import_module(name).__file__).read_bytes() + b"\0")
    return digest.hexdigest()


def conversion_key(model_sha256: str, method: str, preprocess: str) -> str:
    """The cache key of a model's LiteRT conversion: the model, how it is explained, and what converts it."""
    import keras
    import tensorflow as tf

    parts = (model_sha256, method, preprocess, tf.__version__, keras.__version__, source_digest())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class LiteRtCache:
    """One model's entry in a cache folder: `load` it if present, `store` it after a checked conversion."""

    folder: str
    key: str

    @property
    def path(self) -> str:
        return os.path.join(self.folder, self.key + SUFFIX)

    def load(self) -> bytes | None:
        """The cached flatbuffer, or None when there is none (or it cannot be read)."""
        try:
            with open(self.path, "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def store(self, flatbuffer: bytes) -> None:
        """Write the entry whole (a temporary file renamed into place); a cache that cannot be written only warns."""
        temporary = os.path.join(self.folder, f".{self.key}.{uuid.uuid4().hex}.tmp")
        try:
            os.makedirs(self.folder, exist_ok=True)
            with open(temporary, "wb") as handle:
                handle.write(flatbuffer)
            os.replace(temporary, self.path)
        except OSError as error:
            _LOGGER.warning("could not keep the converted LiteRT model in %s (%s): the next run converts it again",
                            self.folder, error)
            try:
                os.remove(temporary)
            except OSError:
                pass

"""LiteRT flatbuffers kept between runs on the launching machine: a model is converted once, not at every run.

The key is everything the flatbuffer is made from: the model file's SHA-256, the method and input scaling, the
TensorFlow and Keras versions that convert it, and the source of the code that loads the model and builds and
converts the one-pass model, so a change to any of them makes a new entry. A cached flatbuffer is still checked
against TensorFlow on the probe inputs at every run (`choice.checked_flatbuffer`), as a fresh conversion is; a
flatbuffer made to pass those four fixed probes would still be trusted, so the cache is used only in a folder of
the user's own that others cannot write (`unsafe_cache_dir`; a new folder is created so).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import stat
import time
from pathlib import Path

from transforms import files

_LOGGER = logging.getLogger(__name__)

CACHE_SUBDIR = ("cam-audit", "litert")
SUFFIX = ".tflite"
# The modules whose code decides what the flatbuffer holds: the model as loaded, the one-pass graph, its conversion.
SOURCE_MODULES = (
    "transforms.model_files", "transforms.methods.base", "transforms.methods.cam", "transforms.cam_head",
    "transforms.backends.litert",
)
# Entries unused this long are removed when a new one is written: every upgrade or code change makes new keys.
UNUSED_ENTRY_SECONDS = 30 * 24 * 3600
# The only names the cache writes (and so the only ones it ever removes): entries, and the temporary files of
# `files.write_bytes_atomic`.
ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.tflite")
TEMP_NAME = re.compile(re.escape(files.TEMP_PREFIX) + r"[0-9a-f]{32}")
# A temporary file this old belongs to a writer that died before its rename.
ABANDONED_TEMP_SECONDS = 3600


def default_cache_dir() -> str:
    """$XDG_CACHE_HOME/cam-audit/litert, else ~/.cache/cam-audit/litert; '' (no cache) when neither is an
    absolute path (the XDG spec ignores a relative $XDG_CACHE_HOME; a user without a home has no cache)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, *CACHE_SUBDIR)
    home = os.path.expanduser("~")
    return os.path.join(home, ".cache", *CACHE_SUBDIR) if os.path.isabs(home) and home != "/" else ""


def check_cache_dir(folder: str) -> None:
    """--litert_cache_dir must be a folder of the launching machine: ValueError for a URI (gs://, s3://, ...)."""
    if "://" in folder:
        raise ValueError(f"--litert_cache_dir {folder!r} must be a local folder of the launching machine, not a URI")


def unsafe_cache_dir(folder: str) -> str | None:
    """Why an existing `folder` must not hold trusted models (another user's, or writable by others), or None."""
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        return None  # store() creates it, private
    except OSError as error:
        return f"it cannot be read ({error})"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return "it belongs to another user"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "others may write to it"
    return None


def source_digest(modules: tuple[str, ...] = SOURCE_MODULES) -> str:
    """SHA-256 over the names and source files of `modules`, in order."""
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

    def keep(self, flatbuffer: bytes) -> None:
        """After the checks, before the run: mark the entry used if it holds `flatbuffer`, else store it (replacing
        an entry that failed its check)."""
        if self.load() == flatbuffer:
            try:
                os.utime(self.path)
            except OSError:
                pass
        else:
            self.store(flatbuffer)

    def store(self, flatbuffer: bytes) -> None:
        """Write the entry whole (a temporary file renamed into place), then remove entries unused for
        UNUSED_ENTRY_SECONDS and abandoned temporary files; a cache that cannot be written only warns."""
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            files.write_bytes_atomic(self.path, flatbuffer)
        except OSError as error:
            # A temporary file a failed write leaves is removed by a later store (ABANDONED_TEMP_SECONDS).
            _LOGGER.warning("could not keep the converted LiteRT model in %s (%s): the next run converts it again",
                            self.folder, error)
            return
        self._remove_stale(time.time())

    def _remove_stale(self, now: float) -> None:
        try:
            names = os.listdir(self.folder)
        except OSError:
            return
        for name in names:
            path = os.path.join(self.folder, name)
            if path == self.path or not (ENTRY_NAME.fullmatch(name) or TEMP_NAME.fullmatch(name)):
                continue  # the entry just written, or a file the cache did not make
            limit = UNUSED_ENTRY_SECONDS if name.endswith(SUFFIX) else ABANDONED_TEMP_SECONDS
            try:
                if now - os.stat(path).st_mtime > limit:
                    os.remove(path)
            except OSError:  # gone meanwhile, or not ours to remove
                pass

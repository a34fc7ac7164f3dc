"""The output folder's names, and heatmap paths that mirror the manifest path and can never leave it."""

from __future__ import annotations

import hashlib
import os.path
import posixpath
import re

HEATMAPS_DIR = "heatmaps"  # OUTPUT/heatmaps/<manifest path>.<jpg|png>
RECORDS_DIR = "records"  # OUTPUT/records/*.parquet
OK_PREFIX = "part"  # records/part-SSSSS-of-NNNNN.parquet: the images that were audited
ERROR_PREFIX = "errors"  # records/errors-SSSSS-of-NNNNN.parquet: the manifest lines that could not be
RUN_INFO_FILE = "run_info.json"
# records/_bundles/<part|errors>-<uuid>.parquet: what the workers committed, one file per bundle; the
# launcher consolidates them into records/part-* and records/errors-* (pipeline/consolidate.py).
BUNDLES_DIR = "_bundles"
PROGRESS_PREFIX = "_progress-"  # OUTPUT/_progress-<run id>/*.json: workers' tallies while a run goes, removed after
STUDIES_DIR = "studies"  # OUTPUT/studies/part-<id>.parquet: one row per study (transforms/study_schema.py)
REPORT_DIR = "report"  # OUTPUT/report/index.html, metrics.json and the plots beside them
LITERT_MODEL_FILE = "model.tflite"  # the LiteRT flatbuffer the launcher converted, which workers run


def is_uri(path: str) -> bool:
    """Whether a path names a scheme (gs://, s3://, memory://, ...) rather than a local file."""
    return "://" in path


def join_path(base: str, *parts: str) -> str:
    """Join a folder and relative parts, for local paths and URIs alike (the one place that does)."""
    if is_uri(base):
        return "/".join([base.rstrip("/"), *parts])
    return os.path.join(base, *parts)


def heatmaps_dir(output_dir: str) -> str:
    """Where a run's heatmaps go."""
    return join_path(output_dir, HEATMAPS_DIR)


def progress_dir(output_dir: str, run_id: str) -> str:
    """Where one run's workers tally their finished records while it runs."""
    return join_path(output_dir, PROGRESS_PREFIX + run_id)


def records_dir(output_dir: str) -> str:
    """Where a run's Parquet records go."""
    return join_path(output_dir, RECORDS_DIR)


def bundles_dir(output_dir: str) -> str:
    """Where workers commit per-bundle record files before the launcher consolidates them."""
    return join_path(records_dir(output_dir), BUNDLES_DIR)


def studies_dir(output_dir: str) -> str:
    """Where a run's study table goes."""
    return join_path(output_dir, STUDIES_DIR)


def report_dir(output_dir: str) -> str:
    """Where a run's report goes."""
    return join_path(output_dir, REPORT_DIR)


def litert_model_path(output_dir: str) -> str:
    """Where the launcher stages the converted LiteRT model for the workers."""
    return join_path(output_dir, LITERT_MODEL_FILE)


def temp_folders(output_dir: str) -> list[str]:
    """Every folder a run writes temporary files in (files.write_bytes_atomic): the output itself (run_info.json,
    the LiteRT model), the record and study folders, and the top of the heatmap tree, where every heatmap's
    temporary file goes (transforms/explain.py) so that none sits among the heatmaps."""
    records = records_dir(output_dir)
    return [output_dir, heatmaps_dir(output_dir), records, bundles_dir(output_dir), studies_dir(output_dir)]


_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$")
# Control characters and characters some filesystems or object stores refuse in a name.
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f:*?"<>|]')
_WINDOWS_DRIVE = re.compile(r"^(?P<drive>[A-Za-z]):/")


def _safe_component(component: str) -> str:
    """A path component with no separators or control characters; '..' can never result."""
    cleaned = _UNSAFE_CHARS.sub("_", component)
    return "_" if cleaned in ("", ".", "..") else cleaned


# Most filesystems cap a name at 255 bytes; a heatmap name adds its extension to the image's name.
_MAX_NAME_BYTES = 255


def _fit_name(name: str, suffix: str) -> str:
    """`name + suffix`, or a shortened name with a hash of the whole when that exceeds _MAX_NAME_BYTES."""
    full = name + suffix
    if len(full.encode("utf-8")) <= _MAX_NAME_BYTES:
        return full
    digest = "~" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
    budget = _MAX_NAME_BYTES - len((digest + suffix).encode("utf-8"))
    head = name.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return head + digest + suffix


# A relative path of plain names (letters, digits, '_', '-', '.', not starting with '.') that no rule below changes.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")


def heatmap_relative_path(image_path: str, image_format: str) -> str:
    """Relative heatmap path for a manifest image path, always inside the heatmaps folder.

    Relative paths are mirrored (`a/b/image1.png` -> `a/b/image1.png.jpg`; the source extension is
    kept so that image1.png and image1.jpg never collide). Paths are normalised first, and what
    would still climb out (`../x`) or is absolute (`/data/x`, `gs://bucket/x`) is mapped, not
    refused: `..` -> `_up`, an absolute path under `_abs/`, a URI under `_uri/<scheme>/`.
    """
    suffix = f".{image_format}"
    name_length = len(image_path) - image_path.rfind("/") - 1
    if _PLAIN_PATH.fullmatch(image_path) and name_length + len(suffix) <= _MAX_NAME_BYTES:
        # Every MURA path: what the rules below return for it, without taking it apart (one call per image).
        return image_path + suffix
    path = image_path.strip().replace("\\", "/")
    prefix: list[str] = []
    match = _SCHEME.match(path)
    if match:
        prefix = ["_uri", _safe_component(match["scheme"].lower())]
        path = match["rest"]
    elif path.startswith("/"):
        prefix = ["_abs"]
    elif _WINDOWS_DRIVE.match(path):
        prefix = ["_abs", path[0].upper()]
        path = path[3:]
    components = []
    for component in posixpath.normpath(path.lstrip("/") or "_").split("/"):
        if component == "..":
            components.append("_up")
        elif component not in ("", "."):
            components.append(_safe_component(component))
    if not components:
        components = ["_"]
    components[-1] = _fit_name(components[-1], suffix)
    return "/".join(prefix + components)

"""MURA v1.1 and generic CSV manifest parsing: pure functions from text lines to manifest entries."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import posixpath
import re

from transforms.output_paths import is_uri, join_path

# MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/image1.png
_MURA_PATH = re.compile(
    r"(?:^|/)(?P<split>train|valid|test)/(?P<body_part>XR_[A-Z]+)/(?P<patient>patient\d+)/"
    r"(?P<study>study\d+)_(?P<outcome>positive|negative)/(?P<image>[^/]+)$"
)
MANIFEST_FORMATS = ("auto", "mura", "csv")


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """One non-blank manifest line: where the image is and what is known about it."""

    image_path: str  # as written in the manifest
    study_id: str | None = None
    patient_id: str | None = None
    body_part: str | None = None
    split: str | None = None
    label: int | None = None
    error: str | None = None  # set when the line itself is malformed
    metadata_note: str | None = None  # why the study fields are unknown, when they are


@dataclasses.dataclass(frozen=True)
class MuraPathInfo:
    """The fields a MURA image path encodes."""

    split: str
    body_part: str
    patient_id: str
    study_id: str  # the study directory, unique in the archive, as labeled_studies.csv keys it
    label: int


def parse_mura_path(path: str) -> MuraPathInfo | None:
    """Fields of a MURA-layout image path, or None when the path is not in MURA's layout."""
    match = _MURA_PATH.search(path.replace("\\", "/"))
    if match is None:
        return None
    study_dir = path.replace("\\", "/")[: match.start("image")].rstrip("/")
    return MuraPathInfo(
        split=match["split"],
        body_part=match["body_part"],
        patient_id=match["patient"],
        study_id=study_dir,
        label=1 if match["outcome"] == "positive" else 0,
    )


MURA_ROOT = "MURA-v1.1"  # the archive's top folder; MURA's CSVs name every path from it


def mura_study_dir(split: str, body_part: str, patient: int, study: int, label: int) -> str:
    """Study folder in MURA's layout with the trailing slash labeled_studies.csv writes; the inverse of parse_mura_path.

    MURA numbers patients with five digits (patient00001) and names the outcome in the folder.
    """
    outcome = "positive" if label else "negative"
    return f"{MURA_ROOT}/{split}/{body_part}/patient{patient:05d}/study{study}_{outcome}/"


def mura_image_path(study_dir: str, image: int) -> str:
    """Path of a study's `image`-th image (MURA counts image1.png, image2.png, ... per study)."""
    return f"{study_dir.rstrip('/')}/image{image}.png"


def clean_line(line: str) -> str:
    """Strip CR, surrounding spaces and a UTF-8 BOM; blank lines become ''."""
    return line.lstrip("\ufeff").strip()


def study_key(study_dir: str) -> str:
    """Normalised key for a study directory: forward slashes, no trailing slash."""
    return study_dir.replace("\\", "/").strip().rstrip("/")


def parse_label(text: str, where: str) -> int:
    """A 0/1 label; anything else is a configuration error naming where it came from."""
    value = text.strip()
    if value not in ("0", "1"):
        raise ValueError(f"{where}: label must be 0 or 1, got {value!r}")
    return int(value)


def parse_labeled_studies(text: str, source: str) -> dict[str, int]:
    """MURA `*_labeled_studies.csv` text (`study_dir/,label`, no header) -> {study key: label}."""
    labels: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = clean_line(raw)
        if not line:
            continue
        study, sep, label = line.rpartition(",")
        if not sep or not study:
            raise ValueError(f"{source}:{number}: expected 'study_dir/,label', got {line!r}")
        labels[study_key(study)] = parse_label(label, f"{source}:{number}")
    return labels


NOT_MURA_LAYOUT = (
    "path not in MURA v1.1's layout (<split>/XR_<PART>/patient<N>/study<K>_<positive|negative>/<image>): "
    "study fields unknown"
)


def mura_entry(line: str, labels: dict[str, int] | None) -> ManifestEntry:
    """A MURA image-paths line -> entry; the labeled-studies file, when given, sets the label.

    A path outside MURA's layout is still audited: its study fields are null and
    `metadata_note` says why.
    """
    info = parse_mura_path(line)
    if info is None:
        return ManifestEntry(image_path=line, metadata_note=NOT_MURA_LAYOUT)
    label = info.label
    if labels is not None:
        label = labels.get(study_key(info.study_id), label)
    return ManifestEntry(
        image_path=line,
        study_id=info.study_id,
        patient_id=info.patient_id,
        body_part=info.body_part,
        split=info.split,
        label=label,
    )


CSV_COLUMNS = ("image_path", "label", "study_id", "patient_id", "body_part", "split")


def parse_csv_header(header_line: str) -> list[str]:
    """Column names of a generic manifest; it must name `image_path`."""
    columns = [name.strip().lower() for name in next(csv.reader([clean_line(header_line)]))]
    if "image_path" not in columns:
        raise ValueError(f"CSV manifest header must name an 'image_path' column, got {columns}")
    return columns


def is_csv_header(line: str, columns: list[str]) -> bool:
    """Whether a cleaned line is the manifest's header (recognised by content, not position)."""
    return [name.strip().lower() for name in next(csv.reader([line]), [])] == columns


def csv_entry(line: str, columns: list[str], labels: dict[str, int] | None) -> ManifestEntry:
    """A generic CSV manifest line -> entry; known optional columns are read, others ignored."""
    values = next(csv.reader(io.StringIO(line)), [])
    row = {name: (values[i].strip() if i < len(values) else "") for i, name in enumerate(columns)}
    image_path = row.get("image_path", "")
    if not image_path:
        return ManifestEntry(image_path=line, error=f"empty image_path in CSV line: {line!r}")
    label: int | None = None
    if row.get("label"):
        try:
            label = parse_label(row["label"], "label")
        except ValueError as exc:
            return ManifestEntry(image_path=image_path, error=f"bad label in CSV line: {exc}")
    mura = parse_mura_path(image_path)
    study_id = row.get("study_id") or (mura.study_id if mura else None)
    if label is None and mura is not None:
        label = mura.label
    if labels is not None and study_id is not None and study_key(study_id) in labels:
        label = labels[study_key(study_id)]
    return ManifestEntry(
        image_path=image_path,
        study_id=study_id,
        patient_id=row.get("patient_id") or (mura.patient_id if mura else None),
        body_part=row.get("body_part") or (mura.body_part if mura else None),
        split=row.get("split") or (mura.split if mura else None),
        label=label,
        metadata_note=None if study_id else f"no study_id column value and {NOT_MURA_LAYOUT}",
    )


def manifest_entry(line: str, columns: list[str] | None, labels: dict[str, int] | None) -> ManifestEntry | None:
    """One raw manifest line -> entry; None for a blank line or the CSV header.

    `columns` is the CSV header's column list, or None for a MURA manifest. The header is
    recognised by content, not position, so reads split across workers stay correct.
    """
    text = clean_line(line)
    if not text:
        return None
    if columns is None:
        return mura_entry(text, labels)
    if is_csv_header(text, columns):
        return None
    return csv_entry(text, columns, labels)


def detect_format(first_line: str) -> str:
    """'csv' when the first non-blank line is a header naming image_path, else 'mura'."""
    columns = [name.strip().lower() for name in next(csv.reader([clean_line(first_line)]), [])]
    return "csv" if "image_path" in columns else "mura"


def default_data_root(manifest_path: str, manifest_format: str) -> str:
    """Where relative image paths resolve when --data_root is not given.

    MURA's CSVs sit in `MURA-v1.1/` and name paths starting `MURA-v1.1/...`, so their root is the
    manifest folder's parent; a generic CSV's paths are relative to its own folder.
    """
    if is_uri(manifest_path):
        folder = posixpath.dirname(manifest_path)
        parent = posixpath.dirname(folder)
        # Never climb above a bucket (gs://bucket): keep the folder instead.
        if parent.endswith(":/") or parent.endswith(":"):
            parent = folder
    else:
        folder = os.path.dirname(os.path.abspath(manifest_path))
        parent = os.path.dirname(folder)
    return parent if manifest_format == "mura" else folder


class PathOutsideRootError(ValueError):
    """A relative manifest path that climbs out of --data_root."""


def climbs_out(relative_path: str) -> bool:
    """Whether a relative path, once normalised, leaves the folder it is relative to (`a/../../x`)."""
    normalised = posixpath.normpath(relative_path.replace("\\", "/"))
    return normalised == ".." or normalised.startswith("../")


def resolve_image_path(image_path: str, data_root: str) -> str:
    """Absolute paths and URIs are used as written; relative ones are joined to the data root.

    Raises PathOutsideRootError for a relative path that normalises outside the data root: almost
    always a mistake or an attack, so it is never read.
    """
    if is_uri(image_path) or image_path.startswith("/"):
        return image_path
    if climbs_out(image_path):
        raise PathOutsideRootError(
            f"path outside --data_root: {image_path!r} leads above {data_root!r}; not read"
        )
    return join_path(data_root, image_path)

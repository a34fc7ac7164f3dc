"""ReadManifest stage: manifest file -> one ManifestEntry per non-blank line."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam

from transforms import files
from transforms.mura import (
    MANIFEST_FORMATS,
    ManifestEntry,
    clean_line,
    detect_format,
    manifest_entry,
    parse_csv_header,
    parse_labeled_studies,
)

_PEEK_BYTES = 64 * 1024


def first_nonblank_line(path: str) -> str:
    """The first non-blank line of a manifest, read through FileSystems; fails fast when absent."""
    if not files.exists(path):
        raise FileNotFoundError(f"--manifest {path!r} does not exist")
    head = files.read_head(path, _PEEK_BYTES).decode("utf-8", errors="replace")
    for line in head.splitlines():
        if clean_line(line):
            return clean_line(line)
    raise ValueError(f"--manifest {path!r} has no non-blank line in its first {_PEEK_BYTES} bytes")


def inspect_manifest(path: str, manifest_format: str) -> tuple[str, list[str] | None]:
    """(format, CSV columns or None) of a manifest, checked at start-up."""
    if manifest_format not in MANIFEST_FORMATS:
        raise ValueError(f"--manifest_format must be one of {MANIFEST_FORMATS}, got {manifest_format!r}")
    first = first_nonblank_line(path)
    resolved = detect_format(first) if manifest_format == "auto" else manifest_format
    columns = parse_csv_header(first) if resolved == "csv" else None
    return resolved, columns


def manifest_lines(path: str) -> list[str]:
    """Every line of a manifest, split on '\\n' as the launcher's scan splits them (pipeline/consolidate.py).

    Read whole: MURA's largest manifest lists 36,808 images. Not-UTF-8 lines were refused at start-up.
    """
    return [raw.decode("utf-8", errors="replace") for raw in files.read_lines(path)]


def read_labels(path: str) -> dict[str, int]:
    """A MURA labeled-studies file through FileSystems (small: MURA's largest has 13,457 lines)."""
    if not files.exists(path):
        raise FileNotFoundError(f"--labels_file {path!r} does not exist")
    return parse_labeled_studies(files.read_bytes(path).decode("utf-8"), path)


class _ParseManifestLine(beam.DoFn):
    """Text line -> ManifestEntry; blank lines and the CSV header are skipped, bad lines kept."""

    def __init__(self, columns: list[str] | None, labels: dict[str, int] | None):
        self._columns = columns
        self._labels = labels

    def process(self, line: str) -> Iterator[ManifestEntry]:
        entry = manifest_entry(line, self._columns, self._labels)
        if entry is not None:
            yield entry


class ReadManifest(beam.PTransform):
    """Reads a MURA `*_image_paths.csv` or a generic CSV manifest into ManifestEntry elements.

    `columns` is the CSV header's columns (from `inspect_manifest`), or None for a MURA manifest.

    The file is read whole by a `FlatMap` behind a one-element `Create`, not by `ReadFromText`:
    `Create` is the one root every runner translates (Beam 2.77's DaskRunner cannot translate the
    `Read` that `ReadFromText` expands to), and a manifest is one line per image, small beside the
    images it names, so giving up ReadFromText's splitting of the file costs little. With
    `redistribute` (the default) rows are redistributed after the read so that the expensive stages
    that follow run in parallel instead of fused behind the one reader. A runner with a single worker
    (Beam's local runner as it starts by default) has nothing to spread them over: there the
    redistribution only encodes and decodes every entry (bench/README.md, session 6), and the
    launcher leaves it out.
    """

    def __init__(
        self,
        manifest_path: str,
        columns: list[str] | None,
        labels: dict[str, int] | None = None,
        redistribute: bool = True,
    ) -> None:
        super().__init__()
        self._path = manifest_path
        self._columns = columns
        self._labels = labels
        self._redistribute = redistribute

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        entries = (
            pbegin
            | "ManifestPath" >> beam.Create([self._path])
            | "ReadLines" >> beam.FlatMap(manifest_lines)
            | "ParseLines" >> beam.ParDo(_ParseManifestLine(self._columns, self._labels))
        )
        if not self._redistribute:
            return entries
        return entries | "Redistribute" >> beam.Reshuffle()

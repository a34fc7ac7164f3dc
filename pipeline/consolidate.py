"""After the run: per-bundle record files -> records/part-* and records/errors-*, one row per manifest line."""

from __future__ import annotations

import collections
import dataclasses
import math

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.summary import record_files
from transforms import files
from transforms.mura import manifest_entry, study_key
from transforms.output_paths import ERROR_PREFIX, OK_PREFIX, bundles_dir, join_path, records_dir, temp_folders
from transforms.schema import RECORD_SCHEMA, STATUS_OK

# Rows per consolidated file when --record_shards is 0: ~80 MB with a 28 x 28 CAM per row.
ROWS_PER_RECORD_FILE = 20_000
BEAM_TEMP_PREFIX = "beam-temp-"  # what Beam's file sinks of earlier versions left when interrupted


def bundle_files(output_dir: str) -> list[str]:
    """Per-bundle record files the workers committed (complete: they appear by rename)."""
    return files.matching(join_path(bundles_dir(output_dir), "*.parquet"))


def committed_files(output_dir: str) -> list[str]:
    """Every file holding committed rows: consolidated records first, then per-bundle files."""
    return record_files(output_dir) + bundle_files(output_dir)


@dataclasses.dataclass(frozen=True)
class ManifestScan:
    """What the launcher learns from one streamed pass over the manifest."""

    path_counts: dict[str, int]  # non-blank lines naming each image path: the rows a complete run holds
    study_keys: frozenset[str]  # the studies its lines name (for checking a labels file against)


def scan_manifest(manifest: str, columns: list[str] | None) -> ManifestScan:
    """Count the image paths and collect the studies of a manifest, parsing lines as ReadManifest does.

    Raises ValueError for a line that is not UTF-8.
    """
    counts: collections.Counter[str] = collections.Counter()
    studies: set[str] = set()
    for number, raw in enumerate(files.read_lines(manifest), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Beam's ReadFromText would fail the whole job on this line after hours of work: refuse now.
            raise ValueError(
                f"--manifest {manifest!r} line {number} is not UTF-8 ({exc.reason} at byte {exc.start}: "
                f"{raw[:80]!r}); save the manifest as UTF-8"
            ) from exc
        entry = manifest_entry(line, columns, None)
        if entry is not None:
            counts[entry.image_path] += 1
            if entry.study_id:
                studies.add(study_key(entry.study_id))
    return ManifestScan(dict(counts), frozenset(studies))


@dataclasses.dataclass(frozen=True)
class CommittedRows:
    """What the rows already committed in an output folder say (read before a --resume)."""

    image_paths: frozenset[str]
    run_ids: frozenset[str]
    model_sha256s: frozenset[str]
    thresholds: frozenset[float]


def read_committed(output_dir: str) -> CommittedRows:
    """The image paths and run facts of every committed row, reading only those columns."""
    columns = ["image_path", "run_id", "model_sha256", "threshold"]
    found: dict[str, set] = {name: set() for name in columns}
    for path in committed_files(output_dir):
        table = pq.read_table(pa.BufferReader(files.read_bytes(path)), columns=columns)
        for name in columns:
            found[name].update(table.column(name).to_pylist())
    return CommittedRows(
        frozenset(found["image_path"]),
        frozenset(found["run_id"]),
        frozenset(found["model_sha256"]),
        frozenset(found["threshold"]),
    )


@dataclasses.dataclass(frozen=True)
class Consolidation:
    """What consolidation wrote and dropped."""

    ok: int
    errors: int
    duplicates_dropped: int  # rows committed twice (a retried bundle) or no longer in the manifest
    missing: int  # manifest lines without any row (a bug upstream: each line must give a row)


@dataclasses.dataclass
class _Selection:
    """Rows to keep from one committed file: (row index, is ok), an index repeated for duplicate lines."""

    rows: list[tuple[int, bool]] = dataclasses.field(default_factory=list)


def select_rows(sources: list[list[tuple[str, bool]]], counts: dict[str, int]) -> tuple[list[_Selection], int, int]:
    """Which rows of each file to keep: as many rows per image path as manifest lines name it.

    `sources` holds each file's (image_path, is ok) in row order. A path named by n lines keeps its
    first n rows; a retried bundle's second copy is dropped. A path with fewer rows than lines (a
    --resume skips every line of a path already done) repeats its first row: lines naming the same
    path are audited identically. Returns (selections, rows dropped, manifest lines without a row).
    """
    selections = [_Selection() for _ in sources]
    kept: collections.Counter[str] = collections.Counter()
    first: dict[str, tuple[int, int, bool]] = {}
    dropped = 0
    for source, rows in enumerate(sources):
        for index, (path, is_ok) in enumerate(rows):
            if kept[path] >= counts.get(path, 0):
                dropped += 1
                continue
            kept[path] += 1
            first.setdefault(path, (source, index, is_ok))
            selections[source].rows.append((index, is_ok))
    missing = 0
    for path, wanted in counts.items():
        if path not in first:
            missing += wanted
            continue
        source, index, is_ok = first[path]
        selections[source].rows.extend([(index, is_ok)] * (wanted - kept[path]))
    return selections, dropped, missing


def shard_names(prefix: str, total_rows: int, shards: int) -> list[str]:
    """Consolidated file names for `total_rows` rows: `shards` of them, or by ROWS_PER_RECORD_FILE when 0."""
    count = shards or max(1, math.ceil(total_rows / ROWS_PER_RECORD_FILE))
    return [f"{prefix}-{index:05d}-of-{count:05d}.parquet" for index in range(count)]


class _ShardWriter:
    """Streams tables into numbered Parquet files, `rows_per_file` each, under temporary names."""

    def __init__(self, folder: str, names: list[str], total_rows: int) -> None:
        self._folder = folder
        self._names = names
        self._rows_per_file = max(1, math.ceil(total_rows / len(names)))
        self._index = -1
        self._in_file = 0
        self._handle = None
        self._writer: pq.ParquetWriter | None = None
        self.renames: list[tuple[str, str]] = []
        self._open_next()

    def _open_next(self) -> None:
        self._close()
        self._index += 1
        final = join_path(self._folder, self._names[self._index])
        temp = files.temp_path(final)
        self._handle = files.create(temp)
        self._writer = pq.ParquetWriter(self._handle, RECORD_SCHEMA, compression="snappy")
        self._in_file = 0
        self.renames.append((temp, final))

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._handle.close()
            self._writer = None

    def write(self, table: pa.Table) -> None:
        offset = 0
        while offset < table.num_rows:
            if self._in_file >= self._rows_per_file and self._index + 1 < len(self._names):
                self._open_next()
            take = min(table.num_rows - offset, self._rows_per_file - self._in_file)
            if self._index + 1 == len(self._names):
                take = table.num_rows - offset  # the last file takes what rounding left
            self._writer.write_table(table.slice(offset, take))
            self._in_file += take
            offset += take

    def finish(self) -> list[tuple[str, str]]:
        """Close, and open (empty) files for the names not reached, so the names' count holds."""
        while self._index + 1 < len(self._names):
            self._open_next()
        self._close()
        return self.renames


def debris(output_dir: str) -> list[str]:
    """What an interrupted run leaves: temporary files in the folders runs write them in, Beam sink temp folders.

    Folder by folder, so the cost does not grow with the archive: a match of every temporary name under
    --output listed every heatmap (0.18 s of a 0.33 s consolidation at 8,000 images; bench/README.md, session 17).
    """
    temp_files = [path for folder in temp_folders(output_dir) for path in files.temp_files(folder)]
    beam_temp = files.matching(join_path(records_dir(output_dir), BEAM_TEMP_PREFIX + "**"))
    folders = {
        join_path(records_dir(output_dir), path[len(records_dir(output_dir)) :].lstrip("/").split("/")[0])
        for path in beam_temp
    }
    return temp_files + sorted(folders)


def consolidate(output_dir: str, counts: dict[str, int], ok_shards: int = 0) -> Consolidation:
    """Turn every committed file into records/part-* and records/errors-*, then remove the rest.

    Streams one committed file at a time (a bundle's, or an earlier consolidation's), so memory
    holds the manifest's paths and one file, never the run. New files are written under temporary
    names and renamed; only then are the sources and the debris deleted, so an interruption at any
    point leaves rows that a --resume consolidates again.
    """
    sources = committed_files(output_dir)
    statuses = []
    for path in sources:
        table = pq.read_table(pa.BufferReader(files.read_bytes(path)), columns=["image_path", "status"])
        is_ok = [status == STATUS_OK for status in table.column("status").to_pylist()]
        statuses.append(list(zip(table.column("image_path").to_pylist(), is_ok, strict=True)))
    selections, dropped, missing = select_rows(statuses, counts)
    ok_total = sum(is_ok for selection in selections for _, is_ok in selection.rows)
    error_total = sum(not is_ok for selection in selections for _, is_ok in selection.rows)
    folder = records_dir(output_dir)
    ok_writer = _ShardWriter(folder, shard_names(OK_PREFIX, ok_total, ok_shards), ok_total)
    error_writer = _ShardWriter(folder, shard_names(ERROR_PREFIX, error_total, 0), error_total)
    for path, selection in zip(sources, selections, strict=True):
        if not selection.rows:
            continue
        table = pq.read_table(pa.BufferReader(files.read_bytes(path))).select(RECORD_SCHEMA.names)
        table = table.cast(RECORD_SCHEMA)
        for writer, wanted in ((ok_writer, True), (error_writer, False)):
            indices = pa.array([index for index, is_ok in selection.rows if is_ok == wanted], type=pa.int64())
            writer.write(table.take(indices))
    renames = ok_writer.finish() + error_writer.finish()
    for temp, final in renames:
        files.rename(temp, final)
    finals = {final for _, final in renames}
    files.delete([path for path in sources if path not in finals])
    stale = debris(output_dir) + ([bundles_dir(output_dir)] if files.exists(bundles_dir(output_dir)) else [])
    files.delete(stale)
    return Consolidation(ok=ok_total, errors=error_total, duplicates_dropped=dropped, missing=missing)

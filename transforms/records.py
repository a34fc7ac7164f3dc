"""WriteRecords stage: every record, ok or error, into per-bundle Parquet files that appear only when complete."""

from __future__ import annotations

import uuid
from typing import Any

import apache_beam as beam
import pyarrow as pa

from transforms import files
from transforms.output_paths import ERROR_PREFIX, OK_PREFIX, bundles_dir, join_path
from transforms.schema import RECORD_SCHEMA

# Rows a writer holds before it commits a file: bounds a worker's memory whatever a bundle's size
# (an ok row with a 28 x 28 CAM is ~4 KB, so ~4 MB held).
ROWS_PER_BUNDLE_FILE = 1000


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Record dicts -> the bytes of one Parquet file with the record schema."""
    return files.parquet_bytes(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA))


class ParquetBundleWriter(beam.DoFn):
    """Buffers a bundle's rows and commits them as Parquet files with `schema`: temporary name, then rename.

    Only primitives every runner supports: nothing is emitted from finish_bundle (DaskRunner drops
    it) and no sink finalisation waits on a side input (DaskRunner's WriteToParquet wrote 0 rows).
    A retried bundle commits its files again under new names; the launcher's consolidation
    (pipeline/consolidate.py) keeps one row per manifest line.
    """

    def __init__(self, folder: str, prefix: str, rows_per_file: int, schema: pa.Schema = RECORD_SCHEMA) -> None:
        self._folder = folder
        self._prefix = prefix
        self._rows_per_file = rows_per_file
        self._schema = schema
        self._rows: list[dict[str, Any]] = []

    def start_bundle(self) -> None:
        self._rows = []

    def process(self, record: dict[str, Any]) -> None:
        self._rows.append(record)
        if len(self._rows) >= self._rows_per_file:
            self._commit()

    def finish_bundle(self) -> None:
        self._commit()

    def _commit(self) -> None:
        if self._rows:
            name = f"{self._prefix}-{uuid.uuid4().hex}.parquet"
            files.write_parquet(join_path(self._folder, name), pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []


class WriteRecords(beam.PTransform):
    """Writes (ok records, error records) as per-bundle Parquet files under `<output>/records/_bundles/`.

    Two writers rather than one behind a Flatten: Beam's local FnApiRunner materialises every
    multi-input Flatten, so every record of a run would pass through the launching process's memory
    before a second stage wrote it (bench/README.md, "a Flatten the local runner materialises").
    Each writer fuses into the stage that makes its rows. After the run, the launcher turns the
    bundle files into `records/part-*.parquet` and `records/errors-*.parquet`.
    """

    def __init__(self, output_dir: str, rows_per_file: int = ROWS_PER_BUNDLE_FILE) -> None:
        super().__init__()
        self._folder = bundles_dir(output_dir)
        self._rows_per_file = rows_per_file

    def expand(self, records: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        ok_records, error_records = records
        written = [
            rows | f"Write{label}" >> beam.ParDo(ParquetBundleWriter(self._folder, prefix, self._rows_per_file))
            for prefix, label, rows in ((OK_PREFIX, "Ok", ok_records), (ERROR_PREFIX, "Errors", error_records))
        ]
        # One last transform that depends on both writers: Beam 2.77's DaskRunner computes only the
        # graph's last transform and what it depends on, so a writer left as a leaf never ran there
        # (measured: the ok rows of a two-writer pipeline were never written). The writers emit
        # nothing, so this Flatten costs nothing where the local runner materialises it.
        return written | "Committed" >> beam.Flatten()

"""WriteRecords stage: every record, ok or error, into Parquet files with the one schema."""

from __future__ import annotations

import apache_beam as beam

from transforms.output_paths import ERROR_PREFIX, OK_PREFIX, join_path, records_dir
from transforms.schema import RECORD_SCHEMA


class WriteRecords(beam.PTransform):
    """Writes (ok records, error records) as Parquet files under `<output>/records/`, one schema for both.

    Two sinks rather than one behind a Flatten: Beam's local FnApiRunner materialises every
    multi-input Flatten, so every record of a run would pass through the launching process's memory
    before a second stage wrote it (bench/README.md, "a Flatten the local runner materialises").
    Each sink fuses into the stage that makes its rows.
    Readers take `records/*.parquet` as one table.
    """

    def __init__(self, output_dir: str, num_shards: int = 0) -> None:
        super().__init__()
        self._output_dir = output_dir
        self._num_shards = num_shards

    def expand(self, records: tuple[beam.PCollection, beam.PCollection]) -> dict[str, beam.PCollection]:
        ok_records, error_records = records
        return {
            OK_PREFIX: ok_records | "WriteOk" >> self._parquet(OK_PREFIX, self._num_shards),
            # Error rows are few: the runner decides their files, whatever --record_shards asks of the rest.
            ERROR_PREFIX: error_records | "WriteErrors" >> self._parquet(ERROR_PREFIX, 0),
        }

    def _parquet(self, prefix: str, num_shards: int) -> beam.PTransform:
        return beam.io.WriteToParquet(
            join_path(records_dir(self._output_dir), prefix),
            schema=RECORD_SCHEMA,
            file_name_suffix=".parquet",
            num_shards=num_shards,
            codec="snappy",
        )

"""WriteRecords stage: every record, ok or error, into Parquet files with the one schema."""

from __future__ import annotations

import apache_beam as beam

from transforms.output_paths import join_output
from transforms.schema import RECORD_SCHEMA

RECORDS_DIR = "records"


class WriteRecords(beam.PTransform):
    """Writes record dicts to `<output>/records/part-SSSSS-of-NNNNN.parquet`."""

    def __init__(self, output_dir: str, num_shards: int = 0) -> None:
        super().__init__()
        self._prefix = join_output(output_dir, RECORDS_DIR, "part")
        self._num_shards = num_shards

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return records | "WriteParquet" >> beam.io.WriteToParquet(
            self._prefix,
            schema=RECORD_SCHEMA,
            file_name_suffix=".parquet",
            num_shards=self._num_shards,
            codec="snappy",
        )

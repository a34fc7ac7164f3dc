"""WriteRecords: per-bundle Parquet files that appear complete, with the one schema, and nothing emitted."""

from __future__ import annotations

import logging
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import local_pipeline
from tests.test_summary import error, ok
from transforms.records import ParquetBundleWriter, WriteRecords, parquet_bytes
from transforms.schema import RECORD_SCHEMA


def bundle_dir(output: Path) -> Path:
    return output / "records" / "_bundles"


def test_write_records_commits_ok_and_error_files(tmp_path: Path) -> None:
    oks = [ok(f"a{i}.png", "s1", 1, 1, 0.9) for i in range(5)]
    errors = [error("bad.png", "file not found: /x/bad.png")]
    with local_pipeline() as p:
        written = (p | "Ok" >> beam.Create(oks), p | "Err" >> beam.Create(errors)) | WriteRecords(str(tmp_path), 2)
        assert_that(written, equal_to([]))  # the writers emit nothing downstream
    files = sorted(bundle_dir(tmp_path).iterdir())
    assert files and all(f.suffix == ".parquet" and f.name.startswith(("part-", "errors-")) for f in files)
    rows = {r["image_path"]: r for f in files for r in pq.read_table(f).to_pylist()}
    assert sorted(rows) == ["a0.png", "a1.png", "a2.png", "a3.png", "a4.png", "bad.png"]
    assert all(pq.read_table(f).schema.equals(RECORD_SCHEMA, check_metadata=False) for f in files)
    assert all(len(pq.read_table(f)) <= 2 for f in files)  # a writer commits every rows_per_file rows


def test_a_bundle_commits_only_at_its_end_and_a_retry_commits_again(tmp_path: Path) -> None:
    writer = ParquetBundleWriter(str(bundle_dir(tmp_path)), "part", rows_per_file=100)
    for attempt in range(2):  # the same bundle twice, as a runner retrying it would
        writer.start_bundle()
        assert writer.process(ok("a.png", "s1", 1, 1, 0.9)) is None  # nothing emitted, ever
        writer.process(ok("b.png", "s1", 1, 0, 0.2))
        assert len(list(bundle_dir(tmp_path).glob("*.parquet"))) == attempt  # not visible mid-bundle
        writer.finish_bundle()
    files = sorted(bundle_dir(tmp_path).glob("*.parquet"))
    assert len(files) == 2 and [len(pq.read_table(f)) for f in files] == [2, 2]
    assert not [f for f in bundle_dir(tmp_path).iterdir() if f.suffix != ".parquet"]  # no temp debris


def test_parquet_bytes_round_trip() -> None:
    rows = [ok("a.png", "s1", 1, 1, 0.75), error("b.png", "empty file: 0 bytes")]
    table = pq.read_table(pa.BufferReader(parquet_bytes(rows)))
    assert table.schema.equals(RECORD_SCHEMA, check_metadata=False)
    assert table.to_pylist() == rows  # 0.25 and 0.75 are exact in float32


@pytest.mark.slow
def test_both_writers_run_on_the_dask_runner(tmp_path: Path) -> None:
    # Beam's DaskRunner computes only the graph's last transform and what it depends on.
    pytest.importorskip("dask.distributed")
    # Dask's cluster logs its shutdown at interpreter exit, after pytest has closed its capture streams.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.dask.dask_runner import DaskRunner

    oks = [ok(f"a{i}.png", "s1", 1, 1, 0.75) for i in range(20)]
    errors = [error(f"e{i}.png", "file not found: /x") for i in range(3)]
    with beam.Pipeline(runner=DaskRunner(), options=PipelineOptions([])) as p:
        (p | "Ok" >> beam.Create(oks), p | "Err" >> beam.Create(errors)) | WriteRecords(str(tmp_path), 8)
    written = pq.read_table(bundle_dir(tmp_path)).column("image_path").to_pylist()
    assert sorted(written) == sorted(r["image_path"] for r in oks + errors)

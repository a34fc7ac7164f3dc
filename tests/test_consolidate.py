"""Consolidation: committed bundle files -> records/part-* and errors-*, one row per manifest line, debris gone."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.consolidate import (
    consolidate,
    debris,
    read_committed,
    scan_manifest,
    select_rows,
    shard_names,
)
from pipeline.summary import read_records
from tests.test_summary import error, ok
from transforms import files
from transforms.records import parquet_bytes


def commit(output: Path, name: str, rows: list[dict]) -> None:
    files.write_bytes(str(output / "records" / "_bundles" / name), parquet_bytes(rows))


def test_select_rows_keeps_one_row_per_line() -> None:
    sources = [[("a", True), ("b", False)], [("a", True), ("c", True)], [("d", True)]]
    counts = {"a": 1, "b": 1, "c": 2, "e": 1}  # a committed twice (retry), c named by 2 lines, d gone, e lost
    selections, dropped, missing = select_rows(sources, counts)
    assert [s.rows for s in selections] == [[(0, True), (1, False)], [(1, True), (1, True)], []]
    assert (dropped, missing) == (2, 1)


def test_shard_names() -> None:
    assert shard_names("part", 0, 0) == ["part-00000-of-00001.parquet"]
    assert shard_names("part", 45_000, 0) == [f"part-0000{i}-of-00003.parquet" for i in range(3)]
    assert shard_names("errors", 10, 2) == ["errors-00000-of-00002.parquet", "errors-00001-of-00002.parquet"]


def test_consolidate_dedups_splits_and_cleans(tmp_path: Path) -> None:
    a, b, c = ok("a.png", "s1", 1, 1, 0.75), ok("b.png", "s1", 1, 0, 0.25), error("c.png", "file not found: c.png")
    commit(tmp_path, "part-1.parquet", [a, b])
    commit(tmp_path, "part-2.parquet", [a])  # a retried bundle committed `a` twice
    commit(tmp_path, "errors-1.parquet", [c])
    # One left in each folder runs write temporary files in (heatmaps': the top of their tree).
    debris_files = [tmp_path / ".cam-audit-tmp-1", tmp_path / "heatmaps" / ".cam-audit-tmp-123",
                    tmp_path / "records" / ".cam-audit-tmp-9", tmp_path / "studies" / ".cam-audit-tmp-5"]
    for path in [*debris_files, tmp_path / "records" / "beam-temp-part-abc" / "shard"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    (tmp_path / "heatmaps" / "x").mkdir()
    (tmp_path / "heatmaps" / "x" / "a.png.jpg").write_bytes(b"kept")

    result = consolidate(str(tmp_path), {"a.png": 1, "b.png": 2, "c.png": 1}, ok_shards=2)

    assert (result.ok, result.errors, result.duplicates_dropped, result.missing) == (3, 1, 1, 0)
    names = sorted(p.name for p in (tmp_path / "records").iterdir())
    assert names == ["errors-00000-of-00001.parquet", "part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]
    rows = read_records(str(tmp_path)).to_pylist()
    assert sorted(r["image_path"] for r in rows) == ["a.png", "b.png", "b.png", "c.png"]
    assert [r for r in rows if r["image_path"] == "a.png"] == [a]
    assert all(len(pq.read_table(tmp_path / "records" / n)) for n in names)
    assert not any(p.exists() for p in debris_files) and debris(str(tmp_path)) == []
    assert (tmp_path / "heatmaps" / "x" / "a.png.jpg").read_bytes() == b"kept"

    # Consolidating again (a --resume of a finished run) gives the same rows.
    again = consolidate(str(tmp_path), {"a.png": 1, "b.png": 2, "c.png": 1}, ok_shards=2)
    assert (again.ok, again.errors) == (3, 1)
    assert sorted(map(str, read_records(str(tmp_path)).to_pylist())) == sorted(map(str, rows))


def test_consolidate_with_no_rows_writes_empty_files_of_the_schema(tmp_path: Path) -> None:
    result = consolidate(str(tmp_path), {"a.png": 1})
    assert result.missing == 1 and read_records(str(tmp_path)).num_rows == 0
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == [
        "errors-00000-of-00001.parquet", "part-00000-of-00001.parquet"
    ]


def test_read_committed_and_scan_manifest(tmp_path: Path) -> None:
    commit(tmp_path, "part-1.parquet", [ok("a.png", "s1", 1, 1, 0.75)])
    commit(tmp_path, "errors-1.parquet", [error("c.png", "empty file: 0 bytes")])
    committed = read_committed(str(tmp_path))
    assert committed.image_paths == {"a.png", "c.png"} and committed.run_ids == {"r1"}
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(
        "\ufeffMURA-v1.1/valid/XR_HAND/patient00001/study1_positive/image1.png\r\n\r\n  a.png  \na.png\n".encode()
    )
    scan = scan_manifest(str(manifest), None)
    assert scan.path_counts == {"MURA-v1.1/valid/XR_HAND/patient00001/study1_positive/image1.png": 1, "a.png": 2}
    assert scan.study_keys == {"MURA-v1.1/valid/XR_HAND/patient00001/study1_positive"}


@pytest.mark.parametrize("shards", [0, 3])
def test_rows_are_streamed_into_the_shards_in_order(tmp_path: Path, shards: int) -> None:
    rows = [ok(f"i{n:03d}.png", "s", 1, 1, 0.75) for n in range(50)]
    for start in range(0, 50, 7):
        commit(tmp_path, f"part-{start:03d}.parquet", rows[start : start + 7])
    consolidate(str(tmp_path), {r["image_path"]: 1 for r in rows}, ok_shards=shards)
    parts = sorted((tmp_path / "records").glob("part-*.parquet"))
    assert len(parts) == (shards or 1)
    assert [r["image_path"] for p in parts for r in pq.read_table(p).to_pylist()] == [r["image_path"] for r in rows]

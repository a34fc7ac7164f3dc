"""Reading a run's records back and summarising them, against counts and metrics computed by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.summary import (
    count_reasons,
    read_records,
    reason_category,
    record_files,
    summarise_records,
    summarise_table,
)
from transforms.schema import RECORD_SCHEMA


def row(image_path: str, **fields: Any) -> dict[str, Any]:
    """A record with the schema's required fields filled and every other one null unless given."""
    record: dict[str, Any] = dict.fromkeys(RECORD_SCHEMA.names)
    record.update(image_path=image_path, image_uri=f"/data/{image_path}", status="ok", threshold=0.2,
                  model_sha256="0" * 64, run_id="r1")
    record.update(fields)
    return record


def ok(image_path: str, study: str | None, label: int | None, predicted: int, abnormal: float,
       heatmap: bool = True) -> dict[str, Any]:
    heatmap_path = f"/out/heatmaps/{image_path}.jpg" if heatmap else None
    return row(image_path, study_id=study, label=label, predicted_class=predicted,
               probabilities=[1.0 - abnormal, abnormal], heatmap_path=heatmap_path)


def error(image_path: str, reason: str) -> dict[str, Any]:
    # An error row keeps what the manifest said (label, study): the summary must still leave it out.
    return row(image_path, status="error", error=reason, study_id="s4", label=1)


ROWS = [
    ok("a1", "s1", 1, 1, 0.8),
    ok("a2", "s1", 1, 0, 0.1),
    ok("b1", "s2", 0, 0, 0.1),
    ok("b2", "s2", 0, 1, 0.7, heatmap=False),
    ok("c1", None, 1, 1, 0.9),  # labelled, but in no study
    ok("d1", "s3", None, 1, 0.6),  # in a study, but unlabelled
    ok("e1", "s5", 1, 1, 0.55),
    error("x1", "file not found: /data/x1"),
    error("x2", "cannot decode /data/x2: truncated"),
]


def test_summarise_table_counts_and_metrics_by_hand() -> None:
    summary = summarise_table(pa.Table.from_pylist(ROWS, schema=RECORD_SCHEMA))
    assert (summary.rows, summary.ok, summary.errors, summary.heatmaps, summary.labelled) == (9, 7, 2, 6, 6)
    # Images a1 a2 b1 b2 c1 e1: labels 1 1 0 0 1 1, predicted 1 0 0 1 1 1: 4 of 6 agree.
    # Chance agreement (4/6)(4/6) + (2/6)(2/6) = 5/9, so kappa = (2/3 - 5/9) / (1 - 5/9) = 1/4.
    assert summary.image_accuracy == pytest.approx(4 / 6)
    assert summary.image_kappa == pytest.approx(0.25)
    # Study votes (mean abnormal probability > 0.5): s1 (0.8 + 0.1) / 2 = 0.45 -> 0 against label 1;
    # s2 (0.1 + 0.7) / 2 = 0.4 -> 0, right; s5 0.55 -> 1, right. Truth 1 0 1, votes 0 0 1: 2 of 3.
    # Chance agreement (2/3)(1/3) + (1/3)(2/3) = 4/9, so kappa = (2/3 - 4/9) / (1 - 4/9) = 2/5.
    assert summary.studies == 3
    assert summary.study_accuracy == pytest.approx(2 / 3)
    assert summary.study_kappa == pytest.approx(0.4)
    assert summary.error_examples == ("x1: file not found: /data/x1", "x2: cannot decode /data/x2: truncated")
    assert summarise_table(pa.Table.from_pylist(ROWS, schema=RECORD_SCHEMA), max_examples=1).error_examples == (
        "x1: file not found: /data/x1",
    )


def test_summary_of_no_rows_has_no_metrics() -> None:
    summary = summarise_table(RECORD_SCHEMA.empty_table())
    assert (summary.rows, summary.ok, summary.errors, summary.heatmaps, summary.studies) == (0, 0, 0, 0, 0)
    assert summary.image_accuracy is None and summary.image_kappa is None
    assert summary.study_accuracy is None and summary.study_kappa is None and summary.error_examples == ()


def test_read_records_of_an_empty_folder_is_an_empty_table_with_the_schema(tmp_path: Path) -> None:
    assert record_files(str(tmp_path)) == []
    table = read_records(str(tmp_path))
    assert table.num_rows == 0 and table.schema.equals(RECORD_SCHEMA)
    some = read_records(str(tmp_path), ["image_path", "status"])
    assert some.num_rows == 0 and some.schema.names == ["image_path", "status"]
    assert some.schema.field("status").equals(RECORD_SCHEMA.field("status"))


def test_records_read_back_from_files_and_summarised_per_run(tmp_path: Path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS[:4], schema=RECORD_SCHEMA), records / "part-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(ROWS[4:], schema=RECORD_SCHEMA), records / "part-00001-of-00002.parquet")
    older = [row("old", run_id="r0", study_id="s9", label=0, predicted_class=1, probabilities=[0.1, 0.9])]
    pq.write_table(pa.Table.from_pylist(older, schema=RECORD_SCHEMA), records / "errors-00000-of-00001.parquet")
    (records / "notes.txt").write_text("not a record")
    table = read_records(str(tmp_path))
    assert table.schema.equals(RECORD_SCHEMA) and sorted(table["image_path"].to_pylist()) == sorted(
        [r["image_path"] for r in ROWS] + ["old"]
    )
    mine = summarise_table(pa.Table.from_pylist(ROWS, schema=RECORD_SCHEMA))
    assert summarise_records(str(tmp_path), run_id="r1") == mine
    assert summarise_records(str(tmp_path)).rows == len(ROWS) + 1


def test_errors_are_counted_by_reason_category() -> None:
    reasons = [
        "file not found: /d/a.png",
        "file not found: /d/b.png",
        "truncated PNG: no IEND chunk (90 bytes) (/d/c.png)",
        "image above --max_pixels: 30000x30000 = 900,000,000 pixels, limit 50,000,000; not decoded (/d/bomb.png)",
        "file not found: /d/e.png",
        None,
    ]
    assert reason_category(reasons[3]) == "image above --max_pixels"
    assert count_reasons(reasons) == {
        "file not found": 3, "image above --max_pixels": 1, "no reason given": 1, "truncated PNG": 1,
    }  # fmt: skip
    summary = summarise_table(pa.Table.from_pylist(ROWS, schema=RECORD_SCHEMA))
    assert summary.error_counts == {"cannot decode /data/x2": 1, "file not found": 1}
    text = summary.render("/out", "/out/run_info.json", 1.0)
    assert "errors by reason:" in text and "      1  file not found" in text
    assert summary.as_dict()["error_counts"] == summary.error_counts  # what run_info.json holds

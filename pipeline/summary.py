"""Reads a run's Parquet records back and summarises them: counts, errors, accuracy, kappa."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms import files
from transforms.metrics import accuracy, cohen_kappa, format_metric, study_votes
from transforms.output_paths import heatmaps_dir, join_path, records_dir, studies_dir
from transforms.schema import RECORD_SCHEMA, STATUS_OK
from transforms.study_schema import STUDY_SCHEMA

ABNORMAL_CLASS = 1  # MURA convention: class 1 = abnormal


def record_files(output_dir: str) -> list[str]:
    """Paths of the Parquet record files under an output folder."""
    return files.matching(join_path(records_dir(output_dir), "*.parquet"))


def study_files(output_dir: str) -> list[str]:
    """Paths of the study table's Parquet files under an output folder."""
    return files.matching(join_path(studies_dir(output_dir), "*.parquet"))


def read_studies(output_dir: str) -> pa.Table:
    """The study table of an output folder (transforms/study_schema.py), rows sorted by study_id."""
    tables = [pq.read_table(pa.BufferReader(files.read_bytes(path))) for path in study_files(output_dir)]
    table = pa.concat_tables(tables) if tables else STUDY_SCHEMA.empty_table()
    return table.sort_by("study_id")


def read_records(output_dir: str, columns: list[str] | None = None) -> pa.Table:
    """All record files of an output folder as one table with the record schema."""
    tables = []
    for path in record_files(output_dir):
        tables.append(pq.read_table(pa.BufferReader(files.read_bytes(path)), columns=columns))
    if not tables:
        schema = RECORD_SCHEMA if columns is None else pa.schema([RECORD_SCHEMA.field(c) for c in columns])
        return schema.empty_table()
    return pa.concat_tables(tables)


@dataclasses.dataclass(frozen=True)
class AuditSummary:
    """What one run produced, in numbers."""

    rows: int
    ok: int
    errors: int
    heatmaps: int
    labelled: int
    image_accuracy: float | None
    image_kappa: float | None
    studies: int
    study_accuracy: float | None
    study_kappa: float | None
    error_examples: tuple[str, ...]
    error_counts: dict[str, int] = dataclasses.field(default_factory=dict)  # reason category -> rows

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def render(self, output_dir: str, run_info: str, seconds: float) -> str:
        """Human-readable summary with where everything is."""

        lines = [
            f"cam-audit: {self.rows} images in {seconds:.1f} s ({self.ok} ok, {self.errors} errors)",
            f"  image accuracy {format_metric(self.image_accuracy)}, kappa {format_metric(self.image_kappa)} "
            f"over {self.labelled} labelled images",
            f"  study accuracy {format_metric(self.study_accuracy)}, "
            f"kappa {format_metric(self.study_kappa)} over {self.studies} studies",
        ]
        if self.error_counts:
            lines.append("  errors by reason:")
            lines += [f"    {count:>7}  {reason}" for reason, count in self.error_counts.items()]
        lines += [f"  error: {example}" for example in self.error_examples]
        lines += [
            f"  records:  {records_dir(output_dir)}",
            f"  heatmaps: {heatmaps_dir(output_dir)} ({self.heatmaps} files)",
            f"  run info: {run_info}",
        ]
        return "\n".join(lines)


def reason_category(reason: str | None) -> str:
    """The kind of an error, the text before its first ': ' (reasons read '<kind>: <path and details>')."""
    return (reason or "no reason given").split(": ", 1)[0]


def count_reasons(reasons: list[str | None]) -> dict[str, int]:
    """Error rows per reason category, most frequent first (ties by name)."""
    counts = collections.Counter(reason_category(reason) for reason in reasons)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def summarise_table(table: pa.Table, max_examples: int = 5) -> AuditSummary:
    """Counts and image/study-level metrics of a records table."""
    rows = table.to_pydict()
    status = rows["status"]
    ok_index = [i for i, s in enumerate(status) if s == STATUS_OK]
    labelled = [i for i in ok_index if rows["label"][i] is not None]
    labels = np.array([rows["label"][i] for i in labelled], dtype=np.int64)
    predicted = np.array([rows["predicted_class"][i] for i in labelled], dtype=np.int64)
    with_study = [i for i in labelled if rows["study_id"][i] is not None]
    votes = study_votes(
        [rows["study_id"][i] for i in with_study],
        [rows["probabilities"][i][ABNORMAL_CLASS] if len(rows["probabilities"][i]) > 1 else 0.0 for i in with_study],
    )
    study_label = {rows["study_id"][i]: rows["label"][i] for i in with_study}
    study_keys = sorted(votes)
    study_truth = np.array([study_label[k] for k in study_keys], dtype=np.int64)
    study_pred = np.array([votes[k][1] for k in study_keys], dtype=np.int64)
    errors = [f"{rows['image_path'][i]}: {rows['error'][i]}" for i, s in enumerate(status) if s != STATUS_OK]
    return AuditSummary(
        rows=len(status),
        ok=len(ok_index),
        errors=len(status) - len(ok_index),
        heatmaps=sum(1 for path in rows["heatmap_path"] if path),
        labelled=len(labelled),
        image_accuracy=accuracy(labels, predicted),
        image_kappa=cohen_kappa(labels, predicted),
        studies=len(study_keys),
        study_accuracy=accuracy(study_truth, study_pred),
        study_kappa=cohen_kappa(study_truth, study_pred),
        error_examples=tuple(errors[:max_examples]),
        error_counts=count_reasons([rows["error"][i] for i, s in enumerate(status) if s != STATUS_OK]),
    )


def summarise_records(output_dir: str, run_id: str | None = None) -> AuditSummary:
    """Summary of the records an output folder holds (of one run, when run_id is given)."""
    columns = ["image_path", "status", "error", "label", "predicted_class", "probabilities", "study_id",
               "heatmap_path", "run_id"]
    table = read_records(output_dir, columns)
    if run_id is not None:
        table = table.filter(pc.equal(table["run_id"], run_id))
    return summarise_table(table)

"""What the report shows, computed from a run's tables: metrics per level and body part, flags, galleries."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from transforms.flags import FLAG_NAMES
from transforms.metrics import binary_metrics
from transforms.schema import RECORD_SCHEMA, STATUS_OK
from transforms.study_summary import StudyAccumulator, add_record, study_row

OVERALL = "overall"
# Flags that say where the peak sits on the film rather than how the prediction looks.
LOCATION_FLAGS = ("flag_border_peak", "flag_off_body_peak", "flag_burned_in_peak")
# The first screen raises a shortcut alert when at least this share of the abnormal predictions
# puts its peak on a location flag (the demo's clean model stays far below it, README).
SHORTCUT_ALERT_SHARE = 0.2
GALLERY_SIZE = 8


@dataclasses.dataclass(frozen=True)
class AuditTables:
    """A run's ok records (one explanation method when several were run), all rows, and its studies."""

    records: list[dict[str, Any]]  # every row, every method
    ok: list[dict[str, Any]]  # ok rows of the first method
    studies: list[dict[str, Any]]
    abnormal_class: int
    methods: list[str]  # [] when the records have no `method` column


def audit_tables(records: pa.Table, studies: pa.Table, abnormal_class: int) -> AuditTables:
    """Rows as dicts; with a `method` column, classification uses one method's rows (the others repeat it)."""
    rows = records.to_pylist()
    methods = sorted({r["method"] for r in rows if r.get("method")}) if "method" in records.column_names else []
    ok = [r for r in rows if r["status"] == STATUS_OK and (not methods or r["method"] == methods[0])]
    return AuditTables(rows, ok, studies.to_pylist(), abnormal_class, methods)


def rebuild_studies(records: list[dict[str, Any]], abnormal_class: int, threshold: float,
                    run_id: str) -> list[dict[str, Any]]:
    """The study table from records, with the accumulator the pipeline's combine uses (no Beam)."""
    accumulators: dict[str, StudyAccumulator] = {}
    for record in records:
        if record.get("study_id") is not None:
            add_record(accumulators.setdefault(record["study_id"], StudyAccumulator()), record, abnormal_class)
    return [study_row(study, accumulators[study], threshold, run_id) for study in sorted(accumulators)]


def abnormal_probability(record: dict[str, Any], abnormal_class: int) -> float:
    """The record's probability of the abnormal class."""
    return float(record["probabilities"][abnormal_class])


def grouped_metrics(items: list[tuple[str | None, int | None, float | None]], threshold: float,
                    resamples: int, seed: int, parts: set[str | None] = frozenset()) -> dict[str, Any]:
    """binary_metrics overall and per body part of (body part, label, score) items; unlabelled ones skipped.

    Every body part of `items` and `parts` gets an entry: one with no labelled rows says so (n = 0).
    """
    parts = sorted({part or "unknown" for part in {*parts, *(part for part, _, _ in items)}})
    result = {}
    for group in [OVERALL, *parts]:
        chosen = [(label, score) for part, label, score in items
                  if label is not None and score is not None and group in (OVERALL, part or "unknown")]
        labels = np.array([label for label, _ in chosen], dtype=np.int64)
        scores = np.array([score for _, score in chosen], dtype=np.float64)
        result[group] = binary_metrics(labels, scores, threshold, resamples, seed)
    return result


def audit_metrics(tables: AuditTables, study_threshold: float, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """metrics.json: image and study level, overall and per body part."""
    image_items = [(r["body_part"], r["label"], abnormal_probability(r, tables.abnormal_class)) for r in tables.ok]
    study_items = [(s["body_part"], s["label"], s["mean_abnormal_probability"]) for s in tables.studies]
    every_part = {r.get("body_part") for r in tables.records}
    return {
        "image": grouped_metrics(image_items, 0.5, resamples, seed, every_part),
        "study": grouped_metrics(study_items, study_threshold, resamples, seed, every_part),
        "image_threshold": 0.5,
        "study_threshold": study_threshold,
        "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95},
    }


def flag_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows set each flag (null counts as not set)."""
    return {name: sum(1 for r in rows if r.get(name)) for name in FLAG_NAMES}


def shortcut_signal(tables: AuditTables) -> dict[str, Any]:
    """Among abnormal predictions: the share whose CAM peak sits on a location flag, and per flag."""
    abnormal = [r for r in tables.ok if r["predicted_class"] == tables.abnormal_class]
    flagged = [r for r in abnormal if any(r.get(name) for name in LOCATION_FLAGS)]
    share = len(flagged) / len(abnormal) if abnormal else 0.0
    return {
        "abnormal_predictions": len(abnormal),
        "on_location_flags": len(flagged),
        "share": share,
        "per_flag": {name: sum(1 for r in abnormal if r.get(name)) for name in LOCATION_FLAGS},
        "alert": bool(abnormal) and share >= SHORTCUT_ALERT_SHARE,
        "alert_share": SHORTCUT_ALERT_SHARE,
    }


def verdict(signal: dict[str, Any]) -> str:
    """The one-line verdict of the first screen (and of `make demo`)."""
    if not signal["abnormal_predictions"]:
        return "no abnormal predictions: nothing to judge the model's evidence on"
    parts = ", ".join(f"{name.removeprefix('flag_').removesuffix('_peak').replace('_', ' ')} {count}"
                      for name, count in signal["per_flag"].items())
    share = f"{signal['share']:.0%} of {signal['abnormal_predictions']} abnormal predictions"
    if signal["alert"]:
        return f"SHORTCUT ALERT: the CAM peak lies off the anatomy or on burned-in marks in {share} ({parts})"
    return f"no shortcut sign: CAM peaks on flagged locations in {share} ({parts})"


def error_reasons(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Error rows counted by reason (the part before the first ':' names the kind), most frequent first."""
    return Counter((r["error"] or "unknown").split(":")[0] for r in rows if r["status"] != STATUS_OK).most_common()


def galleries(tables: AuditTables, size: int = GALLERY_SIZE) -> dict[str, list[dict[str, Any]]]:
    """Most confident true positives, false positives, false negatives, and per flag, most confident first."""
    abnormal = tables.abnormal_class

    def pick(rows: list[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: (-key(r), r["image_path"]))[:size]

    probability = lambda r: abnormal_probability(r, abnormal)  # noqa: E731 - a sort key, named for reading
    labelled = [r for r in tables.ok if r["label"] is not None]
    shown = {
        "most confident true positives": pick(
            [r for r in labelled if r["label"] == 1 and r["predicted_class"] == abnormal], probability),
        "most confident false positives": pick(
            [r for r in labelled if r["label"] == 0 and r["predicted_class"] == abnormal], probability),
        "most confident false negatives": pick(
            [r for r in labelled if r["label"] == 1 and r["predicted_class"] != abnormal], lambda r: -probability(r)),
    }
    rows = [r for r in tables.records if r["status"] == STATUS_OK]
    for name in FLAG_NAMES:
        shown[name] = pick([r for r in rows if r.get(name)], lambda r: max(r["probabilities"]))
    return shown


def extra_numeric_columns(records: pa.Table) -> list[str]:
    """Numeric columns beyond the record schema (e.g. another method's faithfulness scores)."""
    known = set(RECORD_SCHEMA.names)
    return [f.name for f in records.schema
            if f.name not in known and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))]


def per_method(tables: AuditTables, extra_columns: list[str]) -> list[dict[str, Any]]:
    """Per explanation method: flag counts and the mean of each extra numeric column; [] without methods."""
    summary = []
    for method in tables.methods:
        rows = [r for r in tables.records if r.get("method") == method and r["status"] == STATUS_OK]
        means = {}
        for column in extra_columns:
            values = [r[column] for r in rows if r.get(column) is not None]
            means[column] = float(np.mean(values)) if values else None
        summary.append({"method": method, "ok": len(rows), "flags": flag_counts(rows), "means": means})
    return summary

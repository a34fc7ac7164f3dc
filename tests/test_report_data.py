"""What the report shows, on hand-made rows: the shortcut verdict, galleries, error reasons, per-method tables."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.report_data import (
    SHORTCUT_ALERT_SHARE,
    AuditTables,
    audit_metrics,
    audit_tables,
    error_reasons,
    galleries,
    per_method,
    shortcut_signal,
    verdict,
)
from transforms.flags import FLAG_NAMES


def row(path: str, predicted: int, label: int | None, p: float, **flags: bool) -> dict[str, Any]:
    return {"image_path": path, "status": "ok", "error": None, "predicted_class": predicted, "label": label,
            "probabilities": [1 - p, p], "body_part": "XR_HAND", "coverage": 0.1,
            **{name: flags.get(name, False) for name in FLAG_NAMES}}


def tables(rows: list[dict[str, Any]]) -> AuditTables:
    return AuditTables(rows, [r for r in rows if r["status"] == "ok"], [], 1, [])


def test_shortcut_alert_from_location_flags_of_abnormal_predictions() -> None:
    rows = [row(f"a{i}", 1, 1, 0.9, flag_burned_in_peak=i < 3) for i in range(10)] + [
        row(f"n{i}", 0, 0, 0.1, flag_border_peak=True) for i in range(10)]  # normal predictions do not count
    signal = shortcut_signal(tables(rows))
    assert signal["abnormal_predictions"] == 10 and signal["share"] == 0.3 >= SHORTCUT_ALERT_SHARE
    assert signal["alert"] and signal["per_flag"]["flag_burned_in_peak"] == 3
    assert verdict(signal).startswith("SHORTCUT ALERT") and "burned in 3" in verdict(signal)
    calm = shortcut_signal(tables([row(f"a{i}", 1, 1, 0.9, flag_off_body_peak=i < 1) for i in range(10)]))
    assert not calm["alert"] and verdict(calm).startswith("no shortcut sign: CAM peaks on flagged locations in 10%")
    assert verdict(shortcut_signal(tables([]))).startswith("no abnormal predictions")


def test_galleries_pick_the_most_confident_first() -> None:
    rows = [row("tp1", 1, 1, 0.7), row("tp2", 1, 1, 0.95), row("fp", 1, 0, 0.8), row("fn1", 0, 1, 0.3),
            row("fn2", 0, 1, 0.05, flag_empty_cam=True), row("unlabelled", 1, None, 0.99)]
    shown = galleries(tables(rows), size=2)
    assert [r["image_path"] for r in shown["most confident true positives"]] == ["tp2", "tp1"]
    assert [r["image_path"] for r in shown["most confident false positives"]] == ["fp"]
    assert [r["image_path"] for r in shown["most confident false negatives"]] == ["fn2", "fn1"]
    assert [r["image_path"] for r in shown["flag_empty_cam"]] == ["fn2"]


def test_error_reasons_are_counted_by_kind() -> None:
    errors = [{"status": "error", "error": f"file not found: /x{i}"} for i in range(3)] + [
        {"status": "error", "error": "cannot decode image: /y"}, {"status": "ok", "error": None}]
    assert error_reasons(errors) == [("file not found", 3), ("cannot decode image", 1)]


def test_several_methods_classify_once_and_get_a_row_each() -> None:
    rows = [{**row("a", 1, 1, 0.9, flag_border_peak=method == "gradcam"), "method": method, "deletion_auc": auc}
            for method, auc in (("cam", 0.2), ("gradcam", 0.4))]
    table = pa.Table.from_pylist(rows)
    audit = audit_tables(table, pa.table({"study_id": pa.array([], pa.string())}), 1)
    assert audit.methods == ["cam", "gradcam"] and len(audit.ok) == 1
    summary = per_method(audit, ["deletion_auc"])
    assert [(m["method"], m["flags"]["flag_border_peak"], m["means"]["deletion_auc"]) for m in summary] == [
        ("cam", 0, 0.2), ("gradcam", 1, 0.4)]


def test_a_body_part_with_no_labelled_rows_says_so() -> None:
    rows = [row(f"a{i}", i % 2, i % 2, 0.2 + 0.6 * (i % 2)) for i in range(6)]
    rows.append({**row("e", 0, 1, 0.5), "status": "error", "body_part": "XR_ELBOW"})
    metrics = audit_metrics(tables(rows), 0.5, resamples=20)
    assert metrics["image"]["XR_ELBOW"]["n"] == 0 and metrics["image"]["XR_ELBOW"]["auroc"] is None
    assert metrics["image"]["XR_ELBOW"]["notes"] == {"all": "no labelled rows"}
    assert metrics["image"]["XR_HAND"]["n"] == 6 and metrics["image"]["XR_HAND"]["auroc"] == 1.0

"""Records fit the one schema, ok and error rows alike, and the README documents it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from transforms.cam import CamStats
from transforms.flags import FLAG_NAMES, FlagThresholds, image_flags
from transforms.mura import ManifestEntry
from transforms.schema import RECORD_SCHEMA, Prediction, RunFacts, schema_markdown, to_record

FACTS = RunFacts(run_id="r1", model_sha256="ab" * 32, threshold=0.2, class_names=("normal", "abnormal"))
ENTRY = ManifestEntry(image_path="a.png", study_id="s", patient_id="p", body_part="XR_HAND", split="valid", label=1)


def test_ok_record_fields_and_schema() -> None:
    cam = np.array([[1.0, -2.0], [3.0, 4.0]], dtype=np.float32)
    record = to_record(
        ENTRY,
        "/data/a.png",
        FACTS,
        size=(40, 30),
        prediction=Prediction(probabilities=(0.25, 0.75), cam_class=1, cam=cam),
        stats=CamStats(10, 20, 0.2625, 0.6833, 4.0, 0.5),
        heatmap_path="/out/heatmaps/a.png.jpg",
    )
    table = pa.Table.from_pylist([record], schema=RECORD_SCHEMA)
    row = table.to_pylist()[0]
    assert row["status"] == "ok" and row["error"] is None
    assert row["predicted_class"] == 1 and row["predicted_label"] == "abnormal"
    assert row["cam"] == [1.0, -2.0, 3.0, 4.0] and (row["cam_height"], row["cam_width"]) == (2, 2)
    assert (row["width"], row["height"]) == (40, 30)
    assert set(record) == set(RECORD_SCHEMA.names)


def test_error_record_fits_schema_with_nulls() -> None:
    record = to_record(ENTRY, "/data/a.png", FACTS, error="file not found: /data/a.png")
    row = pa.Table.from_pylist([record], schema=RECORD_SCHEMA).to_pylist()[0]
    assert row["status"] == "error" and row["error"].startswith("file not found")
    assert row["probabilities"] is None and row["peak_x"] is None and row["coverage"] is None
    assert row["run_id"] == "r1" and row["threshold"] == 0.2
    assert all(row[name] is None for name in FLAG_NAMES)


def test_ok_record_carries_its_flags() -> None:
    flags = {name: index % 2 == 0 for index, name in enumerate(FLAG_NAMES)}
    record = to_record(
        ENTRY, "/data/a.png", FACTS, size=(40, 30),
        prediction=Prediction(probabilities=(0.25, 0.75), cam_class=1, cam=np.ones((2, 2), np.float32)),
        stats=CamStats(10, 20, 0.2625, 0.6833, 4.0, 0.5), flags=flags,
    )
    row = pa.Table.from_pylist([record], schema=RECORD_SCHEMA).to_pylist()[0]
    assert {name: row[name] for name in FLAG_NAMES} == flags


def test_label_disagreement_agrees_with_the_records_predicted_class() -> None:
    # A broken model's NaN probability: the record's predicted class and the flag that judges it must be the same one.
    probabilities = (0.95, float("nan"))
    flags = image_flags(np.full((30, 40), 100, np.uint8), (20, 15), probabilities, 0.1, ENTRY.label, FlagThresholds())
    record = to_record(
        ENTRY, "/data/a.png", FACTS, size=(40, 30),
        prediction=Prediction(probabilities=probabilities, cam_class=0, cam=np.ones((2, 2), np.float32)),
        stats=CamStats(20, 15, 0.5, 0.5, 1.0, 0.1), flags=flags,
    )
    assert record["predicted_class"] == 0
    assert record["flag_label_disagreement"] is (record["predicted_class"] != ENTRY.label)


def test_non_nullable_fields_are_exactly_the_run_facts_and_identity() -> None:
    required = {field.name for field in RECORD_SCHEMA if not field.nullable}
    assert required == {"image_path", "image_uri", "status", "threshold", "model_sha256", "run_id"}


def test_readme_schema_table_is_current() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert schema_markdown() in readme

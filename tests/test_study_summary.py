"""Tests for a study's running summary (transforms.study_summary): folding, merging in any order, the row."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from transforms.study_summary import StudyAccumulator, add_record, merge, study_row


def record(path: str, probability: float | None, coverage: float = 0.1, flagged: bool = False,
           label: int | None = 1) -> dict[str, Any]:
    ok = probability is not None
    return {
        "image_path": path, "status": "ok" if ok else "error", "patient_id": "p1", "body_part": "XR_HAND",
        "split": "valid", "label": label, "probabilities": [1 - probability, probability] if ok else None,
        "coverage": coverage if ok else None, "flag_border_peak": flagged if ok else None,
    }


RECORDS = [record("a.png", 0.2, 0.1), record("b.png", 0.9, 0.4, flagged=True), record("c.png", None),
           record("d.png", 0.9, 0.2)]


def test_row_of_a_study() -> None:
    accumulator = StudyAccumulator()
    for item in RECORDS:
        add_record(accumulator, item, abnormal_class=1)
    row = study_row("s1", accumulator, 0.5, "run")
    assert row["n_images"] == 4 and row["n_errors"] == 1 and row["flagged_images"] == 1
    assert row["mean_abnormal_probability"] == pytest.approx((0.2 + 0.9 + 0.9) / 3)
    assert row["predicted_label"] == 1 and row["label"] == 1 and row["body_part"] == "XR_HAND"
    assert row["mean_coverage"] == pytest.approx(0.7 / 3) and row["max_coverage"] == 0.4
    # A tie on the top probability goes to the smaller path, whatever the order.
    assert (row["top_image_path"], row["top_image_probability"]) == ("b.png", 0.9)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_merging_partials_gives_the_same_row_in_any_order(order: tuple[int, ...]) -> None:
    partials = [add_record(StudyAccumulator(), RECORDS[i], 1) for i in order]
    merged = merge([merge(partials[:2]), merge(partials[2:])])
    whole = StudyAccumulator()
    for item in RECORDS:
        add_record(whole, item, 1)
    assert study_row("s1", merged, 0.5, "r") == pytest.approx(study_row("s1", whole, 0.5, "r"))


def test_a_study_of_errors_only_has_null_predictions() -> None:
    row = study_row("s2", add_record(StudyAccumulator(), record("x.png", None, label=None), 1), 0.5, "r")
    assert row["n_images"] == row["n_errors"] == 1 and row["label"] is None
    assert row["mean_abnormal_probability"] is None and row["predicted_label"] is None
    assert row["top_image_path"] is None and row["max_coverage"] is None
    # MURA's rule is strict: a mean of exactly the threshold is normal.
    assert study_row("s3", add_record(StudyAccumulator(), record("y.png", 0.5), 1), 0.5, "r")["predicted_label"] == 0

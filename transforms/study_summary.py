"""A study's running summary over its records: counts, sums and the top image, mergeable in any order."""

from __future__ import annotations

import dataclasses
from typing import Any

from transforms.flags import FLAG_NAMES
from transforms.schema import STATUS_OK

IDENTITY = ("patient_id", "body_part", "split", "label")


@dataclasses.dataclass
class StudyAccumulator:
    """What a study's records add up to so far (the accumulator of a Beam combine)."""

    identity: dict[str, Any] = dataclasses.field(default_factory=dict)  # first non-null of IDENTITY
    n_images: int = 0
    n_errors: int = 0
    n_ok: int = 0
    probability_sum: float = 0.0
    coverage_sum: float = 0.0
    max_coverage: float | None = None
    flagged: int = 0
    top_image: tuple[float, str] | None = None  # (probability, path)


def better_top(a: tuple[float, str] | None, b: tuple[float, str] | None) -> tuple[float, str] | None:
    """The higher probability; on a tie the smaller path, so the result never depends on order."""
    if a is None or b is None:
        return a if b is None else b
    return a if (a[0], b[1]) > (b[0], a[1]) else b


def add_record(accumulator: StudyAccumulator, record: dict[str, Any], abnormal_class: int) -> StudyAccumulator:
    """Fold one record (ok or error) into the accumulator, in place; returns it."""
    for name in IDENTITY:
        if accumulator.identity.get(name) is None and record.get(name) is not None:
            accumulator.identity[name] = record[name]
    accumulator.n_images += 1
    if record["status"] != STATUS_OK:
        accumulator.n_errors += 1
        return accumulator
    probability = float(record["probabilities"][abnormal_class])
    coverage = float(record["coverage"])
    accumulator.n_ok += 1
    accumulator.probability_sum += probability
    accumulator.coverage_sum += coverage
    accumulator.max_coverage = coverage if accumulator.max_coverage is None else max(accumulator.max_coverage, coverage)
    accumulator.flagged += int(any(record.get(name) for name in FLAG_NAMES))
    accumulator.top_image = better_top(accumulator.top_image, (probability, record["image_path"]))
    return accumulator


def merge(accumulators: list[StudyAccumulator]) -> StudyAccumulator:
    """One accumulator holding everything the given ones hold."""
    merged = StudyAccumulator()
    for accumulator in accumulators:
        for name in IDENTITY:
            if merged.identity.get(name) is None and accumulator.identity.get(name) is not None:
                merged.identity[name] = accumulator.identity[name]
        merged.n_images += accumulator.n_images
        merged.n_errors += accumulator.n_errors
        merged.n_ok += accumulator.n_ok
        merged.probability_sum += accumulator.probability_sum
        merged.coverage_sum += accumulator.coverage_sum
        if accumulator.max_coverage is not None:
            merged.max_coverage = max(merged.max_coverage or 0.0, accumulator.max_coverage)
        merged.flagged += accumulator.flagged
        merged.top_image = better_top(merged.top_image, accumulator.top_image)
    return merged


def study_row(study_id: str, accumulator: StudyAccumulator, study_threshold: float, run_id: str) -> dict[str, Any]:
    """The study table's row (transforms/study_schema.py) of a finished accumulator."""
    mean_probability = accumulator.probability_sum / accumulator.n_ok if accumulator.n_ok else None
    return {
        "study_id": study_id,
        **{name: accumulator.identity.get(name) for name in IDENTITY},
        "n_images": accumulator.n_images,
        "n_errors": accumulator.n_errors,
        "mean_abnormal_probability": mean_probability,
        "predicted_label": None if mean_probability is None else int(mean_probability > study_threshold),
        "study_threshold": study_threshold,
        "mean_coverage": accumulator.coverage_sum / accumulator.n_ok if accumulator.n_ok else None,
        "max_coverage": accumulator.max_coverage,
        "flagged_images": accumulator.flagged,
        "top_image_path": accumulator.top_image[1] if accumulator.top_image else None,
        "top_image_probability": accumulator.top_image[0] if accumulator.top_image else None,
        "run_id": run_id,
    }

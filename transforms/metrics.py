"""Classification metrics for audits: accuracy, Cohen's kappa, and MURA's study-level vote."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def format_metric(value: float | None) -> str:
    """A metric for people: three decimals, or 'n/a' when it could not be computed."""
    return "n/a" if value is None else f"{value:.3f}"


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float | None:
    """Fraction of equal pairs; None for no pairs."""
    if len(labels) == 0:
        return None
    return float(np.mean(np.asarray(labels) == np.asarray(predictions)))


def cohen_kappa(labels: np.ndarray, predictions: np.ndarray) -> float | None:
    """Cohen's kappa (p_o - p_e) / (1 - p_e) for two raters over the same items.

    None for no items. When chance agreement is total (p_e = 1: both raters use one single
    class), kappa is undefined; this returns 1.0 if they agree everywhere, else 0.0.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if len(labels) == 0:
        return None
    classes = np.union1d(labels, predictions)
    observed = float(np.mean(labels == predictions))
    expected = float(sum(np.mean(labels == c) * np.mean(predictions == c) for c in classes))
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def study_votes(
    study_ids: Iterable[str], abnormal_probabilities: Iterable[float], threshold: float = 0.5
) -> dict[str, tuple[float, int]]:
    """MURA's study rule: mean of the images' abnormality probabilities, abnormal if > threshold.

    Returns:
        {study_id: (mean probability, predicted label)}.
    """
    sums: dict[str, list[float]] = {}
    for study, probability in zip(study_ids, abnormal_probabilities, strict=True):
        sums.setdefault(study, []).append(float(probability))
    return {
        study: (float(np.mean(values)), int(np.mean(values) > threshold)) for study, values in sums.items()
    }

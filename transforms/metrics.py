"""Classification metrics for audits: rates, AUROC, Cohen's kappa, bootstrap intervals, MURA's study vote."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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


def sensitivity(labels: np.ndarray, predictions: np.ndarray) -> float | None:
    """True-positive rate TP / (TP + FN); None when there are no positives."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    positives = labels == 1
    return float(np.mean(predictions[positives] == 1)) if positives.any() else None


def specificity(labels: np.ndarray, predictions: np.ndarray) -> float | None:
    """True-negative rate TN / (TN + FP); None when there are no negatives."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    negatives = labels == 0
    return float(np.mean(predictions[negatives] == 0)) if negatives.any() else None


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of values, ties sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    # Start index of each run of equal values, and each element's run.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    run_of = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[run_of]
    return ranks


def auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) formula, ties counted half.

    AUROC = (R+ - n+(n+ + 1)/2) / (n+ n-), R+ the sum of the positives' average ranks.
    None when one class is missing (the curve is undefined).
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    positives = int(np.count_nonzero(labels == 1))
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = float(average_ranks(scores)[labels == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def roc_curve_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) at every distinct score threshold, from (0, 0) to (1, 1)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    ordered_scores, ordered = scores[order], labels[order] == 1
    last_of_run = np.r_[ordered_scores[1:] != ordered_scores[:-1], True]
    true_positives = np.cumsum(ordered)[last_of_run]
    false_positives = np.cumsum(~ordered)[last_of_run]
    positives, negatives = max(int(ordered.sum()), 1), max(int((~ordered).sum()), 1)
    return np.r_[0.0, false_positives / negatives], np.r_[0.0, true_positives / positives]


def bootstrap_interval(
    statistic: Callable[[np.ndarray, np.ndarray], float | None],
    labels: np.ndarray,
    values: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of statistic(labels, values), resampling rows with a seeded RNG.

    Resamples where the statistic is undefined (None) are dropped; None when fewer than half remain.
    """
    labels, values = np.asarray(labels), np.asarray(values)
    if len(labels) == 0:
        return None
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(resamples):
        index = rng.integers(0, len(labels), len(labels))
        estimate = statistic(labels[index], values[index])
        if estimate is not None:
            estimates.append(estimate)
    if len(estimates) < resamples / 2:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(estimates, (tail, 100.0 - tail))
    return float(low), float(high)


def binary_metrics(
    labels: np.ndarray, scores: np.ndarray, threshold: float, resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """n, accuracy, sensitivity, specificity, AUROC and Cohen's kappa of scores against 0/1 labels.

    Predictions are score > threshold (MURA's rule). AUROC and kappa get seeded 95 % bootstrap
    intervals. A metric that cannot be computed is None, with the reason under `notes`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    predictions = (scores > threshold).astype(np.int64)
    positives = int(np.count_nonzero(labels == 1))
    notes: dict[str, str] = {}
    if len(labels) == 0:
        notes["all"] = "no labelled rows"
    elif positives in (0, len(labels)):
        notes["auroc"] = f"only one class present ({'abnormal' if positives else 'normal'})"
        notes["sensitivity" if not positives else "specificity"] = "no rows of that class"
    kappa = cohen_kappa(labels, predictions)
    area = auroc(labels, scores)
    return {
        "n": len(labels),
        "n_abnormal": positives,
        "accuracy": accuracy(labels, predictions),
        "sensitivity": sensitivity(labels, predictions),
        "specificity": specificity(labels, predictions),
        "auroc": area,
        "auroc_ci95": None if area is None else bootstrap_interval(auroc, labels, scores, resamples, seed),
        "kappa": kappa,
        "kappa_ci95": None if kappa is None else bootstrap_interval(
            lambda y, s: cohen_kappa(y, (s > threshold).astype(np.int64)), labels, scores, resamples, seed
        ),
        "notes": notes,
    }

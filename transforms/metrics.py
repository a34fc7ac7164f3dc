"""Classification metrics for audits: rates, AUROC, Cohen's kappa, bootstrap intervals, MURA's study vote."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
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


# Resample counts held at once (resamples x rows, int64); the statistics' temporaries are a few times as large.
BOOTSTRAP_CHUNK_ELEMENTS = 4_000_000


def resample_counts(rows: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples as counts per row (how often each row was drawn), a chunk of resamples x rows at a
    time; each resample drawn with its own `rng.integers(0, rows, rows)` from one seeded generator."""
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_CHUNK_ELEMENTS // rows)
    for first in range(0, resamples, chunk):
        size = min(chunk, resamples - first)
        draws = np.stack([rng.integers(0, rows, rows) for _ in range(size)])
        offsets = np.arange(size)[:, None] * rows
        yield np.bincount((draws + offsets).ravel(), minlength=size * rows).reshape(size, rows)


def auroc_of_counts(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`auroc` of each resample given as counts per row (resamples x rows); NaN where a class is missing.

    The rank-sum formula over runs of equal scores, in integers (ranks doubled): a run's rows share the
    average rank `before + (size + 1) / 2`. The rank sums are exact, so each value equals `auroc` of the
    resampled rows bit for bit, without a sort per resample.
    """
    positive_rows = np.asarray(labels) == 1
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    drawn = counts[:, order]
    run_positives = np.add.reduceat(drawn * positive_rows[order], starts, axis=1)
    run_sizes = np.add.reduceat(drawn, starts, axis=1)
    before = np.cumsum(run_sizes, axis=1) - run_sizes
    rank_sums = (run_positives * (2 * before + run_sizes + 1)).sum(axis=1) / 2.0
    positives = run_positives.sum(axis=1)
    negatives = run_sizes.sum(axis=1) - positives
    defined = (positives > 0) & (negatives > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        areas = (rank_sums - positives * (positives + 1) / 2.0) / (positives * negatives)
    return np.where(defined, areas, np.nan)


def kappa_of_counts(labels: np.ndarray, predictions: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`cohen_kappa` of each resample given as counts per row (resamples x rows), with the same arithmetic."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    rows = counts.sum(axis=1)
    observed = (counts * (labels == predictions)).sum(axis=1) / rows
    # Classes of the whole sample; one a resample lacks adds 0.0 to the sum, which changes nothing.
    expected = np.zeros(len(counts))
    for value in np.union1d(labels, predictions):
        expected = expected + (counts * (labels == value)).sum(axis=1) / rows * (
            (counts * (predictions == value)).sum(axis=1) / rows
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        kappas = (observed - expected) / (1.0 - expected)
    return np.where(expected >= 1.0, np.where(observed == 1.0, 1.0, 0.0), kappas)


def bootstrap_intervals(
    statistics: Sequence[tuple[Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], np.ndarray]],
    labels: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[tuple[float, float] | None]:
    """Percentile bootstrap intervals of statistics of (labels, values), over the same seeded resamples of rows.

    Each `statistic(labels, values, counts)` gives one estimate per resample (`resample_counts`), NaN where it
    is undefined; those are dropped, and an interval is None when fewer than half remain.
    """
    labels = np.asarray(labels)
    if len(labels) == 0 or resamples < 1:
        return [None] * len(statistics)
    statistics = [(statistic, np.asarray(values)) for statistic, values in statistics]
    estimates: list[list[np.ndarray]] = [[] for _ in statistics]
    for counts in resample_counts(len(labels), resamples, seed):
        for found, (statistic, values) in zip(estimates, statistics, strict=True):
            found.append(statistic(labels, values, counts))
    tail = (1.0 - level) / 2.0 * 100.0
    intervals: list[tuple[float, float] | None] = []
    for found in estimates:
        defined = np.concatenate(found)
        defined = defined[~np.isnan(defined)]
        if len(defined) < resamples / 2:
            intervals.append(None)
            continue
        low, high = np.percentile(defined, (tail, 100.0 - tail))
        intervals.append((float(low), float(high)))
    return intervals


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
    # Both intervals from the same resamples (one seed): drawn once, for the metrics that are defined.
    names, statistics = [], []
    if area is not None:
        names.append("auroc")
        statistics.append((auroc_of_counts, scores))
    if kappa is not None:
        names.append("kappa")
        statistics.append((kappa_of_counts, predictions))
    intervals = dict(zip(names, bootstrap_intervals(statistics, labels, resamples, seed), strict=True))
    return {
        "n": len(labels),
        "n_abnormal": positives,
        "accuracy": accuracy(labels, predictions),
        "sensitivity": sensitivity(labels, predictions),
        "specificity": specificity(labels, predictions),
        "auroc": area,
        "auroc_ci95": intervals.get("auroc"),
        "kappa": kappa,
        "kappa_ci95": intervals.get("kappa"),
        "notes": notes,
    }

"""Accuracy, Cohen's kappa and the MURA study vote against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

import transforms.metrics as metrics
from transforms.metrics import (
    accuracy,
    auroc,
    auroc_of_counts,
    binary_metrics,
    bootstrap_intervals,
    cohen_kappa,
    kappa_of_counts,
    resample_counts,
    roc_curve_points,
    study_votes,
)


def test_kappa_hand_computed() -> None:
    # 10 items: agree on 4 positives and 3 negatives; p_o = 0.7.
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    predicted = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1])
    # p_e = P(l=1)P(p=1) + P(l=0)P(p=0) = 0.5*0.6 + 0.5*0.4 = 0.5 -> kappa = 0.2 / 0.5 = 0.4
    assert cohen_kappa(labels, predicted) == pytest.approx(0.4)
    assert accuracy(labels, predicted) == pytest.approx(0.7)


def test_kappa_edge_cases() -> None:
    assert cohen_kappa(np.array([]), np.array([])) is None
    assert cohen_kappa(np.array([1, 1]), np.array([1, 1])) == 1.0
    assert cohen_kappa(np.array([0, 1, 0, 1]), np.array([1, 0, 1, 0])) == pytest.approx(-1.0)
    assert accuracy(np.array([]), np.array([])) is None


def test_study_votes_mean_then_threshold() -> None:
    votes = study_votes(["a", "a", "b", "b", "c"], [0.9, 0.2, 0.5, 0.5, 0.51])
    assert votes["a"] == (pytest.approx(0.55), 1)
    assert votes["b"] == (pytest.approx(0.5), 0)  # abnormal only if strictly above 0.5
    assert votes["c"][1] == 1


# scikit-learn is a test-only dependency: the independent computation these metrics are checked against.
sklearn_metrics = pytest.importorskip("sklearn.metrics")


def generated(seed: int, n: int, rounding: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores that lean towards the labels, rounded so that ties occur."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = np.round(np.clip(rng.normal(0.35 + 0.3 * labels, 0.25), 0, 1), rounding)
    return labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rates_auroc_and_kappa_equal_scikit_learn(seed: int) -> None:
    labels, scores = generated(seed, 200 + 37 * seed, rounding=1)  # one decimal: many ties
    predicted = (scores > 0.5).astype(int)
    result = binary_metrics(labels, scores, 0.5, resamples=200, seed=seed)
    assert result["n"] == len(labels) and result["n_abnormal"] == int(labels.sum())
    assert result["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels, predicted))
    assert result["sensitivity"] == pytest.approx(sklearn_metrics.recall_score(labels, predicted, pos_label=1))
    assert result["specificity"] == pytest.approx(sklearn_metrics.recall_score(labels, predicted, pos_label=0))
    assert result["auroc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores))
    assert result["kappa"] == pytest.approx(sklearn_metrics.cohen_kappa_score(labels, predicted))
    low, high = result["auroc_ci95"]
    assert low < result["auroc"] < high
    low, high = result["kappa_ci95"]
    assert low < result["kappa"] < high
    assert result["notes"] == {}


def test_roc_points_equal_scikit_learn() -> None:
    labels, scores = generated(4, 120, rounding=1)
    fpr, tpr = roc_curve_points(labels, scores)
    expected_fpr, expected_tpr, _ = sklearn_metrics.roc_curve(labels, scores, drop_intermediate=False)
    assert np.allclose(fpr, expected_fpr) and np.allclose(tpr, expected_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(labels, scores))


def test_auroc_hand_computed_with_a_tie() -> None:
    # Pairs (pos, neg): 0.8>0.1, 0.8>0.5, 0.5=0.5 (half), 0.5>0.1 -> 3.5 / 4
    assert auroc(np.array([1, 1, 0, 0]), np.array([0.8, 0.5, 0.5, 0.1])) == pytest.approx(0.875)


def test_bootstrap_is_seeded() -> None:
    labels, scores = generated(5, 80)
    first = bootstrap_intervals([(auroc_of_counts, scores)], labels, 100, seed=3)
    assert first == bootstrap_intervals([(auroc_of_counts, scores)], labels, 100, seed=3)
    assert first != bootstrap_intervals([(auroc_of_counts, scores)], labels, 100, seed=4)


def one_resample_at_a_time(statistic, labels: np.ndarray, values: np.ndarray, resamples: int, seed: int) -> list:
    """The plain bootstrap: draw each resample's rows, compute the statistic on them (None where undefined)."""
    rng = np.random.default_rng(seed)
    return [statistic(labels[index], values[index])
            for index in (rng.integers(0, len(labels), len(labels)) for _ in range(resamples))]  # fmt: skip


@pytest.mark.parametrize(("seed", "n", "chunk"), [(0, 40, 4_000_000), (1, 301, 1_000), (2, 7, 3), (3, 120, 500)])
def test_resample_counts_give_each_resamples_statistic_bit_for_bit(
    seed: int, n: int, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks of every size, down to one resample at a time; tiny samples where a class often goes missing.
    monkeypatch.setattr(metrics, "BOOTSTRAP_CHUNK_ELEMENTS", chunk)
    labels, scores = generated(seed, n, rounding=1)
    predictions = (scores > 0.5).astype(np.int64)
    areas = np.concatenate([auroc_of_counts(labels, scores, c) for c in resample_counts(n, 150, seed)])
    kappas = np.concatenate([kappa_of_counts(labels, predictions, c) for c in resample_counts(n, 150, seed)])
    expected_areas = one_resample_at_a_time(auroc, labels, scores, 150, seed)
    expected_kappas = one_resample_at_a_time(cohen_kappa, labels, predictions, 150, seed)
    assert [None if np.isnan(a) else float(a) for a in areas] == expected_areas
    assert [float(k) for k in kappas] == expected_kappas
    # The interval is the percentile of the defined estimates, as the plain bootstrap gives it.
    defined = [a for a in expected_areas if a is not None]
    tail = (1.0 - 0.95) / 2.0 * 100.0  # as bootstrap_intervals computes it (2.4999999999999978)
    assert bootstrap_intervals([(auroc_of_counts, scores)], labels, 150, seed) == [tuple(
        float(v) for v in np.percentile(defined, (tail, 100.0 - tail))
    )]


def test_no_resamples_give_no_intervals() -> None:
    labels, scores = generated(6, 30)
    assert bootstrap_intervals([(auroc_of_counts, scores)], labels, 0) == [None]
    assert binary_metrics(labels, scores, 0.5, resamples=0)["auroc_ci95"] is None


def test_kappa_of_counts_where_chance_agreement_is_total() -> None:
    # Every resample of one-class labels and predictions: p_e = 1, kappa 1.0 where they agree, else 0.0.
    ones = np.ones(6, np.int64)
    counts = np.array([[1, 1, 1, 1, 1, 1], [6, 0, 0, 0, 0, 0]])
    assert kappa_of_counts(ones, ones, counts).tolist() == [1.0, 1.0]
    # Two rows, both agreeing: drawn once each, p_o = 1 and p_e = 0.5 (kappa 1.0); the first row twice, p_e = 1.
    # One row agreeing and one not, each once: p_o = 0.5, p_e = 0.5 * 0 + 0.5 * 1 = 0.5, kappa 0.0.
    both = np.array([[1, 1], [2, 0]])
    assert kappa_of_counts(np.array([1, 0]), np.array([1, 0]), both).tolist() == [1.0, 1.0]
    assert kappa_of_counts(np.array([1, 0]), np.array([1, 1]), both[:1]).tolist() == [0.0]


def test_degenerate_groups() -> None:
    one_class = binary_metrics(np.zeros(5, int), np.array([0.1, 0.7, 0.2, 0.3, 0.4]), 0.5, resamples=50)
    assert one_class["auroc"] is None and one_class["auroc_ci95"] is None
    assert "only one class" in one_class["notes"]["auroc"]
    assert one_class["sensitivity"] is None and one_class["specificity"] == pytest.approx(0.8)
    empty = binary_metrics(np.array([], int), np.array([]), 0.5, resamples=50)
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["auroc"] is None and empty["kappa"] is None
    assert empty["notes"] == {"all": "no labelled rows"}

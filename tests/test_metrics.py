"""Accuracy, Cohen's kappa and the MURA study vote against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.metrics import (
    accuracy,
    auroc,
    binary_metrics,
    bootstrap_interval,
    cohen_kappa,
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
    first = bootstrap_interval(auroc, labels, scores, 100, seed=3)
    assert first == bootstrap_interval(auroc, labels, scores, 100, seed=3)
    assert first != bootstrap_interval(auroc, labels, scores, 100, seed=4)


def test_degenerate_groups() -> None:
    one_class = binary_metrics(np.zeros(5, int), np.array([0.1, 0.7, 0.2, 0.3, 0.4]), 0.5, resamples=50)
    assert one_class["auroc"] is None and one_class["auroc_ci95"] is None
    assert "only one class" in one_class["notes"]["auroc"]
    assert one_class["sensitivity"] is None and one_class["specificity"] == pytest.approx(0.8)
    empty = binary_metrics(np.array([], int), np.array([]), 0.5, resamples=50)
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["auroc"] is None and empty["kappa"] is None
    assert empty["notes"] == {"all": "no labelled rows"}

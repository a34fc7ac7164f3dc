"""Accuracy, Cohen's kappa and the MURA study vote against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.metrics import accuracy, cohen_kappa, study_votes


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

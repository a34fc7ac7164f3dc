"""Cascading randomisation (Adebayo et al. 2018): CAM collapses with its Dense layer; the check can fail a method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from pipeline.sanity import cascading_randomisation, main, spearman, weighted_layers_top_down
from tests.conftest import TinyArchive, build_tiny_cam_model, random_batch
from tests.method_checks import build_flatten_head_model


def test_spearman_matches_scipy_and_constant_maps_give_zero() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    b[0, :2] = b[1, 0]  # ties
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic)
    assert spearman(a, np.ones((4, 5))) == 0.0


def test_classic_cam_collapses_when_the_dense_layer_alone_is_randomised() -> None:
    model = build_tiny_cam_model(seed=0)
    trained = [w.copy() for w in model.get_weights()]
    assert [layer.name for layer in weighted_layers_top_down(model)][0] == "classifier"
    report = cascading_randomisation(model, random_batch(8, seed=3), ["cam", "hirescam"], repeats=8)
    assert report.steps[0].layer == "classifier"
    assert abs(report.steps[0].correlations["cam"]) < 0.25 and report.passes("cam") and report.passes("hirescam")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), trained, strict=True))  # restored


def test_a_method_blind_to_the_head_is_failed() -> None:
    # On this Flatten head Grad-CAM++'s weights (positive gradients x alphas) barely change with the
    # classifier's weights: its maps stay the activations' sum, and the check says so.
    report = cascading_randomisation(build_flatten_head_model(seed=0), random_batch(8, seed=3), ["gradcampp"])
    assert report.steps[0].correlations["gradcampp"] > 0.9 and not report.passes("gradcampp")
    assert "gradcampp: FAILS" in report.render()


def test_command_line_prints_the_cascade(
    tiny_archive: TinyArchive, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--model", str(tiny_model_path), "--manifest", str(tiny_archive.manifest), "--images", "4",
                 "--methods", "cam,gradcam", "--max_layers", "2", "--repeats", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "4 images x 1 draws" in out and out.count("\nclassifier ") == 1 and "cam: " in out

"""Grad-CAM: equals CAM on a GAP -> Dense model, and mean-gradient channel weights elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import build_tiny_cam_model, random_batch
from tests.method_checks import assert_maps_close, explained_with_independent_gradients, normalised
from transforms.methods.cam import ClassicCam
from transforms.methods.gradcam import GradCam


@pytest.mark.parametrize(("units", "activation"), [(2, "softmax"), (1, "sigmoid"), (3, None)])
def test_gradcam_equals_cam_after_normalisation_on_a_gap_model(units: int, activation: str | None) -> None:
    model = build_tiny_cam_model(seed=6, units=units, activation=activation)
    batch = random_batch(4, seed=3)
    _, cam_classes, cams = ClassicCam(model, cam_class=0).traced()(batch)
    _, classes, maps = GradCam(model, cam_class=0).traced()(batch)
    np.testing.assert_array_equal(classes, cam_classes)
    assert np.abs(normalised(maps) - normalised(cams)).max() <= 1e-4


def test_gradcam_weights_are_mean_gradients_on_a_flatten_head() -> None:
    maps, activations, gradients = explained_with_independent_gradients(GradCam, model_seed=2, batch_seed=5)
    weights = gradients.mean(axis=(1, 2))  # Selvaraju et al. eq. 1
    assert_maps_close(maps, np.einsum("bk,bhwk->bhw", weights, activations))

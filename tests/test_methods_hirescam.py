"""HiResCAM: equals CAM on a GAP -> Dense model, and gradient x activation elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import build_tiny_cam_model, random_batch
from tests.method_checks import assert_maps_close, explained_with_independent_gradients, normalised
from transforms.methods.cam import ClassicCam
from transforms.methods.hirescam import HiResCam


@pytest.mark.parametrize(("units", "activation"), [(2, "softmax"), (1, "sigmoid"), (3, None)])
def test_hirescam_equals_cam_after_normalisation_on_a_gap_model(units: int, activation: str | None) -> None:
    model = build_tiny_cam_model(seed=5, units=units, activation=activation)
    batch = random_batch(4, seed=2)
    cam_probabilities, cam_classes, cams = ClassicCam(model).traced()(batch)
    probabilities, classes, maps = HiResCam(model).traced()(batch)
    np.testing.assert_array_equal(classes, cam_classes)
    np.testing.assert_allclose(probabilities, cam_probabilities, atol=1e-6)
    assert np.abs(normalised(maps) - normalised(cams)).max() <= 1e-4
    # The logit's gradient through GAP is w_k / hw in every cell: HiResCAM is CAM / hw, raw.
    np.testing.assert_allclose(maps * 16 * 16, cams, rtol=1e-4, atol=1e-4 * np.abs(cams).max())


def test_hirescam_is_gradient_times_activation_on_a_flatten_head() -> None:
    maps, activations, gradients = explained_with_independent_gradients(HiResCam, model_seed=1, batch_seed=4)
    assert_maps_close(maps, (gradients * activations).sum(axis=-1))

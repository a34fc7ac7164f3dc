"""LayerCAM: Jiang et al. (2021) eq. 4-5, against a direct numpy implementation."""

from __future__ import annotations

import numpy as np

from tests.conftest import random_batch
from tests.method_checks import build_flatten_head_model, flatten_head_logits, independent_gradients
from transforms.methods.layercam import LayerCam


def test_layercam_matches_positive_gradient_times_activation() -> None:
    model = build_flatten_head_model(seed=4)
    batch = random_batch(4, seed=7)
    activations, gradients, classes = independent_gradients(model, "last_conv", flatten_head_logits, batch)
    _, explained, maps = LayerCam(model).traced()(batch)
    np.testing.assert_array_equal(explained, classes)
    expected = (np.maximum(gradients, 0.0) * activations).sum(axis=-1)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())

"""Grad-CAM++: the closed form of Chattopadhay et al. (2018), against a direct numpy implementation."""

from __future__ import annotations

import numpy as np

from tests.conftest import random_batch
from tests.method_checks import build_flatten_head_model, flatten_head_logits, independent_gradients
from transforms.methods.gradcampp import EPSILON, GradCamPlusPlus


def gradcampp_numpy(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's GradCAMPlusPlus.get_cam_weights, channels last, then the weighted sum."""
    grads_power_2 = gradients**2
    grads_power_3 = grads_power_2 * gradients
    sum_activations = np.sum(activations, axis=(1, 2))
    aij = grads_power_2 / (2 * grads_power_2 + sum_activations[:, None, None, :] * grads_power_3 + EPSILON)
    aij = np.where(gradients != 0, aij, 0)
    weights = np.sum(np.maximum(gradients, 0) * aij, axis=(1, 2))
    return np.einsum("bk,bhwk->bhw", weights, activations)


def test_gradcampp_matches_the_published_closed_form() -> None:
    model = build_flatten_head_model(seed=3)
    batch = random_batch(4, seed=6)
    activations, gradients, classes = independent_gradients(model, "last_conv", flatten_head_logits, batch)
    _, explained, maps = GradCamPlusPlus(model).traced()(batch)
    np.testing.assert_array_equal(explained, classes)
    expected = gradcampp_numpy(activations, gradients)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(maps, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())

"""Grad-CAM++: the closed form of Chattopadhay et al. (2018), against a direct numpy implementation."""

from __future__ import annotations

import numpy as np

from tests.method_checks import assert_maps_close, explained_with_independent_gradients
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
    maps, activations, gradients = explained_with_independent_gradients(GradCamPlusPlus, 3, 6, images=4)
    # Third powers of float32 gradients: agreement to 1e-3.
    assert_maps_close(maps, gradcampp_numpy(activations, gradients), rtol=1e-3)

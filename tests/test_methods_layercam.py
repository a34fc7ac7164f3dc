"""LayerCAM: Jiang et al. (2021) eq. 4-5, against a direct numpy implementation."""

from __future__ import annotations

import numpy as np

from tests.method_checks import assert_maps_close, explained_with_independent_gradients
from transforms.methods.layercam import LayerCam


def test_layercam_matches_positive_gradient_times_activation() -> None:
    maps, activations, gradients = explained_with_independent_gradients(LayerCam, 4, 7, images=4)
    assert_maps_close(maps, (np.maximum(gradients, 0.0) * activations).sum(axis=-1))

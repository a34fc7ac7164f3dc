r"""Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual explanations from deep networks ...", eq. 1-2).

.. math:: \alpha_k^c = \frac{1}{hw} \sum_{i,j} \frac{\partial S^c}{\partial A^k_{ij}}, \qquad
          M^c = \sum_k \alpha_k^c A^k

Channel weights are the spatially averaged gradients (the ReLU of eq. 2 is applied downstream,
as for every method: records keep the raw map).
"""

from __future__ import annotations

from typing import Any

from transforms.methods.gradient import GradientCam, weighted_channels


class GradCam(GradientCam):
    """Channel weights = mean gradient over the map."""

    name = "gradcam"

    def combine(self, activations: Any, gradients: Any) -> Any:
        import tensorflow as tf

        return weighted_channels(tf.reduce_mean(gradients, axis=(1, 2)), activations)

r"""Grad-CAM++ (Chattopadhay et al. 2018, "Grad-CAM++: Generalized gradient-based visual explanations", eq. 19).

With the score taken through an exponential, :math:`Y^c = \exp(S^c)`, the higher derivatives are
powers of the first one :math:`g = \partial S^c / \partial A^k_{ij}` and the closed form is

.. math:: \alpha_{ij}^{kc} = \frac{g^2}{2 g^2 + \sum_{a,b} A^k_{ab} \, g^3}, \qquad
          w_k^c = \sum_{i,j} \alpha_{ij}^{kc} \, \mathrm{ReLU}(g), \qquad
          M^c = \sum_k w_k^c A^k

as pytorch-grad-cam implements it (``exp(S)`` is a positive factor common to every weight, so it
is left out), with :math:`\alpha = 0` where :math:`g = 0` and :math:`\epsilon = 10^{-7}` added
to the denominator; a denominator of exactly :math:`-\epsilon` gives 0, not inf.
"""

from __future__ import annotations

from typing import Any

from transforms.methods.gradient import GradientCam, weighted_channels

EPSILON = 1e-7


class GradCamPlusPlus(GradientCam):
    """Channel weights = positive gradients weighted by the closed-form alphas."""

    name = "gradcampp"

    def combine(self, activations: Any, gradients: Any) -> Any:
        import tensorflow as tf

        squared = tf.square(gradients)
        cubed = squared * gradients
        activation_sums = tf.reduce_sum(activations, axis=(1, 2), keepdims=True)
        alphas = tf.math.divide_no_nan(squared, 2.0 * squared + activation_sums * cubed + EPSILON)
        alphas = tf.where(gradients != 0.0, alphas, tf.zeros_like(alphas))
        weights = tf.reduce_sum(alphas * tf.nn.relu(gradients), axis=(1, 2))
        return weighted_channels(weights, activations)

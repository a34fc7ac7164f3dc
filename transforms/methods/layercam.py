r"""LayerCAM (Jiang et al. 2021, "LayerCAM: Exploring hierarchical class activation maps", eq. 4-5).

.. math:: M^c = \sum_k \mathrm{ReLU}\left(\frac{\partial S^c}{\partial A^k}\right) \odot A^k

Each cell keeps its own weight, the positive part of its gradient: maps of shallow layers keep
their fine detail, where channel-averaged weights blur it.
"""

from __future__ import annotations

from typing import Any

from transforms.methods.gradient import GradientCam


class LayerCam(GradientCam):
    """Element-wise positive gradient x activation, summed over channels."""

    name = "layercam"

    def combine(self, activations: Any, gradients: Any) -> Any:
        import tensorflow as tf

        return tf.reduce_sum(tf.nn.relu(gradients) * activations, axis=-1)

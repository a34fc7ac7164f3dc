r"""HiResCAM (Draelos & Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations").

.. math:: M^c = \sum_k \frac{\partial S^c}{\partial A^k} \odot A^k

The gradient multiplies the activations cell by cell instead of being averaged first, so the map
shows the cells that moved the score: on a GAP -> Dense model it equals classic CAM divided by
h x w (the gradient of the logit is w_k^c / hw everywhere), and beyond that head it stays faithful
to the model's computation, where Grad-CAM can highlight cells the model did not use.
"""

from __future__ import annotations

from typing import Any

from transforms.methods.gradient import GradientCam


class HiResCam(GradientCam):
    """Element-wise gradient x activation, summed over channels."""

    name = "hirescam"

    def combine(self, activations: Any, gradients: Any) -> Any:
        import tensorflow as tf

        return tf.reduce_sum(gradients * activations, axis=-1)

r"""The gradient methods' shared base: one forward and one backward pass per batch, in one traced function.

Every method of the Grad-CAM family combines the target layer's activations :math:`A^k` with the
gradients :math:`\partial S^c / \partial A^k` of the explained class's score :math:`S^c`. The score:

- softmax head (a Dense with softmax, or Dense -> Softmax/Activation): the pre-softmax logit
  :math:`z^c`, read from the Dense's input in the same pass. The probability saturates (its
  gradient vanishes when the model is sure) and mixes in every other class; Selvaraju et al.
  (2017) take the score before the softmax.
- linear logits: the logit itself.
- 1-unit sigmoid: two classes, class 1 scored by the logit :math:`z` and class 0 by :math:`-z`,
  as classic CAM treats it (pytorch-grad-cam #325/#428: the class-0 target of a sigmoid model).
- any other output (no Dense or activation layer at the end): the probability, as the last resort.

The batch's scores are summed before the one backward pass: images are independent at inference
(BatchNorm uses its moving statistics), so each image's gradient is its own.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from transforms.cam_head import CamModelError, _activation_name, layer_class
from transforms.methods.base import CamMethod
from transforms.target_layer import find_target_layer, tap_model

SCORE_KINDS = ("softmax_logits", "linear", "sigmoid_logit", "probabilities", "sigmoid_probability")


@dataclasses.dataclass(frozen=True)
class ScoreHead:
    """How the explained class's score and the reported probabilities come out of the model's output."""

    kind: str  # one of SCORE_KINDS
    num_classes: int  # as the pipeline reports them (a 1-unit sigmoid counts as 2)
    dense_input: Any = None  # the Dense's input tensor when its logits are recomputed in-graph
    dense_layer: Any = None
    logits: Any = None  # the logits tensor when it is in the graph (before a Softmax/Activation layer)


def find_score_head(model: Any) -> ScoreHead:
    """Read the model's last layers: where its logits are, and how many classes it reports.

    Raises:
        CamModelError: for a sigmoid of several units (multi-label) or an output of one unit that is
            not a sigmoid, which have no single explained class to score.
    """
    output = model.outputs[0]
    units = int(output.shape[-1])
    layer = output._keras_history[0]
    if layer_class(layer) in ("Activation", "Softmax"):
        activation = "softmax" if layer_class(layer) == "Softmax" else _activation_name(layer)
        logits = layer.input
        head = _logit_head(activation, units, logits=logits)
    elif layer_class(layer) == "Dense":
        activation = _activation_name(layer)
        head = _logit_head(activation, units, dense_input=layer.input, dense_layer=layer)
    else:
        head = None
    if head is not None:
        return head
    if units == 1:
        return ScoreHead("sigmoid_probability", 2)
    if units >= 2:
        return ScoreHead("probabilities", units)
    raise CamModelError(f"model output has {units} units")


def _logit_head(activation: str, units: int, **tensors: Any) -> ScoreHead | None:
    if activation == "softmax" and units >= 2:
        return ScoreHead("softmax_logits", units, **tensors)
    if activation == "sigmoid" and units == 1:
        return ScoreHead("sigmoid_logit", 2, **tensors)
    if activation == "linear" and units >= 2:
        return ScoreHead("linear", units)
    if activation in ("softmax", "sigmoid", "linear"):
        raise CamModelError(
            f"output must be softmax (>= 2 units), linear logits (>= 2 units) or a 1-unit sigmoid; "
            f"found {activation} with {units} unit(s)"
        )
    return None


def reported_probabilities(head: ScoreHead, output: Any) -> Any:
    """The model output as the pipeline reports it: B x K float32 probabilities (a sigmoid as 2 classes)."""
    import tensorflow as tf

    output = tf.cast(output, tf.float32)
    if head.kind == "linear":
        return tf.nn.softmax(output, axis=-1)
    if head.kind in ("sigmoid_logit", "sigmoid_probability"):
        return tf.concat([1.0 - output, output], axis=1)
    return output


def class_scores(head: ScoreHead, probabilities: Any, output: Any, extra: Any) -> Any:
    """B x K float32 scores whose gradients the methods take (see the module docstring)."""
    import tensorflow as tf

    if head.kind == "linear":
        return tf.cast(output, tf.float32)
    if head.kind in ("probabilities", "sigmoid_probability"):
        return probabilities
    if head.dense_layer is not None:
        dense = head.dense_layer
        logits = tf.matmul(tf.cast(extra, tf.float32), tf.cast(dense.kernel, tf.float32))
        if dense.use_bias:
            logits += tf.cast(dense.bias, tf.float32)
    else:
        logits = tf.cast(extra, tf.float32)
    if head.kind == "sigmoid_logit":
        return tf.concat([-logits, logits], axis=1)
    return logits


class GradientCam(CamMethod):
    """Template of the Grad-CAM family: forward, score of the explained class, backward, `combine`."""

    def __init__(
        self, model: Any, preprocess: str = "none", cam_class: int | None = None, target_layer: str | None = None
    ) -> None:
        super().__init__(model, preprocess, cam_class, target_layer)
        self.target = find_target_layer(model, target_layer)
        self.head = find_score_head(model)
        extra = self.head.dense_input if self.head.dense_layer is not None else self.head.logits
        outputs = [model.outputs[0]] + ([extra] if extra is not None else [])
        self._forward = tap_model(model, self.target, outputs)

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def features(self) -> Any:
        return self.target.features

    @property
    def target_name(self) -> str:
        return self.target.name

    def probabilities(self, batch: Any) -> Any:
        return reported_probabilities(self.head, self.model(self.scale(batch), training=False))

    def explain(self, batch: Any) -> tuple[Any, Any, Any]:
        import tensorflow as tf

        inputs = self.scale(batch)
        with tf.GradientTape() as tape:
            # Watching the input records every op, even in a model whose weights are all frozen.
            tape.watch(inputs)
            activations, outputs = self._forward(inputs)
            probabilities = reported_probabilities(self.head, outputs[0])
            scores = class_scores(self.head, probabilities, outputs[0], outputs[1] if len(outputs) > 1 else None)
            classes = self.explained_classes(probabilities)
            score = tf.reduce_sum(tf.gather(scores, classes, axis=1, batch_dims=1))
        gradients = tape.gradient(score, activations)
        if gradients is None:
            raise CamModelError(f"the class score does not depend on target layer {self.target.name!r}")
        maps = self.combine(tf.cast(activations, tf.float32), tf.cast(gradients, tf.float32))
        # A map is data for the records: a non-finite cell (from a non-finite model output) becomes 0.
        return probabilities, classes, tf.where(tf.math.is_finite(maps), maps, tf.zeros_like(maps))

    @abc.abstractmethod
    def combine(self, activations: Any, gradients: Any) -> Any:
        """Activations and gradients B x h x w x C (float32) -> raw maps B x h x w, before the ReLU."""


def weighted_channels(weights: Any, activations: Any) -> Any:
    """sum_k w_k A^k: per-image channel weights B x C (or per-cell B x h x w x C) applied to B x h x w x C."""
    import tensorflow as tf

    if len(weights.shape) == 2:
        weights = weights[:, None, None, :]
    return tf.reduce_sum(weights * activations, axis=-1)

"""The template every explanation method follows: one traced pass per batch -> probabilities, classes, maps."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from transforms.cam_head import model_input_size

PREPROCESS_MODES = ("none", "mobilenet_v2")

# (probabilities B x K float32, explained class per image B int32, raw map of that class B x h x w float32)
Explained = tuple[np.ndarray, np.ndarray, np.ndarray]


def preprocess_fn(mode: str) -> Callable[[Any], Any]:
    """Input scaling applied in-graph to RGB float32 0..255 when the model does not embed it."""
    if mode == "none":
        return lambda x: x
    if mode == "mobilenet_v2":
        # keras.applications.mobilenet_v2.preprocess_input: scale to [-1, 1].
        return lambda x: x / 127.5 - 1.0
    raise ValueError(f"--preprocess must be one of {PREPROCESS_MODES}, got {mode!r}")


class CamMethod(abc.ABC):
    """An explanation method over a loaded Keras classifier (pytorch-grad-cam's BaseCAM shape).

    The base owns what every method shares: the input size, the choice of the explained class
    (the predicted one, or a fixed `cam_class`) and the one traced function per worker that a
    batch goes through. A method, in a file of its own, says only how its maps are made
    (`explain`), in TensorFlow ops, so that a whole batch is one call on the device.
    """

    name: ClassVar[str]

    def __init__(
        self, model: Any, preprocess: str = "none", cam_class: int | None = None, target_layer: str | None = None
    ) -> None:
        self.model = model
        self.preprocess = preprocess
        self.scale = preprocess_fn(preprocess)
        self.cam_class = cam_class
        self.input_size = model_input_size(model)

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """Classes as the pipeline reports them (a 1-unit sigmoid counts as 2)."""

    @property
    @abc.abstractmethod
    def features(self) -> Any:
        """The symbolic B x h x w x C feature tensor whose cells the maps are made of."""

    @property
    @abc.abstractmethod
    def target_name(self) -> str:
        """Name of the layer whose maps are explained ("backbone/layer" inside a nested model), for records."""

    @abc.abstractmethod
    def probabilities(self, batch: Any) -> Any:
        """RGB 0..255 batch tensor -> probabilities B x K (TF), the forward pass alone (faithfulness)."""

    @abc.abstractmethod
    def explain(self, batch: Any) -> tuple[Any, Any, Any]:
        """RGB 0..255 batch tensor -> (probabilities B x K, explained classes B, maps B x h x w), as TF tensors."""

    def explained_classes(self, probabilities: Any) -> Any:
        """The class each image's map explains: `cam_class` for all, or each image's argmax."""
        import tensorflow as tf

        if self.cam_class is None:
            return tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return tf.fill(tf.shape(probabilities)[:1], tf.constant(self.cam_class, tf.int32))

    def traced(self) -> Callable[[np.ndarray], Explained]:
        """A traced-once callable: float32 RGB batch -> (probabilities, classes, maps) as numpy.

        The input signature has a free batch dimension so the last, smaller batch reuses the
        same trace instead of retracing.
        """
        import tensorflow as tf

        height, width = self.input_size

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)])
        def _explain(batch: Any) -> Any:
            return self.explain(batch)

        def run(batch: np.ndarray) -> Explained:
            probabilities, classes, maps = _explain(tf.convert_to_tensor(batch, dtype=tf.float32))
            return probabilities.numpy(), classes.numpy(), maps.numpy()

        run.traced = _explain  # type: ignore[attr-defined] - lets tests count traces
        return run

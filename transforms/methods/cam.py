r"""Classic CAM (Zhou et al. 2016): the last conv maps weighted by the Dense kernel of the class.

.. math:: M^c(x, y) = \sum_k w_k^c f_k(x, y)

Only for models that end conv maps -> GlobalAveragePooling2D -> [Dropout] -> Dense.
"""

from __future__ import annotations

from typing import Any

from transforms.cam_head import find_cam_head, model_input_size
from transforms.methods.base import CamMethod, preprocess_fn


def _cam_projection_class() -> type:
    import keras

    class _CamProjection(keras.layers.Layer):
        """Contracts B x h x w x C feature maps with a C x K kernel into B x h x w x K CAMs."""

        def __init__(self, kernel: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._kernel = kernel

        def call(self, features: Any) -> Any:
            # float32 whatever the backbone computes in: under mixed precision the feature maps
            # arrive as float16, and a 1280-channel weighted sum in float16 loses the CAM's detail.
            features = keras.ops.cast(features, "float32")
            kernel = keras.ops.cast(self._kernel, "float32")
            return keras.ops.tensordot(features, kernel, axes=[[3], [0]])

    return _CamProjection


def CamProjection(kernel: Any, name: str) -> Any:  # noqa: N802 - reads as a layer constructor
    """Layer factory, deferred so that importing this module does not import Keras."""
    # dtype float32 also stops Keras from autocasting the features to a mixed global policy.
    return _cam_projection_class()(kernel, name=name, dtype="float32")


def build_cam_model(model: Any, preprocess: str = "none") -> Any:
    """Keras model: RGB 0..255 batch -> (probabilities B x K, CAMs B x h x w x K) in one pass.

    The CAM of class c is sum_k w_k^c f_k(x, y) (Zhou et al. 2016, eq. 2): the feature maps
    contracted with the Dense kernel inside the graph, so the B x h x w x C feature tensor never
    leaves the device. The Dense bias is a constant shift and is left out, as in the paper.
    """
    import keras

    head = find_cam_head(model)
    height, width = model_input_size(model)
    features_model = keras.Model(model.inputs, [model.outputs[0], head.features], name="cam_backbone")
    kernel = head.dense_layer.kernel
    if head.output_kind == "sigmoid1":
        # A 1-unit sigmoid is the 2-class case: class 1 has weights w, class 0 has -w.
        kernel_value = keras.ops.concatenate([-kernel, kernel], axis=1)
    else:
        kernel_value = kernel
    scale = preprocess_fn(preprocess)
    inputs = keras.Input((height, width, 3), dtype="float32", name="rgb_0_255")
    output, features = features_model(scale(inputs))
    cams = CamProjection(kernel_value, name="cam_projection")(features)
    if head.output_kind == "sigmoid1":
        probabilities = keras.ops.concatenate([1.0 - output, output], axis=1)
    elif head.output_kind == "linear":
        probabilities = keras.ops.softmax(output, axis=-1)
    else:
        probabilities = output
    probabilities = keras.ops.cast(probabilities, "float32")
    return keras.Model(inputs, [probabilities, cams], name="cam_model")


class ClassicCam(CamMethod):
    """CAM from the classifier's own head: every class's map in the same pass, the explained one kept."""

    name = "cam"

    def __init__(
        self, model: Any, preprocess: str = "none", cam_class: int | None = None, target_layer: str | None = None
    ) -> None:
        super().__init__(model, preprocess, cam_class, target_layer)
        self.head = find_cam_head(model)
        # CAM's maps are by definition those the GAP averages: another layer is a gradient method's job.
        if target_layer is not None and target_layer != self.target_name:
            raise ValueError(
                f"--target_layer {target_layer!r}: classic CAM explains the maps feeding its "
                f"GlobalAveragePooling2D ({self.target_name!r}); use a gradient method for another layer"
            )
        self.cam_model = build_cam_model(model, preprocess)

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def features(self) -> Any:
        return self.head.features

    @property
    def target_name(self) -> str:
        return self.head.features._keras_history[0].name

    def probabilities(self, batch: Any) -> Any:
        return self.cam_model(batch, training=False)[0]

    def explain(self, batch: Any) -> tuple[Any, Any, Any]:
        import tensorflow as tf

        probabilities, cams = self.cam_model(batch, training=False)
        classes = self.explained_classes(probabilities)
        # B x h x w x K -> B x h x w: each image's own class, an exact copy of its map.
        return probabilities, classes, tf.gather(cams, classes, axis=3, batch_dims=1)

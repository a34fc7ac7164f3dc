"""Keras side of CAM: validate the GAP -> Dense head and build the one-pass probabilities+CAM model."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

PREPROCESS_MODES = ("none", "mobilenet_v2")


class CamModelError(ValueError):
    """The model does not have the classic CAM head (conv maps -> GAP -> Dense)."""


@dataclasses.dataclass(frozen=True)
class CamHead:
    """Where the CAM head of a Keras model is: its feature tensor and classifier weights."""

    features: Any  # KerasTensor B x h x w x C: the last conv feature maps
    dense_layer: Any  # the Dense layer whose kernel weights the maps
    output_kind: str  # 'softmax' | 'sigmoid1' | 'linear'
    num_classes: int  # classes as the pipeline reports them (a 1-unit sigmoid counts as 2)
    path: tuple[str, ...]  # layer names from the feature maps to the output, for messages
    layer_names: tuple[str, ...] = ()  # the head's own layers: GAP, Dropout, Dense, activation


def _layer_class(layer: Any) -> str:
    return type(layer).__name__


def _inbound_layer(tensor: Any) -> Any:
    """The layer that produced a symbolic Keras tensor."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise CamModelError("model graph is not inspectable (subclassed model?): cannot find its CAM head")
    return history[0]


def find_cam_head(model: Any) -> CamHead:
    """Walk back from the model output through [Activation] Dense [Dropout]* GAP to the feature maps.

    Raises:
        CamModelError: naming the layers found, when the output is not reached through
            GlobalAveragePooling2D -> Dense.
    """
    outputs = model.outputs
    if len(outputs) != 1:
        raise CamModelError(f"expected a model with one output, found {len(outputs)}")
    walked = [_inbound_layer(outputs[0])]  # layers from the output backwards

    def step_back() -> Any:
        walked.append(_inbound_layer(walked[-1].input))
        return walked[-1]

    def seen() -> list[str]:
        return [f"{layer.name} ({_layer_class(layer)})" for layer in walked]

    layer = walked[0]
    trailing_activation = None
    if _layer_class(layer) in ("Activation", "Softmax"):
        trailing_activation = "softmax" if _layer_class(layer) == "Softmax" else _activation_name(layer)
        layer = step_back()
    if _layer_class(layer) != "Dense":
        raise CamModelError(
            "model output must come from a Dense layer fed by GlobalAveragePooling2D; "
            f"found output layer {seen()[-1]}"
        )
    dense = layer
    activation = trailing_activation or _activation_name(dense)
    if trailing_activation and _activation_name(dense) != "linear":
        raise CamModelError(f"Dense {dense.name} has an activation and is followed by another: {seen()}")
    layer = step_back()
    # Dropout is the identity at inference, so it may sit between GAP and Dense.
    while _layer_class(layer) == "Dropout":
        layer = step_back()
    if _layer_class(layer) != "GlobalAveragePooling2D":
        raise CamModelError(
            "CAM needs the Dense output layer to be fed by GlobalAveragePooling2D; "
            f"walking back from the output found: {' <- '.join(seen())}"
        )
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise CamModelError(f"GlobalAveragePooling2D {layer.name} must be channels_last")
    if getattr(layer, "keepdims", False):
        raise CamModelError(f"GlobalAveragePooling2D {layer.name} must not keep dims")
    features = layer.input
    if len(features.shape) != 4:
        raise CamModelError(f"feature maps before {layer.name} must be 4-D, found shape {features.shape}")
    units = int(dense.units)
    if activation == "sigmoid" and units == 1:
        kind, classes = "sigmoid1", 2
    elif activation == "softmax" and units >= 2:
        kind, classes = "softmax", units
    elif activation == "linear" and units >= 2:
        kind, classes = "linear", units
    else:
        raise CamModelError(
            f"Dense {dense.name} must be softmax (>= 2 units), linear logits (>= 2 units) or a "
            f"1-unit sigmoid; found activation {activation!r} with {units} unit(s)"
        )
    return CamHead(
        features, dense, kind, classes, tuple(reversed(seen())), tuple(layer.name for layer in reversed(walked))
    )


def _activation_name(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation))


def model_input_size(model: Any) -> tuple[int, int]:
    """(height, width) of the model's image input, read from the model."""
    if len(model.inputs) != 1:
        raise CamModelError(f"expected one image input, found {len(model.inputs)}")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[3] != 3:
        raise CamModelError(f"model input must be B x H x W x 3 with fixed H, W; found {shape}")
    return int(shape[1]), int(shape[2])


def preprocess_fn(mode: str) -> Callable[[Any], Any]:
    """Input scaling applied in-graph to RGB float32 0..255 when the model does not embed it."""
    if mode == "none":
        return lambda x: x
    if mode == "mobilenet_v2":
        # keras.applications.mobilenet_v2.preprocess_input: scale to [-1, 1].
        return lambda x: x / 127.5 - 1.0
    raise ValueError(f"--preprocess must be one of {PREPROCESS_MODES}, got {mode!r}")


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


MIXED_POLICY = "mixed_float16"


def mixed_precision_clone(model: Any, policy: str = MIXED_POLICY) -> Any:
    """The same classifier with its backbone computing in `policy`; the CAM head stays float32.

    Keras' global policy only applies to layers built after it is set: a loaded model keeps the
    float32 policy saved in each layer's config. Cloning layer by layer with the policy written into
    each config is what changes it, for this model only (no process-wide side effect). Variables stay
    float32 under a mixed policy, so the weights copy over as they are. GAP, Dense and its activation
    stay float32, as Keras' mixed-precision guide recommends for the output layers.
    """
    import keras

    head_layers = set(find_cam_head(model).layer_names)

    def clone_layer(layer: Any) -> Any:
        config = layer.get_config()
        config["dtype"] = "float32" if layer.name in head_layers else policy
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    clone.set_weights(model.get_weights())
    return clone


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


def file_sha256(data: bytes) -> str:
    """Hex SHA-256 of the model file's bytes: identifies the model in every record."""
    return hashlib.sha256(data).hexdigest()


def load_keras_model(path: str) -> tuple[Any, str]:
    """Load a .keras or legacy .h5 model from any Beam FileSystems path, safely, without compiling.

    Returns:
        (model, sha256 of the file).
    """
    import keras
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ValueError(f"--model must be a .keras or .h5 file, got {path!r}")
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"--model {path!r} does not exist")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        data = handle.read()
    # Keras loads from a local file: copy remote (gs://, s3://) bytes to a private temp file.
    with tempfile.TemporaryDirectory(prefix="cam_audit_model_") as tmp:
        local = os.path.join(tmp, "model" + suffix)
        with open(local, "wb") as out:
            out.write(data)
        model = keras.saving.load_model(local, compile=False, safe_mode=True)
    return model, file_sha256(data)


def predict_fn(cam_model: Any) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A traced-once callable: batch uint8/float RGB -> (probabilities, CAMs) as numpy.

    The input signature has a free batch dimension so the last, smaller batch reuses the
    same trace instead of retracing.
    """
    import tensorflow as tf

    height, width = int(cam_model.inputs[0].shape[1]), int(cam_model.inputs[0].shape[2])

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)])
    def _forward(batch: Any) -> Any:
        return cam_model(batch, training=False)

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, cams = _forward(tf.convert_to_tensor(batch, dtype=tf.float32))
        return probabilities.numpy(), cams.numpy()

    run.traced = _forward  # type: ignore[attr-defined] - lets tests count traces
    return run


@dataclasses.dataclass(frozen=True)
class FeatureGrid:
    """Where feature cells sit on the model input: cell i's centre is at start + i * step pixels.

    Computed by receptive-field arithmetic along the path from the input to the feature maps.
    It matters because TensorFlow's 'same' padding (and Keras' `correct_pad`) pads stride-2 layers
    on the bottom/right only: each one moves the grid half an input step down-right, and in
    MobileNetV2 at output stride 16 they add up to 7.5 px = 0.47 of a cell. A CAM upsampled on
    the naive grid points that far away from what the network saw.
    """

    start_y: float
    step_y: float
    start_x: float
    step_x: float
    exact: bool  # False when a layer of unknown geometry forced the naive grid

    def shift_cells(self) -> tuple[float, float]:
        """(dy, dx) of this grid from the naive half-pixel grid, in cells."""
        return (self.start_y - self.step_y / 2) / self.step_y, (self.start_x - self.step_x / 2) / self.step_x


_IDENTITY_GEOMETRY = (
    "InputLayer", "BatchNormalization", "ReLU", "Activation", "Add", "Concatenate", "Multiply", "Rescaling",
    "Normalization", "Dropout", "SpatialDropout2D", "LayerNormalization", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "Subtract", "Average", "Maximum", "Minimum", "Identity", "GaussianNoise", "GaussianDropout",
)  # fmt: skip


def _padding_before(size_in: int, size_out: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "valid":
        return 0
    total = max((size_out - 1) * stride + kernel - size_in, 0)
    return total // 2  # TensorFlow puts the odd pixel at the bottom/right


def _layer_steps(layer: Any, tensor_in: Any, tensor_out: Any) -> tuple[tuple[float, int], tuple[float, int]] | None:
    """Per axis (offset in input cells of output cell 0's centre, stride); None if unknown."""
    name = _layer_class(layer)
    if name in _IDENTITY_GEOMETRY:
        return (0.0, 1), (0.0, 1)
    if name == "ZeroPadding2D":
        (top, _), (left, _) = layer.padding
        return (-float(top), 1), (-float(left), 1)
    if name == "Cropping2D":
        (top, _), (left, _) = layer.cropping
        return (float(top), 1), (float(left), 1)
    if name in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D"):
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return None
        kernel = layer.kernel_size if hasattr(layer, "kernel_size") else layer.pool_size
        strides = layer.strides
        dilation = getattr(layer, "dilation_rate", (1, 1))
        steps = []
        for axis in (0, 1):
            size_in, size_out = tensor_in.shape[1 + axis], tensor_out.shape[1 + axis]
            if size_in is None or size_out is None:
                return None
            effective = dilation[axis] * (kernel[axis] - 1) + 1
            before = _padding_before(size_in, size_out, effective, strides[axis], layer.padding)
            steps.append(((effective - 1) / 2 - before, int(strides[axis])))
        return steps[0], steps[1]
    return None


def _path_to(tensor: Any, model_input: Any) -> list[tuple[Any, Any, Any]] | None:
    """(layer, input tensor, output tensor) from the model input to `tensor`, first inbound first."""
    path = []
    while tensor is not model_input:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None
        layer = history[0]
        if _layer_class(layer) == "InputLayer":
            break
        if hasattr(layer, "layers") and hasattr(layer, "outputs"):  # a nested model: descend into it
            inner = _path_to(layer.outputs[0], layer.inputs[0])
            if inner is None:
                return None
            path = inner + path
            tensor = layer.input if not isinstance(layer.input, list) else layer.input[0]
            continue
        node_inputs = layer.input if not isinstance(layer.input, list) else layer.input[0]
        if len(getattr(layer, "_inbound_nodes", [])) > 1:
            node = layer._inbound_nodes[history[1]]
            node_inputs = node.input_tensors[0]
        path.append((layer, node_inputs, tensor))
        tensor = node_inputs
    return list(reversed(path))


def feature_grid(model: Any, head: CamHead) -> FeatureGrid:
    """Receptive-field centres of the CAM cells on the model input (see FeatureGrid)."""
    height, width = model_input_size(model)
    feature_h, feature_w = head.features.shape[1], head.features.shape[2]
    naive = FeatureGrid(height / feature_h / 2, height / feature_h, width / feature_w / 2, width / feature_w, False)
    path = _path_to(head.features, model.inputs[0])
    if path is None:
        return naive
    # Pixel i of the input has its centre at i + 0.5.
    start, step = [0.5, 0.5], [1.0, 1.0]
    for layer, tensor_in, tensor_out in path:
        geometry = _layer_steps(layer, tensor_in, tensor_out)
        if geometry is None:
            return naive
        for axis in (0, 1):
            offset, stride = geometry[axis]
            start[axis] += offset * step[axis]
            step[axis] *= stride
    if abs(step[0] * feature_h - height) > step[0] or abs(step[1] * feature_w - width) > step[1]:
        return naive  # the walk missed a resampling layer; do not trust it
    return FeatureGrid(start[0], step[0], start[1], step[1], True)

"""Receptive-field geometry: where each CAM cell sits on the model input."""

from __future__ import annotations

import dataclasses
from typing import Any

from transforms.cam_head import layer_class, model_input_size


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
    name = layer_class(layer)
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
        if layer_class(layer) == "InputLayer":
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


def feature_grid(model: Any, features: Any) -> FeatureGrid:
    """Receptive-field centres of the cells of `features` (a symbolic tensor of `model`) on its input."""
    height, width = model_input_size(model)
    feature_h, feature_w = features.shape[1], features.shape[2]
    naive = FeatureGrid(height / feature_h / 2, height / feature_h, width / feature_w / 2, width / feature_w, False)
    path = _path_to(features, model.inputs[0])
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

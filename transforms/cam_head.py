"""The classic CAM head of a Keras classifier: find conv maps -> GlobalAveragePooling2D -> [Dropout] -> Dense."""

from __future__ import annotations

import dataclasses
from typing import Any


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


def layer_class(layer: Any) -> str:
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
        return [f"{layer.name} ({layer_class(layer)})" for layer in walked]

    layer = walked[0]
    trailing_activation = None
    if layer_class(layer) in ("Activation", "Softmax"):
        trailing_activation = "softmax" if layer_class(layer) == "Softmax" else _activation_name(layer)
        layer = step_back()
    if layer_class(layer) != "Dense":
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
    while layer_class(layer) == "Dropout":
        layer = step_back()
    if layer_class(layer) != "GlobalAveragePooling2D":
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

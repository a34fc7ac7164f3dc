"""The target layer of the gradient methods: which 4-D feature tensor the maps are made of, nested models included."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from transforms.cam_head import CamModelError, layer_class


@dataclasses.dataclass(frozen=True)
class NestedCall:
    """A nested model (a backbone used as a layer) and the tensors of its call in the parent graph."""

    model: Any
    parent_input: Any
    parent_output: Any


@dataclasses.dataclass(frozen=True)
class TargetLayer:
    """A B x h x w x C feature tensor, in the graph of the (possibly nested) model that computes it."""

    name: str  # "layer", or "backbone/layer" inside a nested model
    features: Any  # KerasTensor in the graph of nesting[-1].model (or of the model itself)
    nesting: tuple[NestedCall, ...]  # outermost first; empty when the tensor is in the model's own graph
    head_layers: tuple[str, ...] = ()  # found by default: the layers between the target and the output


def _is_nested_model(layer: Any) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "outputs") and hasattr(layer, "inputs")


def _history(tensor: Any) -> tuple[Any, Any]:
    """(layer, node) that produced a symbolic tensor."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise CamModelError("model graph is not inspectable (subclassed model?): name a --target_layer is not enough")
    layer = history[0]
    return layer, layer._inbound_nodes[history[1]]


def _single(tensors: Any) -> Any:
    return tensors[0] if isinstance(tensors, list | tuple) else tensors


def _default_target(model: Any, nesting: tuple[NestedCall, ...], prefix: str) -> TargetLayer:
    """Walk back from the output through the non-4-D head to the 4-D tensors that feed it."""
    found: dict[int, TargetLayer] = {}
    head: list[str] = []
    stack = [_single(model.outputs)]
    while stack:
        tensor = stack.pop()
        layer, node = _history(tensor)
        if len(tensor.shape) == 4:
            if layer_class(layer) == "InputLayer":
                raise CamModelError(
                    "no feature maps between the model input and its head: the head reads the image itself"
                )
            found.setdefault(id(tensor), TargetLayer(prefix + layer.name, tensor, nesting))
            continue
        if _is_nested_model(layer):  # a whole nested classifier: its feature maps are inside it
            inner = NestedCall(layer, _single(node.input_tensors), tensor)
            target = _default_target(layer, (*nesting, inner), f"{prefix}{layer.name}/")
            found.setdefault(id(target.features), target)
            head.extend(reversed(target.head_layers))
            continue
        head.append(layer.name)
        stack.extend(node.input_tensors)
    if len(found) != 1:
        names = sorted(target.name for target in found.values())
        raise CamModelError(f"several feature tensors feed the head ({names}): name one with --target_layer")
    [target] = found.values()
    return dataclasses.replace(target, head_layers=tuple(reversed(head)))


def _named_target(model: Any, name: str, nesting: tuple[NestedCall, ...], prefix: str) -> TargetLayer | None:
    """The output of the layer called `name`, searched in this graph first, then in nested models."""
    for layer in model.layers:
        if layer.name == name:
            if len(layer._inbound_nodes) != 1:
                raise CamModelError(f"--target_layer {name!r} is called {len(layer._inbound_nodes)} times in the model")
            tensor = _single(layer._inbound_nodes[0].output_tensors)
            if len(tensor.shape) != 4:
                raise CamModelError(f"--target_layer {name!r} outputs shape {tuple(tensor.shape)}, not B x h x w x C")
            return TargetLayer(prefix + name, tensor, nesting)
    for layer in model.layers:
        if _is_nested_model(layer) and len(layer._inbound_nodes) == 1:
            node = layer._inbound_nodes[0]
            call = NestedCall(layer, _single(node.input_tensors), _single(node.output_tensors))
            target = _named_target(layer, name, (*nesting, call), f"{prefix}{layer.name}/")
            if target is not None:
                return target
    return None


def find_target_layer(model: Any, name: str | None = None) -> TargetLayer:
    """The named layer's output, or by default the last 4-D feature tensor feeding the head.

    The default walks back from the output through the layers that are not 4-D (pooling, Flatten,
    Dense, Dropout, activations) to the 4-D tensor they read, descending into a nested model when
    the whole classifier is one; a backbone used as a layer is the target itself (its output).

    Raises:
        CamModelError: when there is no such layer, it is not 4-D, or several tensors feed the head.
    """
    if len(model.outputs) != 1:
        raise CamModelError(f"expected a model with one output, found {len(model.outputs)}")
    if name is None:
        return _default_target(model, (), "")
    target = _named_target(model, name, (), "")
    if target is None:
        raise CamModelError(f"--target_layer {name!r}: no layer of that name in the model or its nested models")
    return target


def tap_model(model: Any, target: TargetLayer, outputs: list[Any]) -> Callable[[Any], tuple[Any, list[Any]]]:
    """A callable x -> (target activations, [outputs]) for `outputs`, tensors of the model's own graph.

    In the model's own graph it is one multi-output Keras model. Inside a nested model, the graph
    is cut around the nested call: the part before it, the nested model with the target as an
    extra output, and the part after it, composed, so one forward pass yields both.

    Raises:
        CamModelError: when the graph cannot be cut there (a branch bypasses the nested model).
    """
    import keras

    if not target.nesting:
        tapped = keras.Model(model.inputs[0], [target.features, *outputs], name="tapped")

        def run(x: Any) -> tuple[Any, list[Any]]:
            activations, *rest = tapped(x, training=False)
            return activations, rest

        return run
    call, inner_nesting = target.nesting[0], target.nesting[1:]
    inner_target = dataclasses.replace(target, nesting=inner_nesting)
    inner = tap_model(call.model, inner_target, [_single(call.model.outputs)])
    try:
        before = keras.Model(model.inputs[0], call.parent_input, name=f"before_{call.model.name}")
        after = keras.Model(call.parent_output, outputs, name=f"after_{call.model.name}")
    except ValueError as exc:
        raise CamModelError(
            f"cannot cut the model around nested {call.model.name!r} to reach {target.name!r}: {exc}"
        ) from exc

    def run_nested(x: Any) -> tuple[Any, list[Any]]:
        activations, [nested_output] = inner(before(x, training=False))
        rest = after(nested_output, training=False)
        return activations, list(rest) if isinstance(rest, list | tuple) else [rest]

    return run_nested

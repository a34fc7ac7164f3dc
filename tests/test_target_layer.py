"""Target-layer discovery: the last 4-D tensor feeding the head, by name, inside nested models, refusals."""

from __future__ import annotations

import keras
import pytest

from tests.conftest import TINY_INPUT, build_tiny_cam_model
from transforms.cam_head import CamModelError
from transforms.target_layer import find_target_layer


def test_default_is_the_last_feature_maps_before_the_head() -> None:
    model = build_tiny_cam_model(seed=0)
    target = find_target_layer(model)
    assert target.name == "last_conv" and target.nesting == ()
    assert tuple(target.features.shape) == (None, 16, 16, 6)
    assert target.head_layers[-1] == "classifier" and len(target.head_layers) == 2  # GAP, Dense


def test_named_layer_inside_a_nested_backbone_and_the_backbone_by_default() -> None:
    backbone = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None)
    inputs = keras.Input((64, 64, 3))
    pooled = keras.layers.GlobalMaxPooling2D()(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    default = find_target_layer(model)
    assert default.name == backbone.name and default.nesting == ()
    inner = find_target_layer(model, "block_5_expand_BN")
    assert inner.name == f"{backbone.name}/block_5_expand_BN" and len(inner.nesting) == 1
    assert inner.nesting[0].model is backbone and tuple(inner.features.shape) == (None, 8, 8, 96)


def test_whole_classifier_nested_in_a_wrapper_is_searched_inside() -> None:
    inner = build_tiny_cam_model(seed=1)
    inputs = keras.Input((TINY_INPUT, TINY_INPUT, 3))
    wrapper = keras.Model(inputs, inner(inputs))
    assert find_target_layer(wrapper).name == f"{inner.name}/last_conv"


def test_ambiguous_or_missing_feature_maps_are_refused() -> None:
    inputs = keras.Input((TINY_INPUT, TINY_INPUT, 3))
    first = keras.layers.Conv2D(4, 3)(inputs)
    second = keras.layers.Conv2D(4, 3)(first)
    pooled = keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(first), keras.layers.GlobalAveragePooling2D()(second)]
    )
    two_branches = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    with pytest.raises(CamModelError, match="several feature tensors"):
        find_target_layer(two_branches)
    assert find_target_layer(two_branches, second._keras_history[0].name).features is second
    no_maps = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(CamModelError, match="no feature maps"):
        find_target_layer(no_maps)
    with pytest.raises(CamModelError, match="no layer of that name"):
        find_target_layer(two_branches, "missing")

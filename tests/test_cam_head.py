"""Finding the classic CAM head (conv maps -> GAP -> [Dropout] -> Dense), and refusing models without it."""

from __future__ import annotations

import keras
import pytest

from tests.conftest import TINY_INPUT, build_tiny_cam_model, build_tiny_sequential_model
from transforms.cam_head import CamModelError, find_cam_head, layer_class, model_input_size


def test_tiny_model_head_is_found() -> None:
    model = build_tiny_cam_model()
    head = find_cam_head(model)
    assert head.dense_layer.name == "classifier" and head.output_kind == "softmax" and head.num_classes == 2
    assert head.features is model.get_layer("last_conv").output and tuple(head.features.shape[1:]) == (16, 16, 6)
    gap = model.layers[-2].name
    assert head.path == (f"{gap} (GlobalAveragePooling2D)", "classifier (Dense)")
    assert head.layer_names == (gap, "classifier")


def test_one_unit_sigmoid_head_counts_two_classes() -> None:
    head = find_cam_head(build_tiny_cam_model(units=1, activation="sigmoid"))
    assert (head.output_kind, head.num_classes) == ("sigmoid1", 2)


def test_sequential_model_is_accepted() -> None:
    model = build_tiny_sequential_model()
    head = find_cam_head(model)
    assert head.num_classes == 3 and head.dense_layer.name == "classifier"


def _model(*layers: keras.layers.Layer) -> keras.Model:
    inputs = keras.Input((TINY_INPUT, TINY_INPUT, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ((keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")), "Flatten"),
        ((keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(2, activation="softmax")), "GlobalMaxPooling2D"),
        ((keras.layers.GlobalAveragePooling2D(),), "GlobalAveragePooling2D"),
        (
            (
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.Dense(2, activation="softmax"),
            ),
            "Dense",
        ),
        ((keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="relu")), "relu"),
    ],
)
def test_models_without_the_cam_head_are_refused_naming_what_was_found(
    layers: tuple[keras.layers.Layer, ...], message: str
) -> None:
    with pytest.raises(CamModelError, match=message):
        find_cam_head(_model(*layers))


def test_cam_model_error_is_a_configuration_error() -> None:
    # The command line turns ValueErrors into exit code 2 with the reason.
    assert issubclass(CamModelError, ValueError)


def test_model_input_size_reads_height_and_width() -> None:
    assert model_input_size(build_tiny_cam_model()) == (TINY_INPUT, TINY_INPUT)
    inputs = keras.Input((48, 40, 3))
    wide = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    assert model_input_size(wide) == (48, 40)
    grey = keras.Input((TINY_INPUT, TINY_INPUT, 1))
    with pytest.raises(CamModelError, match="B x H x W x 3"):
        model_input_size(keras.Model(grey, keras.layers.Conv2D(2, 3)(grey)))


def test_layer_class_is_the_keras_class_name() -> None:
    assert layer_class(keras.layers.GlobalAveragePooling2D()) == "GlobalAveragePooling2D"

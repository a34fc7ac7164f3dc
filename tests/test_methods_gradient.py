"""The gradient base: batched = per image, one trace, sigmoid classes, nested backbones, Sequential, hostile inputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_INPUT, build_tiny_cam_model, random_batch
from tests.method_checks import build_flatten_head_model, independent_gradients
from transforms.cam import explain_cam
from transforms.methods import METHODS
from transforms.methods.gradient import find_score_head
from transforms.methods.hirescam import HiResCam

GRADIENT_METHODS = ("hirescam", "gradcam", "gradcampp", "layercam")


def test_a_batch_gives_each_image_its_own_map_in_one_trace() -> None:
    method = HiResCam(build_flatten_head_model(seed=5))
    explain = method.traced()
    batch = random_batch(5, seed=8)
    _, classes, maps = explain(batch)
    for index in range(5):
        _, one_class, one_map = explain(batch[index : index + 1])
        assert one_class[0] == classes[index]
        np.testing.assert_allclose(one_map[0], maps[index], rtol=1e-4, atol=1e-6 * np.abs(maps).max())
    assert explain.traced.experimental_get_tracing_count() == 1


def test_one_unit_sigmoid_scores_class_0_by_minus_the_logit() -> None:
    model = build_tiny_cam_model(seed=7, units=1, activation="sigmoid")
    assert find_score_head(model).kind == "sigmoid_logit" and find_score_head(model).num_classes == 2
    batch = random_batch(3, seed=9)
    probabilities, classes, class_1 = HiResCam(model, cam_class=1).traced()(batch)
    _, _, class_0 = HiResCam(model, cam_class=0).traced()(batch)
    np.testing.assert_allclose(probabilities[:, 1], model.predict(batch, verbose=0)[:, 0], atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert list(classes) == [1, 1, 1]
    np.testing.assert_allclose(class_0, -class_1, atol=1e-7)


def test_nested_keras_applications_backbone_equals_the_same_network_flat() -> None:
    keras.utils.set_random_seed(11)
    backbone = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None)

    def head() -> list[keras.layers.Layer]:
        return [keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(8, "relu"), keras.layers.Dense(2, "softmax")]

    flat_head, nested_head = head(), head()
    flat_out = backbone.output
    for layer in flat_head:
        flat_out = layer(flat_out)
    flat = keras.Model(backbone.input, flat_out)
    inputs = keras.Input((64, 64, 3))
    nested_out = backbone(inputs)
    for source, layer in zip(flat_head, nested_head, strict=True):
        nested_out = layer(nested_out)
        layer.set_weights(source.get_weights())
    nested = keras.Model(inputs, nested_out)
    batch = random_batch(2, 64, 64, seed=10) / 127.5 - 1.0
    for flat_layer, nested_layer in (("out_relu", None), ("block_5_expand_BN", "block_5_expand_BN")):
        _, flat_classes, flat_maps = HiResCam(flat, target_layer=flat_layer).traced()(batch)
        nested_method = HiResCam(nested, target_layer=nested_layer)
        _, classes, maps = nested_method.traced()(batch)
        np.testing.assert_array_equal(classes, flat_classes)
        np.testing.assert_allclose(maps, flat_maps, rtol=1e-4, atol=1e-5 * np.abs(flat_maps).max())
        assert nested_method.target_name.startswith(backbone.name)


def test_sequential_model_matches_independent_gradients() -> None:
    keras.utils.set_random_seed(12)
    model = keras.Sequential(
        [
            keras.Input((TINY_INPUT, TINY_INPUT, 3)),
            keras.layers.Rescaling(1.0 / 255.0),
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.Conv2D(5, 3, activation="relu", name="c2"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax", name="out"),
        ]
    )

    def logits(model: keras.Model, activations: tf.Tensor) -> tf.Tensor:
        dense = model.get_layer("out")
        return tf.reshape(activations, [tf.shape(activations)[0], -1]) @ dense.kernel + dense.bias

    batch = random_batch(3, seed=13)
    activations, gradients, classes = independent_gradients(model, "c2", logits, batch)
    method = HiResCam(model)
    _, explained, maps = method.traced()(batch)
    assert method.target_name == "c2"
    np.testing.assert_array_equal(explained, classes)
    expected = (gradients * activations).sum(axis=-1)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_hostile_inputs_give_finite_maps_and_empty_results_never_nan(name: str) -> None:
    model = build_flatten_head_model(seed=6)
    hostile = np.stack(
        [
            np.zeros((TINY_INPUT, TINY_INPUT, 3)),  # black: ReLU features all 0, an all-zero map
            np.full((TINY_INPUT, TINY_INPUT, 3), 255.0),  # white, saturated
            np.full((TINY_INPUT, TINY_INPUT, 3), 1e6),  # far outside 0..255
            random_batch(1, seed=14)[0],
        ]
    ).astype(np.float32)
    probabilities, _, maps = METHODS[name](model).traced()(hostile)
    assert np.isfinite(probabilities).all() and np.isfinite(maps).all()
    assert np.abs(maps[0]).max() == 0.0
    for cam in maps:
        full, stats = explain_cam(cam, 40, 30, 0.2)
        assert np.isfinite(full).all() and np.isfinite(stats.coverage)
        if np.max(cam) <= 0 or np.max(np.maximum(cam, 0)) == np.min(np.maximum(cam, 0)):
            assert stats.peak_x is None and stats.coverage == 0.0 and not full.any()


def test_a_trailing_softmax_layer_is_scored_by_its_input_logits() -> None:
    keras.utils.set_random_seed(15)
    inputs = keras.Input((TINY_INPUT, TINY_INPUT, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    logits = keras.layers.Dense(2, name="logits")(pooled)
    split = keras.Model(inputs, keras.layers.Activation("softmax")(logits))
    fused = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    fused.layers[-1].set_weights(split.get_layer("logits").get_weights())
    assert find_score_head(split).kind == find_score_head(fused).kind == "softmax_logits"
    batch = random_batch(3, seed=16)
    _, _, split_maps = HiResCam(split).traced()(batch)
    _, _, fused_maps = HiResCam(fused).traced()(batch)
    np.testing.assert_allclose(split_maps, fused_maps, rtol=1e-5, atol=1e-7)

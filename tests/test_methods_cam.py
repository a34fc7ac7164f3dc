"""Classic CAM (transforms.methods.cam): the in-graph maps against an independent computation, and its traced pass."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.conftest import TINY_INPUT, build_tiny_cam_model, build_tiny_sequential_model, random_batch
from transforms.methods import METHODS
from transforms.methods.cam import ClassicCam, build_cam_model


def reference_cams(model: keras.Model, feature_layer: str, dense_layer: str, batch: np.ndarray) -> np.ndarray:
    """Zhou et al. eq. 2 by hand: explicit sum over channels of w_k^c * f_k from a sub-model."""
    features = keras.Model(model.inputs, model.get_layer(feature_layer).output).predict(batch, verbose=0)
    weights = model.get_layer(dense_layer).get_weights()[0]  # C x K
    cams = np.zeros(features.shape[:3] + (weights.shape[1],), dtype=np.float64)
    for channel in range(features.shape[-1]):
        for cls in range(weights.shape[1]):
            cams[..., cls] += weights[channel, cls] * features[..., channel]
    return cams


def assert_cams_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Agreement to 1e-5 of the map's magnitude (float32 carries ~7 significant digits)."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def all_cams(model: keras.Model, batch: np.ndarray, preprocess: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """(probabilities B x K, CAMs B x h x w x K) of every class, from the CAM model in one pass."""
    probabilities, cams = build_cam_model(model, preprocess=preprocess)(batch, training=False)
    return np.asarray(probabilities), np.asarray(cams)


def test_cams_match_independent_sum_over_channels() -> None:
    model = build_tiny_cam_model(seed=3)
    batch = random_batch(5)
    probabilities, cams = all_cams(model, batch)
    expected = reference_cams(model, "last_conv", "classifier", batch)
    assert cams.shape == (5, 16, 16, 2)
    np.testing.assert_allclose(cams, expected, atol=1e-5)
    np.testing.assert_allclose(probabilities, model.predict(batch, verbose=0), atol=1e-6)


def test_mobilenet_v2_cams_match_reference() -> None:
    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    pooled = keras.layers.GlobalAveragePooling2D()(base.output)
    dropped = keras.layers.Dropout(0.3)(pooled)
    model = keras.Model(base.input, keras.layers.Dense(2, activation="softmax", name="classifier")(dropped))
    batch = random_batch(3, 96, 96)
    _, cams = all_cams(model, batch, preprocess="mobilenet_v2")
    expected = reference_cams(model, base.layers[-1].name, "classifier", batch / 127.5 - 1.0)
    assert cams.shape == (3, 3, 3, 2)
    assert_cams_close(cams, expected)


def test_one_unit_sigmoid_becomes_two_classes() -> None:
    model = build_tiny_cam_model(seed=4, units=1, activation="sigmoid")
    batch = random_batch(2)
    probabilities, cams = all_cams(model, batch)
    p_abnormal = model.predict(batch, verbose=0)[:, 0]
    np.testing.assert_allclose(probabilities[:, 1], p_abnormal, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    expected = reference_cams(model, "last_conv", "classifier", batch)[..., 0]
    np.testing.assert_allclose(cams[..., 1], expected, atol=1e-5)
    np.testing.assert_allclose(cams[..., 0], -expected, atol=1e-5)
    assert ClassicCam(model).num_classes == 2


def test_sequential_model_cams_match_reference() -> None:
    model = build_tiny_sequential_model()
    _, cams = all_cams(model, random_batch(2))
    assert_cams_close(cams, reference_cams(model, "conv", "classifier", random_batch(2)))


@pytest.mark.parametrize("stride", [8, 16, 32])
def test_reference_classifier_cams_match_independent_sum(stride: int) -> None:
    from reference.classifier import build_cam_classifier

    model = build_cam_classifier(64, 0.35, feature_stride=stride, seed=1)
    batch = random_batch(2, 64, 64)
    probabilities, cams = all_cams(model, batch)
    extractor = model.get_layer(f"mobilenetv2_s{stride}")
    features = extractor.predict(batch / 127.5 - 1.0, verbose=0)  # the embedded Rescaling, by hand
    weights = model.get_layer("classifier").get_weights()[0]
    expected = np.zeros(features.shape[:3] + (2,))
    for channel in range(features.shape[-1]):
        expected += features[..., channel, None] * weights[channel][None, None, None, :]
    assert cams.shape == (2, 64 // stride, 64 // stride, 2)
    assert_cams_close(cams, expected)
    np.testing.assert_allclose(probabilities, model.predict(batch, verbose=0), atol=1e-6)


def test_traced_pass_explains_each_images_predicted_class() -> None:
    model = build_tiny_cam_model(seed=3)
    batch = random_batch(5)
    probabilities, classes, maps = ClassicCam(model).traced()(batch)
    all_probabilities, cams = all_cams(model, batch)
    assert classes.dtype == np.int32 and maps.dtype == np.float32 and probabilities.dtype == np.float32
    assert maps.shape == (5, 16, 16)
    np.testing.assert_array_equal(classes, np.argmax(all_probabilities, axis=1))
    np.testing.assert_allclose(probabilities, all_probabilities, atol=1e-6)
    # The explained map is an exact copy of its class's plane of the all-class CAMs.
    for index, cls in enumerate(classes):
        np.testing.assert_allclose(maps[index], cams[index, :, :, cls], rtol=0, atol=1e-6)
    assert_cams_close(maps, reference_cams(model, "last_conv", "classifier", batch)[np.arange(5), :, :, classes])


def test_classic_cam_is_the_cam_method_and_reads_its_input_size() -> None:
    assert METHODS["cam"] is ClassicCam
    method = ClassicCam(build_tiny_cam_model())
    assert method.input_size == (TINY_INPUT, TINY_INPUT)
    assert tuple(method.features.shape[1:]) == (16, 16, 6)

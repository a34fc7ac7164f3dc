"""The in-graph CAM model against an independent computation, and the head validation."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import TINY_INPUT, build_tiny_cam_model
from transforms.cam_model import (
    CamModelError,
    build_cam_model,
    find_cam_head,
    load_keras_model,
    mixed_precision_clone,
    model_input_size,
    predict_fn,
)


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


def random_batch(size: int, height: int = TINY_INPUT, width: int = TINY_INPUT, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (size, height, width, 3)).astype(np.float32)


def test_cams_match_independent_sum_over_channels() -> None:
    model = build_tiny_cam_model(seed=3)
    batch = random_batch(5)
    probabilities, cams = predict_fn(build_cam_model(model))(batch)
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
    _, cams = predict_fn(build_cam_model(model, preprocess="mobilenet_v2"))(batch)
    expected = reference_cams(model, base.layers[-1].name, "classifier", batch / 127.5 - 1.0)
    assert cams.shape == (3, 3, 3, 2)
    assert_cams_close(cams, expected)


def test_one_unit_sigmoid_becomes_two_classes() -> None:
    model = build_tiny_cam_model(seed=4, units=1, activation="sigmoid")
    batch = random_batch(2)
    probabilities, cams = predict_fn(build_cam_model(model))(batch)
    p_abnormal = model.predict(batch, verbose=0)[:, 0]
    np.testing.assert_allclose(probabilities[:, 1], p_abnormal, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    expected = reference_cams(model, "last_conv", "classifier", batch)[..., 0]
    np.testing.assert_allclose(cams[..., 1], expected, atol=1e-5)
    np.testing.assert_allclose(cams[..., 0], -expected, atol=1e-5)


def test_last_smaller_batch_does_not_retrace() -> None:
    run = predict_fn(build_cam_model(build_tiny_cam_model()))
    run(random_batch(8))
    run(random_batch(3))
    run(random_batch(1))
    assert run.traced.experimental_get_tracing_count() == 1


def test_sequential_model_is_accepted() -> None:
    model = keras.Sequential(
        [
            keras.Input((TINY_INPUT, TINY_INPUT, 3)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax", name="classifier"),
        ]
    )
    head = find_cam_head(model)
    assert head.num_classes == 3 and head.dense_layer.name == "classifier"
    _, cams = predict_fn(build_cam_model(model))(random_batch(2))
    assert_cams_close(cams, reference_cams(model, "conv", "classifier", random_batch(2)))


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


def test_load_keras_model_checks_path_and_hashes(tmp_path: Path, tiny_model_path: Path) -> None:
    model, sha = load_keras_model(str(tiny_model_path))
    assert model_input_size(model) == (TINY_INPUT, TINY_INPUT)
    import hashlib

    assert sha == hashlib.sha256(tiny_model_path.read_bytes()).hexdigest()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_keras_model(str(tmp_path / "missing.keras"))
    with pytest.raises(ValueError, match=r"\.keras or \.h5"):
        load_keras_model(str(tmp_path / "model.pt"))


def test_legacy_h5_loads(tmp_path: Path) -> None:
    path = tmp_path / "tiny.h5"
    build_tiny_cam_model().save(path)
    model, _ = load_keras_model(str(path))
    assert find_cam_head(model).num_classes == 2


def test_feature_grid_of_mobilenet_v2_counts_asymmetric_padding() -> None:
    from pipeline.model import build_cam_classifier
    from transforms.cam_model import feature_grid

    # Conv1 and the stride-2 blocks 1, 3, 6 each pad bottom/right only: +1 input step each,
    # 0.5 + 1 + 2 + 4 + 8 = 15.5 px for cell 0 at stride 16 instead of the naive 8.
    model = build_cam_classifier(128, 0.35, feature_stride=16)
    grid = feature_grid(model, find_cam_head(model))
    assert grid.exact and (grid.start_y, grid.step_y, grid.start_x, grid.step_x) == (15.5, 16.0, 15.5, 16.0)
    assert grid.shift_cells() == (0.46875, 0.46875)


def test_feature_grid_of_symmetric_model_is_naive() -> None:
    from transforms.cam_model import feature_grid

    model = build_tiny_cam_model()  # 'same' stride-1 convs and a 2x2 max pool: no shift
    grid = feature_grid(model, find_cam_head(model))
    assert grid.exact and grid.shift_cells() == (0.0, 0.0) and grid.step_x == 2.0


def test_mixed_precision_clone_computes_in_float16_and_keeps_the_head_float32() -> None:
    model = build_tiny_cam_model(seed=5)
    clone = mixed_precision_clone(model)
    policies = {layer.name: layer.dtype_policy.name for layer in clone.layers if layer.weights}
    assert policies["last_conv"] == "mixed_float16" and policies["classifier"] == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # no process-wide side effect
    batch = random_batch(4)
    probabilities, cams = predict_fn(build_cam_model(model))(batch)
    mixed_probabilities, mixed_cams = predict_fn(build_cam_model(clone))(batch)
    assert mixed_probabilities.dtype == np.float32 and mixed_cams.dtype == np.float32
    # float16 keeps ~3 significant digits: CAMs agree to 1 % of their range, argmaxes match.
    np.testing.assert_allclose(mixed_cams, cams, rtol=0, atol=1e-2 * float(np.abs(cams).max()))
    np.testing.assert_allclose(mixed_probabilities, probabilities, atol=1e-2)
    assert np.array_equal(mixed_cams.reshape(4, -1, 2).argmax(axis=1), cams.reshape(4, -1, 2).argmax(axis=1))


def test_loader_applies_mixed_precision_to_the_loaded_model(tiny_model_path: Path) -> None:
    from transforms.inference import CamModelLoader

    batch = random_batch(2)
    _, cams = CamModelLoader(str(tiny_model_path)).load_model().predict(batch)
    _, mixed_cams = CamModelLoader(str(tiny_model_path), mixed_precision=True).load_model().predict(batch)
    assert mixed_cams.dtype == np.float32
    assert not np.array_equal(mixed_cams, cams)  # the float16 forward pass really ran
    np.testing.assert_allclose(mixed_cams, cams, rtol=0, atol=1e-2 * float(np.abs(cams).max()))
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("stride", [8, 16, 32])
def test_reference_classifier_cams_match_independent_sum(stride: int) -> None:
    from pipeline.model import build_cam_classifier

    model = build_cam_classifier(64, 0.35, feature_stride=stride, seed=1)
    batch = random_batch(2, 64, 64)
    probabilities, cams = predict_fn(build_cam_model(model))(batch)
    extractor = model.get_layer(f"mobilenetv2_s{stride}")
    features = extractor.predict(batch / 127.5 - 1.0, verbose=0)  # the embedded Rescaling, by hand
    weights = model.get_layer("classifier").get_weights()[0]
    expected = np.zeros(features.shape[:3] + (2,))
    for channel in range(features.shape[-1]):
        expected += features[..., channel, None] * weights[channel][None, None, None, :]
    assert cams.shape == (2, 64 // stride, 64 // stride, 2)
    assert_cams_close(cams, expected)
    np.testing.assert_allclose(probabilities, model.predict(batch, verbose=0), atol=1e-6)

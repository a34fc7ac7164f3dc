"""Backend choice (transforms.backends.choice): when LiteRT is tried, the check against TensorFlow, and the one
warning that sends a model LiteRT cannot serve back to TensorFlow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import TINY_INPUT, build_tiny_cam_model
from transforms.backends import choice
from transforms.backends.choice import (
    check_backend,
    flatbuffer_or_warn,
    litert_predict,
    outputs_mismatch,
    wants_litert,
)
from transforms.methods.cam import ClassicCam

pytest.importorskip("ai_edge_litert")


def explained(probabilities: list[list[float]]) -> tuple[np.ndarray, ...]:
    """Outputs as a backend returns them: probabilities, their argmax, and all-ones 2 x 2 maps."""
    probs = np.array(probabilities, np.float32)
    return probs, np.argmax(probs, axis=-1).astype(np.int32), np.ones((len(probs), 2, 2), np.float32)


def test_outputs_mismatch_accepts_agreement_and_names_each_difference() -> None:
    reference = explained([[0.3, 0.7], [0.9, 0.1]])
    assert outputs_mismatch(reference, explained([[0.30004, 0.69996], [0.9, 0.1]])) is None
    assert "probabilities" in outputs_mismatch(reference, explained([[0.31, 0.69], [0.9, 0.1]]))
    flipped = (reference[0], np.array([0, 0], np.int32), reference[2])
    assert "classes" in outputs_mismatch(reference, flipped)
    assert "CAMs" in outputs_mismatch(reference, (*reference[:2], reference[2] * 1.01))


def test_a_near_tie_may_explain_either_class() -> None:
    reference = explained([[0.50001, 0.49999]])
    other_class = (reference[0], np.array([1], np.int32), reference[2])
    assert outputs_mismatch(reference, other_class) is None


def test_backend_flags_are_checked_at_start() -> None:
    check_backend("auto", True)
    check_backend("litert", False)
    with pytest.raises(ValueError, match="--mixed_precision needs --backend tensorflow"):
        check_backend("litert", True)
    with pytest.raises(ValueError, match="--backend must be one of"):
        check_backend("onnx", False)


def test_auto_means_litert_only_on_a_float32_cpu_worker() -> None:
    assert wants_litert("auto", "cam", mixed_precision=False, has_gpu=False)
    assert not wants_litert("auto", "cam", mixed_precision=False, has_gpu=True)
    assert not wants_litert("auto", "cam", mixed_precision=True, has_gpu=False)
    assert not wants_litert("auto", "gradcam", mixed_precision=False, has_gpu=False)
    assert not wants_litert("tensorflow", "cam", mixed_precision=False, has_gpu=False)
    assert wants_litert("litert", "gradcam", mixed_precision=False, has_gpu=True)


class _GradientMethod(ClassicCam):
    """A method LiteRT has no path for (as the gradient-based ones)."""

    name = "gradient_test"


def _extract_patches_layer() -> Any:
    import keras
    import tensorflow as tf

    class ExtractPatches(keras.layers.Layer):
        """tf.image.extract_patches: an op LiteRT's builtins lack (TF Select only)."""

        def call(self, inputs: Any) -> Any:
            return tf.image.extract_patches(inputs, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")

    return ExtractPatches()


def test_a_method_without_a_litert_path_falls_back_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=choice.__name__):
        assert flatbuffer_or_warn(_GradientMethod(build_tiny_cam_model())) is None
    assert len(caplog.records) == 1 and "'gradient_test' method has no LiteRT path" in caplog.records[0].message


@pytest.mark.slow
def test_a_model_litert_cannot_convert_falls_back_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    import keras

    inputs = keras.Input((TINY_INPUT, TINY_INPUT, 3))
    x = _extract_patches_layer()(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    with caplog.at_level(logging.WARNING, logger=choice.__name__):
        assert flatbuffer_or_warn(ClassicCam(model)) is None
    assert len(caplog.records) == 1
    assert "runs on TensorFlow instead" in caplog.records[0].message
    assert "LiteRT could not convert the model" in caplog.records[0].message


def test_a_staged_model_that_changed_is_refused(tmp_path: Path) -> None:
    staged = tmp_path / "model.tflite"
    staged.write_bytes(b"not the model the launcher wrote")
    with pytest.raises(ValueError, match="SHA-256 differs"):
        litert_predict(ClassicCam(build_tiny_cam_model()), (str(staged), "0" * 64), 1, 1, 1)

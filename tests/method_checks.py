"""Independent computations the method tests compare against: per-image gradients taken by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tests.conftest import TINY_INPUT, random_batch, tiny_feature_maps
from transforms.cam import rectify_and_normalise
from transforms.methods.base import CamMethod


def build_flatten_head_model(seed: int = 0) -> keras.Model:
    """Input 32x32x3 -> conv -> pool -> conv 'last_conv' (16x16x6) -> Flatten -> Dense(8, relu) -> Dense softmax."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((TINY_INPUT, TINY_INPUT, 3))
    x = keras.layers.Flatten()(tiny_feature_maps(inputs))
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs)


def flatten_head_logits(model: keras.Model, activations: Any) -> Any:
    """The Flatten -> Dense(relu) -> Dense head written out by hand, up to the pre-softmax logits."""
    hidden, classifier = model.get_layer("hidden"), model.get_layer("classifier")
    flat = tf.reshape(activations, [tf.shape(activations)[0], -1])
    hidden_out = tf.nn.relu(flat @ hidden.kernel + hidden.bias)
    return hidden_out @ classifier.kernel + classifier.bias


def independent_gradients(
    model: keras.Model, layer: str, head_logits: Callable[[keras.Model, Any], Any], batch: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(activations, gradients of the predicted class's logit, classes), one image and one tape at a time."""
    features = keras.Model(model.inputs[0], model.get_layer(layer).output)
    activations, gradients, classes = [], [], []
    for image in batch:
        value = tf.convert_to_tensor(features(image[None], training=False))
        with tf.GradientTape() as tape:
            tape.watch(value)
            logits = head_logits(model, value)
            predicted = int(tf.argmax(logits[0]))
            score = logits[0, predicted]
        activations.append(value.numpy()[0])
        gradients.append(tape.gradient(score, value).numpy()[0])
        classes.append(predicted)
    return np.stack(activations).astype(np.float64), np.stack(gradients).astype(np.float64), np.array(classes)


def normalised(maps: np.ndarray) -> np.ndarray:
    """Each map rectified and divided by its maximum, as the pipeline does."""
    return np.stack([rectify_and_normalise(m)[0] for m in maps])


def explained_with_independent_gradients(
    method: type[CamMethod], model_seed: int, batch_seed: int, images: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the method's maps, activations, gradients) on the Flatten-head model; explained classes checked equal."""
    model = build_flatten_head_model(seed=model_seed)
    batch = random_batch(images, seed=batch_seed)
    activations, gradients, classes = independent_gradients(model, "last_conv", flatten_head_logits, batch)
    _, explained, maps = method(model).traced()(batch)
    np.testing.assert_array_equal(explained, classes)
    return maps, activations, gradients


def assert_maps_close(maps: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> None:
    """Agreement relative to each value and to the maps' magnitude (float32 against float64)."""
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(maps, expected, rtol=rtol, atol=rtol / 10 * np.abs(expected).max())

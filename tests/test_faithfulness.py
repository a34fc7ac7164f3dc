"""Faithfulness: deletion/insertion AUC and confidence drop/increase against a direct numpy computation."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from transforms.cam import rectify_and_normalise, upsample
from transforms.faithfulness import faithfulness_function, step_fractions

SIZE = 16
WEIGHTS = np.random.default_rng(0).normal(size=(SIZE, SIZE)).astype(np.float32) / SIZE


def probabilities_tf(batch: tf.Tensor) -> tf.Tensor:
    """A stand-in classifier: class 1 is a logistic function of a weighted sum of the red channel."""
    logit = tf.reduce_sum(batch[..., 0] * WEIGHTS, axis=(1, 2)) / 64.0
    return tf.stack([tf.sigmoid(-logit), tf.sigmoid(logit)], axis=1)


def probabilities_np(images: np.ndarray) -> np.ndarray:
    logit = (images[..., 0] * WEIGHTS).sum(axis=(1, 2)) / 64.0
    return np.stack([1 / (1 + np.exp(logit)), 1 / (1 + np.exp(-logit))], axis=1)


def reference(image: np.ndarray, cam: np.ndarray, cls: int, shift: tuple[float, float], steps: int) -> list[float]:
    """Petsiuk et al. and Chattopadhay et al. by hand, one image at a time."""
    normalised, _ = rectify_and_normalise(cam)
    full = upsample(normalised, SIZE, SIZE, shift)
    order = np.argsort(-full.ravel(), kind="stable")
    baseline = np.broadcast_to(image.mean(axis=(0, 1)), image.shape)
    fractions = step_fractions(SIZE * SIZE, steps)
    deletion, insertion = [], []
    for fraction in fractions:
        top = np.zeros(SIZE * SIZE, bool)
        top[order[: int(round(fraction * SIZE * SIZE))]] = True
        top = top.reshape(SIZE, SIZE)[..., None]
        deletion.append(probabilities_np(np.where(top, baseline, image)[None])[0, cls])
        insertion.append(probabilities_np(np.where(top, image, baseline)[None])[0, cls])
    original = deletion[0]
    explained = probabilities_np((image * full[..., None])[None])[0, cls]
    return [
        float(np.trapezoid(deletion, fractions)),
        float(np.trapezoid(insertion, fractions)),
        max(0.0, original - explained) / original,
        float(explained > original),
    ]


def test_step_fractions_are_whole_pixels_from_0_to_1() -> None:
    np.testing.assert_allclose(step_fractions(10, 4), [0.0, 0.2, 0.5, 0.8, 1.0])  # 2.5 rounds half to even


def test_scores_match_a_direct_computation_and_empty_maps_are_flagged() -> None:
    rng = np.random.default_rng(1)
    batch = rng.uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    maps = rng.normal(size=(4, 4, 4)).astype(np.float32)
    maps[2] = -1.0  # max <= 0: empty
    maps[3] = 0.5  # constant: empty
    classes = np.array([1, 0, 1, 1], np.int32)
    shift = (0.25, -0.1)
    measure = faithfulness_function(probabilities_tf, (SIZE, SIZE), (4, 4), shift, steps=8)
    deletion, insertion, drop, increase, valid = measure(batch, maps, classes)
    np.testing.assert_array_equal(valid, [1, 1, 0, 0])
    for index in (0, 1):
        expected = reference(batch[index], maps[index], int(classes[index]), shift, 8)
        np.testing.assert_allclose([deletion[index], insertion[index], drop[index], increase[index]], expected,
                                   rtol=1e-4, atol=1e-5)  # fmt: skip
    for array in (deletion, insertion, drop, increase):
        assert np.isfinite(array).all()


def test_a_map_of_the_evidence_deletes_faster_than_its_opposite() -> None:
    rng = np.random.default_rng(2)
    batch = rng.uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    evidence = (batch[0, ..., 0] - batch[0, ..., 0].mean()) * WEIGHTS  # each pixel's share of the logit
    maps = np.stack([evidence, -evidence])
    classes = np.ones(2, np.int32) * int(probabilities_np(batch)[0].argmax())
    if classes[0] == 0:
        maps = -maps
    measure = faithfulness_function(probabilities_tf, (SIZE, SIZE), (SIZE, SIZE), steps=16)
    deletion, insertion, *_ = measure(np.concatenate([batch, batch]), maps.astype(np.float32), classes)
    assert deletion[0] < deletion[1] and insertion[0] > insertion[1]

r"""Faithfulness of maps, batched on the device: deletion/insertion AUC and the drop/increase in confidence.

Deletion and insertion (Petsiuk et al. 2018, "RISE", sec. 4.1): the pixels of the model input are
ranked by the map (bilinearly upsampled exactly as the heatmaps are, receptive-field shift
included; ties broken by position), and in ``FAITHFULNESS_STEPS`` equal steps the top-ranked
fraction is replaced by the **baseline**, the image's own per-channel mean (deletion), or
restored from it (insertion). The same mask covers all three channels. The score is the
probability of the explained class; the area under its curve is taken by the trapezoid rule over
the fractions actually replaced (round(i * HW / N) / HW). Low deletion AUC and high insertion AUC
mean the map points at what the model uses.

Average drop / increase in confidence (Chattopadhay et al. 2018, sec. 5.1): the explanation map
:math:`E = x \odot M` (the normalised map, same on all channels) is fed to the model;
drop = max(0, Y - O) / Y and increase = [O > Y], with Y the probability of the explained class on
the image and O on E. Averaged over images they are the paper's "average drop" and "increase in
confidence".

An empty map (max <= 0, or max = min) ranks nothing: its row is marked not valid and its columns
are null.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from transforms.cam import interpolation_matrix

FAITHFULNESS_STEPS = 16

# (deletion AUC B, insertion AUC B, confidence drop B, confidence increase B as 0/1, map valid B as 0/1)
Faithfulness = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def step_fractions(pixels: int, steps: int = FAITHFULNESS_STEPS) -> np.ndarray:
    """Fractions of pixels replaced at each step, 0 .. 1: whole pixels, i * pixels / steps rounded half to even."""
    return np.round(np.arange(steps + 1) * pixels / steps) / pixels


def faithfulness_function(
    probabilities: Callable[[Any], Any],
    input_size: tuple[int, int],
    map_size: tuple[int, int],
    shift: tuple[float, float] = (0.0, 0.0),
    steps: int = FAITHFULNESS_STEPS,
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], Faithfulness]:
    """A traced-once callable (RGB batch 0..255, raw maps B x h x w, classes B) -> `Faithfulness` as numpy.

    Args:
        probabilities: RGB 0..255 batch tensor -> B x K probabilities (TF), the model's forward pass.
        input_size: (H, W) of the model input.
        map_size: (h, w) of the maps.
        shift: receptive-field shift of the map grid, in cells, as the heatmaps use it.
        steps: deletion/insertion steps.
    """
    import tensorflow as tf

    height, width = input_size
    pixels = height * width
    rows = tf.constant(interpolation_matrix(height, map_size[0], shift[0]))
    columns = tf.constant(interpolation_matrix(width, map_size[1], shift[1]))
    fractions = step_fractions(pixels, steps)
    counts = [int(round(f * pixels)) for f in fractions]
    widths = tf.constant(np.diff(fractions), tf.float32)

    def class_probability(images: Any, classes: Any) -> Any:
        return tf.gather(probabilities(images), classes, axis=1, batch_dims=1)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, height, width, 3], tf.float32),
            tf.TensorSpec([None, *map_size], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def _faithfulness(batch: Any, maps: Any, classes: Any) -> Any:
        rectified = tf.nn.relu(tf.where(tf.math.is_finite(maps), maps, tf.zeros_like(maps)))
        peak = tf.reduce_max(rectified, axis=(1, 2))
        valid = (peak > 0.0) & (peak > tf.reduce_min(rectified, axis=(1, 2)))
        normalised = rectified / tf.where(valid, peak, tf.ones_like(peak))[:, None, None]
        full = tf.einsum("Yy,byx,Xx->bYX", rows, normalised, columns)
        flat = tf.reshape(full, [-1, pixels])
        order = tf.argsort(flat, axis=1, direction="DESCENDING", stable=True)
        ranks = tf.reshape(tf.argsort(order, axis=1, stable=True), [-1, height, width, 1])
        baseline = tf.broadcast_to(tf.reduce_mean(batch, axis=(1, 2), keepdims=True), tf.shape(batch))
        both_classes = tf.concat([classes, classes], axis=0)
        deletion, insertion = [], []
        for count in counts:
            top = tf.cast(ranks < count, tf.float32)  # one mask for all three channels
            deleted = batch * (1.0 - top) + baseline * top
            inserted = baseline * (1.0 - top) + batch * top
            scored = class_probability(tf.concat([deleted, inserted], axis=0), both_classes)
            deletion_score, insertion_score = tf.split(scored, 2)
            deletion.append(deletion_score)
            insertion.append(insertion_score)
        deletion_auc = trapezoid(tf.stack(deletion, axis=1), widths)
        insertion_auc = trapezoid(tf.stack(insertion, axis=1), widths)
        original = deletion[0]
        explained = class_probability(batch * full[..., None], classes)
        drop = tf.math.divide_no_nan(tf.nn.relu(original - explained), original)
        increase = tf.cast(explained > original, tf.float32)
        return deletion_auc, insertion_auc, drop, increase, tf.cast(valid, tf.float32)

    def run(batch: np.ndarray, maps: np.ndarray, classes: np.ndarray) -> Faithfulness:
        outputs = _faithfulness(
            tf.convert_to_tensor(batch, tf.float32),
            tf.convert_to_tensor(maps, tf.float32),
            tf.convert_to_tensor(classes, tf.int32),
        )
        return tuple(output.numpy() for output in outputs)  # type: ignore[return-value]

    return run


def trapezoid(curves: Any, widths: Any) -> Any:
    """Trapezoid rule: B x (N + 1) curve values over N steps of the given widths -> B areas (TF)."""
    import tensorflow as tf

    return tf.reduce_sum((curves[:, 1:] + curves[:, :-1]) * 0.5 * widths[None, :], axis=1)

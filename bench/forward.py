"""The limit: bare forward throughput of the one-pass CAM model on decoded, resized tensors."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class ForwardLimit:
    """Images per second of the CAM model alone, at one batch size."""

    batch_size: int
    images: int  # images pushed through in the timed passes
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds


def load_predict(model_path: str, mixed_precision: bool = False) -> Callable[[np.ndarray], tuple]:
    """The pipeline's own forward function: load, one-pass CAM model, traced predict."""
    from transforms.cam_model import build_cam_model, load_keras_model, mixed_precision_clone, predict_fn

    model, _ = load_keras_model(model_path)
    if mixed_precision:
        model = mixed_precision_clone(model)
    return predict_fn(build_cam_model(model))


def time_forward(
    predict: Callable[[np.ndarray], tuple], inputs: np.ndarray, batch_size: int, min_seconds: float
) -> ForwardLimit:
    """Warm up on two batches, then time whole passes over `inputs` until `min_seconds` have passed.

    Batches are sliced views of one array and every output is copied back to numpy: the same work the
    pipeline's forward thread does per batch, minus decoding and everything after.
    """
    batches = [inputs[start : start + batch_size] for start in range(0, len(inputs), batch_size)]
    for batch in batches[:2]:
        predict(batch)
    images, start = 0, time.perf_counter()
    while True:
        for batch in batches:
            predict(batch)
            images += len(batch)
        if time.perf_counter() - start >= min_seconds:
            break
    return ForwardLimit(batch_size, images, time.perf_counter() - start)

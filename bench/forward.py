"""The limit: bare forward throughput of the one-pass CAM model on decoded, resized tensors."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Callable

import numpy as np

# The limit cycles over at most this many decoded images (more would only hold more memory).
LIMIT_IMAGES = 512


@dataclasses.dataclass(frozen=True)
class ForwardLimit:
    """Images per second of the CAM model alone, at one batch size."""

    batch_size: int
    images: int  # images pushed through in the timed passes
    seconds: float
    threads: int = 1  # forward passes run side by side

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
    predict: Callable[[np.ndarray], tuple],
    inputs: np.ndarray,
    batch_size: int,
    min_seconds: float,
    threads: int = 1,
) -> ForwardLimit:
    """Warm up on two batches, then time whole passes over `inputs` until `min_seconds` have passed.

    Batches are sliced views of one array and every output is copied back to numpy: the same work the
    pipeline's forward threads do per batch, minus decoding and everything after. With `threads` > 1,
    that many threads each loop over the batches at once, as the pipeline's `--forward_threads` do.
    """
    batches = [inputs[start : start + batch_size] for start in range(0, len(inputs), batch_size)]
    for batch in batches[:2]:
        predict(batch)
    start = time.perf_counter()

    def loop() -> int:
        images = 0
        while True:
            for batch in batches:
                predict(batch)
                images += len(batch)
            if time.perf_counter() - start >= min_seconds:
                return images

    if threads == 1:
        images = loop()
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            images = sum(pool.map(lambda _: loop(), range(threads)))
    return ForwardLimit(batch_size, images, time.perf_counter() - start, threads)

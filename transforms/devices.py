"""TensorFlow device set-up done once per worker process before a model is loaded."""

from __future__ import annotations

import logging

_LOGGER = logging.getLogger(__name__)


def configure_tensorflow(mixed_precision: bool = False) -> list[str]:
    """Enable GPU memory growth (no worker grabs a whole card) and optionally mixed precision.

    Returns:
        The names of the visible GPUs (empty on a CPU-only machine).
    """
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # Raised once the runtime is initialised (a second model in the same process): the
            # setting from the first call stands.
            _LOGGER.debug("memory growth already fixed for %s", gpu.name)
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    return [gpu.name for gpu in gpus]

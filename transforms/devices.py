"""TensorFlow device set-up done once per worker process before a model is loaded."""

from __future__ import annotations

import logging

_LOGGER = logging.getLogger(__name__)


def configure_tensorflow() -> list[str]:
    """Enable GPU memory growth, so that no worker grabs a whole card.

    Mixed precision is not set here: Keras' global policy does not change a loaded model's layers
    (see `cam_model.mixed_precision_clone`, which does, for one model and no other).

    Returns:
        The names of the visible GPUs (empty on a CPU-only machine).
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # Raised once the runtime is initialised (a second model in the same process): the
            # setting from the first call stands.
            _LOGGER.debug("memory growth already fixed for %s", gpu.name)
    return [gpu.name for gpu in gpus]

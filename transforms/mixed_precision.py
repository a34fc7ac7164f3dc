"""Mixed precision for one loaded model: a float16 backbone with a float32 head."""

from __future__ import annotations

from typing import Any

from transforms.target_layer import find_target_layer

MIXED_POLICY = "mixed_float16"


def mixed_precision_clone(model: Any, policy: str = MIXED_POLICY) -> Any:
    """The same classifier with its backbone computing in `policy`; its head stays float32.

    Keras' global policy only applies to layers built after it is set: a loaded model keeps the
    float32 policy saved in each layer's config. Cloning layer by layer with the policy written into
    each config is what changes it, for this model only (no process-wide side effect). Variables stay
    float32 under a mixed policy, so the weights copy over as they are. The head, every layer between
    the last feature maps and the output (GAP -> Dense and its activation for a CAM model; pooling,
    Flatten, Dense, Dropout for any other), stays float32, as Keras' mixed-precision guide
    recommends for the output layers.
    """
    import keras

    head_layers = set(find_target_layer(model).head_layers)

    def clone_layer(layer: Any) -> Any:
        config = layer.get_config()
        config["dtype"] = "float32" if layer.name in head_layers else policy
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    clone.set_weights(model.get_weights())
    return clone

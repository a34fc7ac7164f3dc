"""The reference classifier: MobileNetV2 feature maps -> a CAM head (GAP -> Dense) or a dense head."""

from __future__ import annotations

from typing import Any

# Where MobileNetV2's feature maps are taken for each output stride (all after a BatchNorm). 32 is
# the classic, full backbone (7x7 CAM at 224 px). 16 stops before the last stride-2 stage (14x14 at
# 224 px): the trick of Zhou et al. (2016, sec. 2), who removed the last layers of VGG/GoogLeNet for
# a finer CAM, at the cost of some capacity. 8 takes stride-8 maps after block 4 (28x28 at 224 px,
# receptive field 43 px). On the demo archive, after block 6 (59 px) the CAM of a small finding
# spread into a plateau several times its size, where the argmax (the peak) wandered; after block 3
# (27 px) it traced the finding's edges; after block 4 it sat on the finding (README: pointing game).
FEATURE_LAYERS = {32: "Conv_1_bn", 16: "block_13_expand_BN", 8: "block_5_expand_BN"}

# "gap": the classic CAM head, GlobalAveragePooling2D -> Dropout -> Dense softmax. "dense":
# GlobalMaxPooling2D -> Dense(64, ReLU) -> Dropout -> Dense softmax, a head classic CAM cannot
# explain (max pooling and a hidden non-linear layer between the maps and the scores): the
# gradient methods (--method hirescam/gradcam/...) are what audits it.
HEADS = ("gap", "dense")
DENSE_HEAD_UNITS = 64


def build_cam_classifier(
    image_size: int = 224,
    alpha: float = 1.0,
    num_classes: int = 2,
    feature_stride: int = 32,
    dropout: float = 0.2,
    seed: int | None = None,
    head: str = "gap",
) -> Any:
    """MobileNetV2 (weights=None) CAM classifier that takes RGB float32 in 0..255.

    The backbone's input scaling (x / 127.5 - 1) is a Rescaling layer inside the model, so
    inference feeds raw RGB and needs no --preprocess.
    """
    import keras

    if feature_stride not in FEATURE_LAYERS:
        raise ValueError(f"feature_stride must be one of {sorted(FEATURE_LAYERS)}, got {feature_stride}")
    if image_size < 32 or image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32 and >= 32, got {image_size}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    backbone = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3), alpha=alpha, include_top=False, weights=None
    )
    # Keras' MobileNetV2 uses BatchNorm momentum 0.999, tuned for ImageNet-length schedules: trained
    # from scratch for a few hundred steps its moving statistics never converge and inference-mode
    # predictions collapse to one class. 0.9 tracks the batch statistics within a few dozen steps.
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    # The maps are read after the BatchNorm through a plain ReLU, not MobileNetV2's ReLU6: capped
    # at 6, activations saturate over a finding and the CAM becomes a plateau whose argmax (the
    # peak) wanders anywhere on it; uncapped, the CAM keeps a peak where the evidence is strongest.
    normalised = backbone.get_layer(FEATURE_LAYERS[feature_stride]).output
    cam_features = keras.layers.ReLU(name="cam_features")(normalised)
    feature_extractor = keras.Model(backbone.input, cam_features, name=f"mobilenetv2_s{feature_stride}")
    inputs = keras.Input((image_size, image_size, 3), name="rgb_0_255")
    scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="mobilenet_v2_scaling")(inputs)
    features = feature_extractor(scaled)
    if head == "gap":
        pooled = keras.layers.GlobalAveragePooling2D(name="gap")(features)
        dropped = keras.layers.Dropout(dropout, name="dropout")(pooled)
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier")(dropped)
        return keras.Model(inputs, outputs, name="cam_classifier")
    pooled = keras.layers.GlobalMaxPooling2D(name="gmp")(features)
    hidden = keras.layers.Dense(DENSE_HEAD_UNITS, activation="relu", name="hidden")(pooled)
    dropped = keras.layers.Dropout(dropout, name="dropout")(hidden)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier")(dropped)
    return keras.Model(inputs, outputs, name="dense_head_classifier")

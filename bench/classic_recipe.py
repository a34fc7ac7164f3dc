"""The classic per-image CAM recipe (the 2019 Keras CAM tutorials), timed on the same images.

Per image, as jacobgil/keras-cam's `visualize_class_activation_map`: read with cv2.imread, build a
backend function from the input to (last conv maps, output) -- Keras 3 has no K.function, a
`keras.Model` with those two outputs is its equivalent -- predict the one image, weight the maps in a
Python loop over channels, cv2.resize, applyColorMap, blank below 0.2, blend, cv2.imwrite. The model
itself is loaded once (the tutorial reloads it per image: this is kinder to it), and no record is
written (the pipeline also writes Parquet).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HEATMAP_THRESHOLD = 0.2


def classic_cam_heatmap(model: Any, features: Any, class_weights: np.ndarray, image_path: Path, out_path: Path) -> None:
    """One image through the classic recipe, heatmap written to `out_path`."""
    import keras

    original = cv2.imread(str(image_path))
    height, width = original.shape[:2]
    input_height, input_width = int(model.inputs[0].shape[1]), int(model.inputs[0].shape[2])
    rgb = cv2.cvtColor(cv2.resize(original, (input_width, input_height)), cv2.COLOR_BGR2RGB)
    get_output = keras.Model(model.inputs, [features, model.outputs[0]])  # rebuilt per image, as K.function was
    conv_outputs, predictions = get_output.predict(rgb[None].astype(np.float32), verbose=0)
    conv_outputs = conv_outputs[0]
    predicted = int(np.argmax(predictions[0]))
    cam = np.zeros(conv_outputs.shape[:2], dtype=np.float32)
    for channel, weight in enumerate(class_weights[:, predicted]):
        cam += weight * conv_outputs[:, :, channel]
    cam = np.maximum(cam, 0.0)  # the tutorial divides by the max as is; negative maps would wrap in uint8
    cam /= max(float(np.max(cam)), 1e-12)
    cam = cv2.resize(cam, (width, height))
    heatmap = cv2.applyColorMap(np.uint8(255 * cam), cv2.COLORMAP_JET)
    heatmap[np.where(cam < HEATMAP_THRESHOLD)] = 0
    blended = heatmap * 0.5 + original
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # The tutorial hands imwrite the float64 sum, which OpenCV saturates to uint8 itself (with a warning).
    cv2.imwrite(str(out_path), np.clip(np.rint(blended), 0, 255).astype(np.uint8))


def time_classic_recipe(model_path: str, archive_root: Path, paths: Sequence[str], out_dir: Path) -> float:
    """Seconds the classic recipe takes for `paths` (model loaded once, outside the timing)."""
    from transforms.cam_head import find_cam_head
    from transforms.model_files import load_keras_model

    model, _ = load_keras_model(model_path)
    head = find_cam_head(model)
    class_weights = np.asarray(head.dense_layer.kernel)
    start = time.perf_counter()
    for path in paths:
        classic_cam_heatmap(model, head.features, class_weights, archive_root / path, out_dir / f"{path}.jpg")
    return time.perf_counter() - start

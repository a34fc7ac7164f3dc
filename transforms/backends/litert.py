"""LiteRT (TensorFlow Lite with XNNPACK): classic CAM's one-pass model converted once, run with one
interpreter per forward thread."""

from __future__ import annotations

import functools
import importlib.util
import queue
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from transforms.methods.base import Explained

# The converted model's one signature: its input, and the Keras model's outputs in order
# (output_0 probabilities B x K, output_1 CAMs B x h x w x K). get_output_details() lists them in
# another order, so tensors are found by these names.
INPUT_NAME = "rgb_0_255"
PROBABILITIES_OUTPUT = "output_0"
CAMS_OUTPUT = "output_1"


def litert_installed() -> bool:
    """Whether the optional `ai-edge-litert` package (the `litert` extra) can be imported."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def convert_cam_model(cam_model: Any) -> bytes:
    """Keras one-pass model (RGB 0..255 -> probabilities, CAMs) -> a float32 LiteRT flatbuffer.

    Through a SavedModel written by keras.export.ExportArchive: converting a tf.function around a
    Keras 3 model directly leaves its variables unfrozen (NaN outputs), and Keras' own LiteRT export
    adds TF Select ops that ai-edge-litert cannot run. Builtin ops only, no optimisations: the
    numerics stay float32. Raises the converter's error for a model with an op LiteRT lacks.
    """
    import keras
    import tensorflow as tf

    height, width = (int(size) for size in cam_model.inputs[0].shape[1:3])
    with tempfile.TemporaryDirectory() as saved:
        archive = keras.export.ExportArchive()
        archive.track(cam_model)
        archive.add_endpoint(
            "serve",
            functools.partial(cam_model.__call__, training=False),
            input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name=INPUT_NAME)],
        )
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return bytes(converter.convert())


def explained_maps(probabilities: np.ndarray, cams: np.ndarray, cam_class: int | None) -> Explained:
    """(probabilities, explained class per image, that class's B x h x w map): classic CAM's selection in numpy.

    The same choice as `CamMethod.explained_classes` (argmax, first of equal maxima, or a fixed
    class) and an exact copy of the chosen map, as `tf.gather` makes.
    """
    if cam_class is None:
        classes = np.argmax(probabilities, axis=-1).astype(np.int32)
    else:
        classes = np.full(len(probabilities), cam_class, dtype=np.int32)
    maps = np.take_along_axis(cams, classes[:, None, None, None], axis=3)[..., 0]
    return probabilities, classes, maps


class _Interpreter:
    """One LiteRT interpreter (not thread-safe: one caller at a time), resized only when the batch size changes."""

    def __init__(self, flatbuffer: bytes, num_threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        # XNNPACK is applied by default; num_threads is its thread count for this interpreter.
        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
        (signature,) = self._interpreter.get_signature_list()
        runner = self._interpreter.get_signature_runner(signature)
        self._input = runner.get_input_details()[INPUT_NAME]["index"]
        outputs = runner.get_output_details()
        self._probabilities = outputs[PROBABILITIES_OUTPUT]["index"]
        self._cams = outputs[CAMS_OUTPUT]["index"]
        del runner  # a live runner holds references to the tensors and blocks resizing
        signature_shape = self._interpreter.get_input_details()[0]["shape_signature"]
        self.input_shape = tuple(int(size) for size in signature_shape[1:])  # H, W, 3
        self._batch_size = -1

    def run(self, batch: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """float32 B x H x W x 3 (an array, or B arrays of H x W x 3) -> (probabilities B x K, CAMs B x h x w x K),
        as copies."""
        if len(batch) != self._batch_size:
            # ~0.3 ms; outputs are the same at any batch size.
            self._interpreter.resize_tensor_input(self._input, [len(batch), *np.shape(batch[0])])
            self._interpreter.allocate_tensors()
            self._batch_size = len(batch)
        # Images (a list's, or an array's rows) stacked straight into the input tensor: one copy of each, never a
        # stacked batch copied again. The view must be gone before invoke (the runtime refuses to run while held).
        tensor = self._interpreter.tensor(self._input)()
        np.stack(batch, out=tensor)
        del tensor
        self._interpreter.invoke()  # releases the GIL
        return self._interpreter.get_tensor(self._probabilities), self._interpreter.get_tensor(self._cams)


class LiteRtCam:
    """Callable like `CamMethod.traced()`: float32 RGB batch -> (probabilities, classes, maps) as numpy.

    Holds `interpreters` interpreters of `num_threads` threads each, one per forward thread: a call
    takes a free one and gives it back, so concurrent calls never share one.
    """

    def __init__(
        self, flatbuffer: bytes, cam_class: int | None, interpreters: int = 1, num_threads: int = 1,
        batch_size: int = 1,
    ) -> None:
        assert interpreters >= 1 and num_threads >= 1 and batch_size >= 1
        self.cam_class = cam_class
        self._free: queue.SimpleQueue[_Interpreter] = queue.SimpleQueue()
        for _ in range(interpreters):
            interpreter = _Interpreter(flatbuffer, num_threads)
            # Allocating here surfaces an op the runtime lacks (RuntimeError) at load, not in the first batch.
            interpreter.run(np.zeros((batch_size, *interpreter.input_shape), np.float32))
            self._free.put(interpreter)

    def __call__(self, batch: np.ndarray | Sequence[np.ndarray]) -> Explained:
        interpreter = self._free.get()
        try:
            probabilities, cams = interpreter.run(batch)
        finally:
            self._free.put(interpreter)
        return explained_maps(probabilities, cams, self.cam_class)

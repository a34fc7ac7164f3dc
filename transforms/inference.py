"""InferCams stage: batched forward passes that yield probabilities and CAMs in one call per batch."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.utils import shared
from apache_beam.utils.windowed_value import WindowedValue

from transforms.images import METRICS_NAMESPACE, LoadedImage
from transforms.schema import Prediction


@dataclasses.dataclass(frozen=True)
class InferredImage:
    """A loaded image with the model's prediction and raw CAM for the explained class."""

    image: LoadedImage
    prediction: Prediction


class LoadedCamModel:
    """A worker's model: the traced forward function and what it needs to know about it.

    A plain class (not a tuple) because `shared.Shared` keeps weak references to what it holds.
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        num_classes: int,
        cam_shift: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.predict = predict
        self.num_classes = num_classes
        self.cam_shift = cam_shift


class CamModelLoader:
    """Loads a Keras CAM classifier and builds its one-pass probabilities+CAM function.

    Holds only a path and options, so it pickles cheaply to every worker; `load_model()` runs
    once per worker process (via `shared.Shared`), like Beam's `ModelHandler.load_model`.
    """

    def __init__(
        self,
        model_path: str,
        preprocess: str = "none",
        mixed_precision: bool = False,
        align_cams: bool = True,
        warmup_batch_size: int = 1,
    ) -> None:
        if warmup_batch_size < 1:
            raise ValueError(f"warmup_batch_size must be >= 1, got {warmup_batch_size}")
        self.model_path = model_path
        self.align_cams = align_cams
        self.preprocess = preprocess
        self.mixed_precision = mixed_precision
        self.warmup_batch_size = warmup_batch_size

    def load_model(self) -> LoadedCamModel:
        from transforms.cam_model import (
            build_cam_model,
            feature_grid,
            find_cam_head,
            load_keras_model,
            mixed_precision_clone,
            model_input_size,
            predict_fn,
        )
        from transforms.devices import configure_tensorflow

        configure_tensorflow()
        model, _ = load_keras_model(self.model_path)
        head = find_cam_head(model)
        shift = feature_grid(model, head).shift_cells() if self.align_cams else (0.0, 0.0)
        if self.mixed_precision:
            model = mixed_precision_clone(model)
        predict = predict_fn(build_cam_model(model, self.preprocess))
        # Trace and warm up now, at the batch size the stage will use: the trace and oneDNN's
        # per-shape kernel set-up (~0.25 s for a first batch of 32 MobileNetV2 images on 2 cores)
        # are one-off costs of loading (model_load_ms), not of the first batch of images.
        height, width = model_input_size(model)
        predict(np.zeros((self.warmup_batch_size, height, width, 3), dtype=np.float32))
        return LoadedCamModel(predict, head.num_classes, shift)


def explained_class(probabilities: np.ndarray, cam_class: int | None) -> int:
    """The class whose CAM is explained: a fixed one, or the predicted one."""
    return int(np.argmax(probabilities)) if cam_class is None else cam_class


@dataclasses.dataclass(frozen=True)
class _BatchInFlight:
    """A batch whose forward pass runs in the background, and the window its results belong to."""

    images: list[LoadedImage]
    outputs: concurrent.futures.Future  # -> (probabilities, cams, seconds)
    timestamp: Any
    window: Any
    pane_info: Any


class _CamInferenceDoFn(beam.DoFn):
    """list[LoadedImage] -> InferredImage per image, one forward pass per batch.

    Forward passes run on `forward_threads` background threads while this DoFn hands on the results
    of earlier batches: downstream rendering and encoding, and the decoding of the next batch (fused
    into the same bundle), then overlap with TensorFlow, which releases the GIL while it computes.
    With two threads, two batches' forward passes also run side by side, so the ops of one fill the
    cores the other's less parallel ops leave idle. Results come `forward_threads` batches late, in
    order, the last ones in `finish_bundle`, each in its own batch's window.
    """

    def __init__(
        self,
        loader: CamModelLoader,
        cam_class: int | None,
        clock: Callable[[], float] = time.perf_counter,
        forward_threads: int = 1,
    ) -> None:
        if forward_threads < 1:
            raise ValueError(f"forward_threads must be >= 1, got {forward_threads}")
        self._loader = loader
        self._cam_class = cam_class
        self._clock = clock  # injectable for tests, like Beam's _RunInferenceDoFn
        self._forward_threads = forward_threads
        self._shared_handle = shared.Shared()
        # One tag per stage: every DoFn instance of this stage in a process shares one model.
        self._shared_tag = uuid.uuid4().hex
        self._model: LoadedCamModel | None = None
        self._forward_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._in_flight: collections.deque[_BatchInFlight] = collections.deque()
        self._unreported_load_ms: int | None = None
        self._load_ms = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "model_load_ms")
        self._batch_size = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "batch_size")
        self._batch_ms = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "inference_batch_ms")

    def setup(self) -> None:
        def load() -> LoadedCamModel:
            start = self._clock()
            model = self._loader.load_model()
            # Reported from start_bundle: setup runs outside any bundle, where metric updates are dropped.
            self._unreported_load_ms = int((self._clock() - start) * 1000)
            return model

        self._model = self._shared_handle.acquire(load, tag=self._shared_tag)
        if self._cam_class is not None and not 0 <= self._cam_class < self._model.num_classes:
            raise ValueError(
                f"--cam_class {self._cam_class} is out of range for a model of {self._model.num_classes} classes"
            )
        # Results are emitted in submission order whatever order the threads finish in.
        self._forward_pool = concurrent.futures.ThreadPoolExecutor(
            self._forward_threads, thread_name_prefix="cam_forward"
        )

    def start_bundle(self) -> None:
        self._in_flight.clear()  # batches left by a failed bundle are never emitted
        if self._unreported_load_ms is not None:
            self._load_ms.update(self._unreported_load_ms)
            self._unreported_load_ms = None

    def process(
        self,
        batch: list[LoadedImage],
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
        pane_info: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterator[WindowedValue]:
        assert self._forward_pool is not None
        self._in_flight.append(
            _BatchInFlight(batch, self._forward_pool.submit(self._forward, batch), timestamp, window, pane_info)
        )
        # Keep every forward thread busy: emit (waiting if need be) only what is beyond that.
        while len(self._in_flight) > self._forward_threads:
            yield from self._emit(self._in_flight.popleft())

    def finish_bundle(self) -> Iterator[WindowedValue]:
        while self._in_flight:
            yield from self._emit(self._in_flight.popleft())

    def teardown(self) -> None:
        if self._forward_pool is not None:
            self._forward_pool.shutdown(wait=True)
            self._forward_pool = None

    def _forward(self, batch: list[LoadedImage]) -> tuple[np.ndarray, np.ndarray, float]:
        """Runs on the forward thread: (probabilities, CAMs, seconds taken)."""
        assert self._model is not None
        start = self._clock()
        inputs = np.stack([image.model_input for image in batch])
        probabilities, cams = self._model.predict(inputs)
        return probabilities, cams, self._clock() - start

    def _emit(self, in_flight: _BatchInFlight) -> Iterator[WindowedValue]:
        """Waits for a batch's forward pass and yields its images, in the batch's window."""
        assert self._model is not None
        probabilities, cams, seconds = in_flight.outputs.result()
        # Metrics are updated here, on the bundle's thread: Beam's metric containers are per thread.
        self._batch_ms.update(int(seconds * 1000))
        self._batch_size.update(len(in_flight.images))
        windows = (in_flight.window,)
        for index, image in enumerate(in_flight.images):
            chosen = explained_class(probabilities[index], self._cam_class)
            prediction = Prediction(
                probabilities=tuple(float(p) for p in probabilities[index]),
                cam_class=chosen,
                cam=np.ascontiguousarray(cams[index, :, :, chosen], dtype=np.float32),
                cam_shift=self._model.cam_shift,
            )
            yield WindowedValue(InferredImage(image, prediction), in_flight.timestamp, windows, in_flight.pane_info)


class InferCams(beam.PTransform):
    """Batches loaded images (`BatchElements`) and runs the CAM model once per batch."""

    def __init__(
        self,
        loader: CamModelLoader,
        min_batch_size: int,
        max_batch_size: int,
        cam_class: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        forward_threads: int = 1,
    ) -> None:
        super().__init__()
        if not 1 <= min_batch_size <= max_batch_size:
            raise ValueError(
                f"batch sizes must satisfy 1 <= min ({min_batch_size}) <= max ({max_batch_size})"
            )
        self._loader = loader
        self._min_batch_size = min_batch_size
        self._max_batch_size = max_batch_size
        self._cam_class = cam_class
        self._clock = clock
        self._forward_threads = forward_threads

    def expand(self, images: beam.PCollection) -> beam.PCollection:
        return (
            images
            | "Batch" >> beam.BatchElements(min_batch_size=self._min_batch_size, max_batch_size=self._max_batch_size)
            | "Infer" >> beam.ParDo(
                _CamInferenceDoFn(self._loader, self._cam_class, self._clock, self._forward_threads)
            )
        )



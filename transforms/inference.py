"""InferCams stage: batched forward passes that yield probabilities and CAMs in one pass per batch."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.utils import shared
from apache_beam.utils.windowed_value import WindowedValue

from transforms.allocator import keep_freed_memory
from transforms.backends.choice import (
    BACKENDS,
    litert_or_warn,
    litert_predict,
    probe_batch,
    staged_flatbuffer,
    wants_litert,
)
from transforms.backends.litert import litert_installed
from transforms.call_size import candidate_call_sizes, describe_timings, fastest_call_size, time_call_sizes
from transforms.devices import (
    ForwardLayout,
    affinity_cores,
    configure_tensorflow,
    forward_layout,
    gpu_driver_present,
    gpu_names,
    process_cores,
)
from transforms.faithfulness import faithfulness_function
from transforms.image_coder import InFlightImageCoder
from transforms.images import METRICS_NAMESPACE, LoadedImage
from transforms.methods import METHODS
from transforms.methods.base import Explained
from transforms.mixed_precision import mixed_precision_clone
from transforms.model_files import load_keras_model
from transforms.receptive_field import feature_grid
from transforms.scheduling import run_as_batch_thread
from transforms.schema import FaithfulnessScores, Prediction

_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InferredImage:
    """A loaded image with the model's prediction and raw CAM for the explained class."""

    image: LoadedImage
    prediction: Prediction

    @property
    def array_bytes(self) -> int:
        """Bytes its arrays hold (InFlightImageCoder's size estimate)."""
        return self.image.array_bytes + np.asarray(self.prediction.cam).nbytes


beam.coders.registry.register_coder(InferredImage, InFlightImageCoder)


def micro_batch_slices(batch_size: int, micro_batch_size: int) -> list[slice]:
    """Contiguous slices of at most `micro_batch_size` that cover range(batch_size) in order."""
    assert batch_size >= 0 and micro_batch_size >= 1, (batch_size, micro_batch_size)
    return [slice(start, min(start + micro_batch_size, batch_size)) for start in range(0, batch_size, micro_batch_size)]


def warmup_sizes(batch_size: int, micro_batch_size: int) -> list[int]:
    """The call sizes a full batch is cut into, each once: the shapes worth setting up at load."""
    return sorted({part.stop - part.start for part in micro_batch_slices(batch_size, micro_batch_size)}, reverse=True)


@dataclasses.dataclass(frozen=True)
class PendingForward:
    """One batch's forward pass, queued as micro-batches on the model's forward threads."""

    parts: list[concurrent.futures.Future]  # each -> (explained micro-batch, start, end)

    def result(self) -> tuple[Explained, float]:
        """((probabilities, classes, maps[, faithfulness arrays]), seconds from the first micro-batch's start to the
        last one's end)."""
        outputs = [part.result() for part in self.parts]
        joined = tuple(np.concatenate([output[0][i] for output in outputs]) for i in range(len(outputs[0][0])))
        return joined, max(output[2] for output in outputs) - min(output[1] for output in outputs)


@dataclasses.dataclass(frozen=True)
class CamModelFacts:
    """What a worker must know of the model to run the launcher's staged LiteRT model without loading the Keras one
    (and so without TensorFlow): the launcher reads them from the model it checked."""

    num_classes: int
    cam_shift: tuple[float, float]  # receptive-field offset of the CAM grid, in cells (0, 0 unaligned)
    input_size: tuple[int, int]  # (height, width) the model takes


class LoadedCamModel:
    """A worker's model: the traced forward function, the threads that run it, and what to know about it.

    One per process (via `shared.Shared`), so every DoFn instance in the process shares its threads.
    A plain class (not a tuple) because `shared.Shared` keeps weak references to what it holds.
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], Explained],
        num_classes: int,
        cam_shift: tuple[float, float],
        layout: ForwardLayout,
        input_size: tuple[int, int],
        backend: str = "tensorflow",
        faithfulness: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]] | None = None,
    ) -> None:
        self.predict = predict
        self.backend = backend  # what runs the forward passes: tensorflow or litert
        self.faithfulness = faithfulness  # --faithfulness: (batch, maps, classes) -> its five arrays
        self.num_classes = num_classes
        self.cam_shift = cam_shift
        self.input_size = input_size  # (height, width) the model takes
        self.layout = layout
        self._threads = concurrent.futures.ThreadPoolExecutor(
            layout.threads, thread_name_prefix="cam_forward", initializer=run_as_batch_thread
        )

    def submit(self, inputs: Sequence[np.ndarray]) -> PendingForward:
        """Queue a batch's forward pass in micro-batches; the threads take them in order.

        `inputs` is a batch array or a list of per-image arrays: a list is stacked per micro-batch on
        the forward threads, which keeps that copy off the thread that runs Beam's bundle.
        """
        slices = micro_batch_slices(len(inputs), self.layout.micro_batch_size)
        return PendingForward([self._threads.submit(self._timed_predict, inputs[part]) for part in slices])

    def use_micro_batch_size(self, micro_batch_size: int) -> None:
        """Cut the batches submitted from now on into calls of `micro_batch_size` images."""
        self.layout = dataclasses.replace(self.layout, micro_batch_size=micro_batch_size)

    def warm_up(self, sizes: Sequence[int]) -> None:
        """A call of each size, one after the other: TensorFlow sets up its per-shape kernels once for all its
        threads; LiteRT gets one call per forward thread, as each interpreter (taken in turn from its queue)
        resizes at its first call of a new size."""
        height, width = self.input_size
        calls = self.layout.threads if self.backend == "litert" else 1
        for size in sizes:
            for _ in range(calls):
                self.submit(np.zeros((size, height, width, 3), dtype=np.float32)).result()

    def time_call_size(self, inputs: np.ndarray, micro_batch_size: int) -> float:
        """Seconds per image of one pass over `inputs` cut into calls of `micro_batch_size` images, warmed up at
        that size first; the model keeps that size."""
        self.use_micro_batch_size(micro_batch_size)
        self.warm_up([micro_batch_size])
        start = time.perf_counter()
        self.submit(inputs).result()
        return (time.perf_counter() - start) / len(inputs)

    def _timed_predict(self, inputs: Sequence[np.ndarray]) -> tuple[Explained, float, float]:
        start = time.perf_counter()
        if self.backend == "litert" and self.faithfulness is None:
            return self.predict(inputs), start, time.perf_counter()  # LiteRT stacks a list into its input tensor
        batch = inputs if isinstance(inputs, np.ndarray) else np.stack(inputs)
        explained = self.predict(batch)
        if self.faithfulness is not None:
            explained = (*explained, *self.faithfulness(batch, explained[2], explained[1]))
        return explained, start, time.perf_counter()


class CamModelLoader:
    """Loads a Keras classifier and builds its explanation method's one traced function.

    Holds only a path and options, so it pickles cheaply to every worker; `load_model()` runs
    once per worker process (via `shared.Shared`), like Beam's `ModelHandler.load_model`.
    `forward_threads`, `micro_batch_size` and `cores` of 0 are settled there, on the worker's own
    hardware (`devices.forward_layout`); `cores` is the share of the machine's CPU cores one worker
    process may use (0: all), when several share a machine. The values are checked where the user
    gives them (`pipeline.build.plan_audit`); here they are only asserted.
    """

    def __init__(
        self,
        model_path: str,
        method: str = "cam",
        preprocess: str = "none",
        mixed_precision: bool = False,
        align_cams: bool = True,
        cam_class: int | None = None,
        batch_size: int = 1,
        forward_threads: int = 0,
        micro_batch_size: int = 0,
        cores: int = 0,
        backend: str = "tensorflow",
        litert_model: tuple[str, str] | None = None,
        model_facts: CamModelFacts | None = None,
        target_layer: str | None = None,
        faithfulness: bool = False,
    ) -> None:
        assert method in METHODS and batch_size >= 1 and min(forward_threads, micro_batch_size, cores) >= 0
        assert backend in BACKENDS, backend
        self.model_path = model_path
        self.method = method
        self.cam_class = cam_class
        self.align_cams = align_cams
        self.preprocess = preprocess
        self.mixed_precision = mixed_precision
        self.batch_size = batch_size
        self.forward_threads = forward_threads
        self.micro_batch_size = micro_batch_size
        self.cores = cores
        # `backend` as asked (auto: LiteRT on a CPU worker); `litert_model` the (path, sha256) of the
        # flatbuffer the launcher converted and checked, or None to convert on the worker.
        self.backend = backend
        self.litert_model = litert_model
        # Set with `litert_model` by the launcher: the model's facts, so a worker without a GPU driver runs the
        # staged flatbuffer without importing TensorFlow (`runs_without_tensorflow`).
        self.model_facts = model_facts
        self.target_layer = target_layer
        self.faithfulness = faithfulness

    def process_cores(self) -> int:
        """CPU cores this worker process may use: its share of the machine, at most what it can see."""
        return process_cores(self.cores)

    def settle_layout(self, has_gpu: bool) -> ForwardLayout:
        """This process's forward layout (the options' 0s settled on its cores), after keeping the per-image
        buffers' freed memory in the process (transforms/allocator.py)."""
        keep_freed_memory()
        return forward_layout(
            self.forward_threads, self.micro_batch_size, self.batch_size, has_gpu, self.process_cores(),
            affinity_cores(),
        )

    def configure_process(self) -> ForwardLayout:
        """Settle this process's forward layout and set TensorFlow up for it (before its runtime starts)."""
        layout = self.settle_layout(bool(gpu_names()))
        configure_tensorflow(layout.intra_op_threads)
        return layout

    def runs_without_tensorflow(self) -> bool:
        """Whether this worker runs the launcher's staged LiteRT model without importing TensorFlow: the launcher
        staged it with the model's facts, nothing asks for TensorFlow (--faithfulness), and no GPU driver is present
        (with one, TensorFlow is asked whether it sees a GPU, and would run the model there)."""
        return (
            self.litert_model is not None
            and self.model_facts is not None
            and not self.faithfulness
            and wants_litert(self.backend, self.method, self.mixed_precision, has_gpu=False)
            and litert_installed()  # --backend litert on a worker image without the package: TensorFlow's path warns
            and not gpu_driver_present()
        )

    def load_model(self) -> LoadedCamModel:
        if self.runs_without_tensorflow():
            assert self.litert_model is not None and self.model_facts is not None
            layout = self.settle_layout(has_gpu=False)
            predict = litert_or_warn(
                staged_flatbuffer(self.litert_model), self.cam_class, layout.threads, self.litert_threads(layout),
                layout.micro_batch_size,
            )
            if predict is not None:
                facts = self.model_facts
                return self._warmed_up(
                    LoadedCamModel(predict, facts.num_classes, facts.cam_shift, layout, facts.input_size, "litert")
                )
            return self._load_with_tensorflow(try_litert=False)  # the runtime refused it, and said why
        return self._load_with_tensorflow(try_litert=True)

    def facts_of(self, model: Any, method: Any) -> CamModelFacts:
        """The loaded model's facts as this loader explains it: the CAM grid's shift only with --cam_alignment
        receptive_field (the launcher hands them to LiteRT workers; a TensorFlow worker reads them itself)."""
        shift = feature_grid(model, method.features).shift_cells() if self.align_cams else (0.0, 0.0)
        return CamModelFacts(method.num_classes, shift, method.input_size)

    def litert_threads(self, layout: ForwardLayout) -> int:
        """XNNPACK threads per LiteRT interpreter: one interpreter per forward thread, the process's cores shared
        out among them."""
        return max(1, self.process_cores() // layout.threads)

    def _load_with_tensorflow(self, try_litert: bool) -> LoadedCamModel:
        layout = self.configure_process()
        model, _ = load_keras_model(self.model_path)
        method = METHODS[self.method](model, self.preprocess, self.cam_class, self.target_layer)
        shift = self.facts_of(model, method).cam_shift
        if self.mixed_precision:
            clone = mixed_precision_clone(model)
            method = METHODS[self.method](clone, self.preprocess, self.cam_class, self.target_layer)
        predict = method.traced()
        backend = "tensorflow"
        if try_litert and wants_litert(self.backend, self.method, self.mixed_precision, bool(gpu_names())):
            litert = litert_predict(
                method, self.litert_model, layout.threads, self.litert_threads(layout), layout.micro_batch_size
            )
            predict, backend = (litert, "litert") if litert is not None else (predict, "tensorflow")
        height, width = method.input_size
        faithfulness = None
        if self.faithfulness:
            map_size = (int(method.features.shape[1]), int(method.features.shape[2]))
            faithfulness = faithfulness_function(method.probabilities, (height, width), map_size, shift)
        return self._warmed_up(
            LoadedCamModel(predict, method.num_classes, shift, layout, (height, width), backend, faithfulness)
        )

    def _warmed_up(self, model: LoadedCamModel) -> LoadedCamModel:
        """Trace and warm up now, at the size of the calls the stage will make: the trace and oneDNN's per-shape
        kernel set-up are one-off costs of loading (model_load_ms), not of the first batch. LiteRT with an automatic
        --micro_batch_size first times the call sizes on this worker and keeps the fastest (transforms/call_size.py);
        not with --faithfulness, whose TensorFlow passes would be what the timing measured."""
        if model.backend == "litert" and not self.micro_batch_size and model.faithfulness is None:
            sizes = candidate_call_sizes(self.batch_size)
            # At most a batch: the timed pass keeps as many calls in flight as the stage's batches do.
            probes = probe_batch(model.input_size, min(model.layout.threads * max(sizes), self.batch_size))
            timings = time_call_sizes(lambda size: model.time_call_size(probes, size), sizes)
            model.use_micro_batch_size(fastest_call_size(timings))
            _LOGGER.info("LiteRT forward calls of %d image(s), the fastest here (per image: %s)",
                         model.layout.micro_batch_size, describe_timings(timings))
        model.warm_up(warmup_sizes(self.batch_size, model.layout.micro_batch_size))
        return model


@dataclasses.dataclass(frozen=True)
class _BatchInFlight:
    """A batch whose forward pass runs in the background, and the window its results belong to."""

    images: list[LoadedImage]
    outputs: PendingForward
    windowed: WindowedValue  # the batch as Beam handed it: its images' template (timestamp, windows, pane)


class _CamInferenceDoFn(beam.DoFn):
    """list[LoadedImage] -> InferredImage per image, one forward pass (of one or more micro-batches) per batch.

    A batch's forward pass is queued on the model's forward threads, then this DoFn hands on the
    results of the batch before it: downstream rendering and encoding, and the decoding of the next
    batch (fused into the same bundle), overlap with TensorFlow, which releases the GIL while it
    computes. The next batch's micro-batches queue behind the running ones, so the forward threads do
    not wait for this thread. Results come one batch late, in order, the last in `finish_bundle`, each
    in its own batch's window.
    """

    def __init__(self, loader: CamModelLoader) -> None:
        self._loader = loader
        self._shared_handle = shared.Shared()
        # One tag per stage: every DoFn instance of this stage in a process shares one model.
        self._shared_tag = uuid.uuid4().hex
        self._model: LoadedCamModel | None = None
        self._in_flight: collections.deque[_BatchInFlight] = collections.deque()
        self._unreported_load_ms: int | None = None
        self._load_ms = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "model_load_ms")
        self._batch_size = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "batch_size")
        self._batch_ms = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "inference_batch_ms")

    def setup(self) -> None:
        def load() -> LoadedCamModel:
            start = time.perf_counter()
            model = self._loader.load_model()
            # Reported from start_bundle: setup runs outside any bundle, where metric updates are dropped.
            self._unreported_load_ms = int((time.perf_counter() - start) * 1000)
            return model

        self._model = self._shared_handle.acquire(load, tag=self._shared_tag)

    def start_bundle(self) -> None:
        self._in_flight.clear()  # batches left by a failed bundle are never emitted
        if self._unreported_load_ms is not None:
            self._load_ms.update(self._unreported_load_ms)
            self._unreported_load_ms = None

    def process(
        self, batch: list[LoadedImage], windowed: Any = beam.DoFn.WindowedValueParam
    ) -> Iterator[WindowedValue]:
        assert self._model is not None
        inputs = [image.model_input for image in batch]
        self._in_flight.append(_BatchInFlight(batch, self._model.submit(inputs), windowed))
        # One batch queued behind the one being handed on keeps the forward threads busy meanwhile.
        while len(self._in_flight) > 1:
            yield from self._emit(self._in_flight.popleft())

    def finish_bundle(self) -> Iterator[WindowedValue]:
        while self._in_flight:
            yield from self._emit(self._in_flight.popleft())

    def _emit(self, in_flight: _BatchInFlight) -> Iterator[WindowedValue]:
        """Waits for a batch's forward pass and yields its images, in the batch's window."""
        assert self._model is not None
        (probabilities, classes, maps, *faithfulness), seconds = in_flight.outputs.result()
        # Metrics are updated here, on the bundle's thread: Beam's metric containers are per thread.
        self._batch_ms.update(int(seconds * 1000))
        self._batch_size.update(len(in_flight.images))
        # Python numbers for the whole batch at once (the same values as float()/int() per element).
        probability_rows, class_list = probabilities.tolist(), classes.tolist()
        for index, image in enumerate(in_flight.images):
            prediction = Prediction(
                probabilities=tuple(probability_rows[index]),
                cam_class=class_list[index],
                cam=np.ascontiguousarray(maps[index], dtype=np.float32),
                cam_shift=self._model.cam_shift,
                faithfulness=faithfulness_scores(faithfulness, index),
            )
            yield in_flight.windowed.with_value(InferredImage(image, prediction))


def faithfulness_scores(arrays: Sequence[np.ndarray], index: int) -> FaithfulnessScores | None:
    """Image `index`'s scores from the batch's (deletion, insertion, drop, increase, valid) arrays; None if absent."""
    if not arrays or not arrays[4][index]:
        return None
    deletion, insertion, drop, increase, _ = (float(array[index]) for array in arrays)
    return FaithfulnessScores(deletion, insertion, drop, bool(increase))


class InferCams(beam.PTransform):
    """Batches loaded images (`BatchElements`) and runs the CAM model once per batch."""

    def __init__(self, loader: CamModelLoader, min_batch_size: int, max_batch_size: int) -> None:
        super().__init__()
        assert 1 <= min_batch_size <= max_batch_size, (min_batch_size, max_batch_size)
        self._loader = loader
        self._min_batch_size = min_batch_size
        self._max_batch_size = max_batch_size

    def expand(self, images: beam.PCollection) -> beam.PCollection:
        return (
            images
            | "Batch" >> beam.BatchElements(min_batch_size=self._min_batch_size, max_batch_size=self._max_batch_size)
            | "Infer" >> beam.ParDo(_CamInferenceDoFn(self._loader)).with_output_types(InferredImage)
        )



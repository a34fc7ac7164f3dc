"""InferCams and its loader: batched forward passes on the forward threads, in order, in their windows."""

from __future__ import annotations

import concurrent.futures
import json
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import apache_beam as beam
import keras
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

import transforms.inference as inference
from tests.conftest import TINY_INPUT, loaded_image, local_pipeline, random_batch
from transforms.backends.choice import checked_flatbuffer
from transforms.inference import (
    CamModelFacts,
    CamModelLoader,
    InferCams,
    PendingForward,
    _CamInferenceDoFn,
    micro_batch_slices,
    warmup_sizes,
)
from transforms.methods.base import Explained
from transforms.methods.cam import ClassicCam

# (forward threads, micro-batch size): one call per batch on one thread, and micro-batches of 2 on two.
FORWARD_LAYOUTS = [(1, 3), (2, 2)]


@pytest.mark.parametrize(("forward_threads", "micro_batch_size"), FORWARD_LAYOUTS)
def test_infer_cams_batches_and_explains_the_predicted_class(
    tiny_model_path: Path, forward_threads: int, micro_batch_size: int
) -> None:
    images = [loaded_image(i) for i in range(7)]
    loader = CamModelLoader(
        str(tiny_model_path), batch_size=3, forward_threads=forward_threads, micro_batch_size=micro_batch_size
    )
    with local_pipeline() as p:
        inferred = p | beam.Create(images) | InferCams(loader, min_batch_size=3, max_batch_size=3)
        checks = inferred | beam.Map(
            lambda r: (
                r.image.entry.image_path,
                r.prediction.cam.shape,
                r.prediction.cam_class == int(np.argmax(r.prediction.probabilities)),
                abs(sum(r.prediction.probabilities) - 1.0) < 1e-5,
            )
        )
        assert_that(checks, equal_to([(f"img{i}.png", (16, 16), True, True) for i in range(7)]))


@pytest.mark.parametrize(("forward_threads", "micro_batch_size"), FORWARD_LAYOUTS)
def test_infer_cams_keeps_each_batch_in_its_window(
    tiny_model_path: Path, forward_threads: int, micro_batch_size: int
) -> None:
    # Results leave the forward threads a batch late (the last in finish_bundle): each must keep
    # the window of its own batch, not the one being processed when it comes out.
    from apache_beam.transforms.window import FixedWindows, TimestampedValue

    stamped = [TimestampedValue(loaded_image(i), 10 * (i % 2)) for i in range(6)]
    loader = CamModelLoader(
        str(tiny_model_path), batch_size=2, forward_threads=forward_threads, micro_batch_size=micro_batch_size
    )
    with local_pipeline() as p:
        inferred = (
            p
            | beam.Create(stamped)
            | beam.WindowInto(FixedWindows(10))
            | InferCams(loader, min_batch_size=2, max_batch_size=2)
        )
        windows = inferred | beam.Map(
            lambda r, window=beam.DoFn.WindowParam: (r.image.entry.image_path, int(window.start))
        )
        assert_that(windows, equal_to([(f"img{i}.png", 10 * (i % 2)) for i in range(6)]))


def test_infer_cams_fixed_class(tiny_model_path: Path) -> None:
    with local_pipeline() as p:
        inferred = (
            p
            | beam.Create([loaded_image(0), loaded_image(1)])
            | InferCams(CamModelLoader(str(tiny_model_path), cam_class=0), 1, 2)
        )
        assert_that(inferred | beam.Map(lambda r: r.prediction.cam_class), equal_to([0, 0]))


def test_loaded_model_predicts_probabilities_classes_and_maps(tiny_model_path: Path) -> None:
    loaded = CamModelLoader(str(tiny_model_path), cam_class=1).load_model()
    probabilities, classes, maps = loaded.predict(random_batch(3))
    assert probabilities.shape == (3, 2) and maps.shape == (3, 16, 16) and maps.dtype == np.float32
    np.testing.assert_array_equal(classes, [1, 1, 1])
    assert loaded.num_classes == 2 and loaded.input_size == (TINY_INPUT, TINY_INPUT)
    # The tiny model's 'same' convolutions and 2x2 pool put the cells on the naive grid.
    assert loaded.cam_shift == (0.0, 0.0)


def test_loader_runs_litert_on_its_forward_threads_when_asked(tiny_model_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    batch = random_batch(6, seed=3)
    reference = CamModelLoader(str(tiny_model_path)).load_model()
    # No staged flatbuffer: the worker converts and checks the model itself.
    loaded = CamModelLoader(str(tiny_model_path), batch_size=6, forward_threads=2, micro_batch_size=2,
                            backend="litert").load_model()
    assert (reference.backend, loaded.backend) == ("tensorflow", "litert")
    (probabilities, classes, maps), _ = loaded.submit(batch).result()
    expected_probabilities, expected_classes, expected_maps = reference.predict(batch)
    np.testing.assert_array_equal(classes, expected_classes)
    np.testing.assert_allclose(probabilities, expected_probabilities, rtol=0, atol=1e-4)
    np.testing.assert_allclose(maps, expected_maps, rtol=0, atol=1e-4 * float(np.abs(expected_maps).max()))


def staged_litert_loader(model_path: Path, folder: Path, **options: object) -> CamModelLoader:
    """A loader as the launcher hands it to workers: the checked flatbuffer staged in `folder`, with the facts."""
    from transforms.model_files import file_sha256

    flatbuffer = checked_flatbuffer(ClassicCam(keras.saving.load_model(model_path, compile=False)))
    staged = folder / "model.tflite"
    staged.write_bytes(flatbuffer)
    facts = CamModelFacts(2, (0.0, 0.0), (TINY_INPUT, TINY_INPUT))
    return CamModelLoader(str(model_path), backend="litert", litert_model=(str(staged), file_sha256(flatbuffer)),
                          model_facts=facts, **options)  # type: ignore[arg-type]


# Loads the pickled loader in a fresh interpreter, as a worker process does, on a machine taken to have no GPU
# driver; prints which backend ran, whether TensorFlow or Keras were imported, and the outputs on a batch.
_WORKER_LOAD = """
import json, pickle, sys
import numpy as np
import transforms.inference as inference
inference.gpu_driver_present = lambda: False
loader = pickle.loads(open(sys.argv[1], "rb").read())
loaded = loader.load_model()
batch = np.load(sys.argv[2])
(probabilities, classes, maps), _ = loaded.submit(batch).result()
print(json.dumps({"backend": loaded.backend, "tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules,
                  "facts": [loaded.num_classes, list(loaded.cam_shift), list(loaded.input_size)],
                  "probabilities": probabilities.tolist(), "classes": classes.tolist(), "maps": maps.tolist()}))
"""


def test_a_worker_runs_the_staged_litert_model_without_importing_tensorflow(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ai_edge_litert")
    loader = staged_litert_loader(tiny_model_path, tmp_path, batch_size=4, forward_threads=2, micro_batch_size=2)
    (tmp_path / "loader.pickle").write_bytes(pickle.dumps(loader))
    batch = random_batch(4, seed=11)
    np.save(tmp_path / "batch.npy", batch)
    completed = subprocess.run(
        [sys.executable, "-c", _WORKER_LOAD, str(tmp_path / "loader.pickle"), str(tmp_path / "batch.npy")],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )
    worker = json.loads(completed.stdout.strip().splitlines()[-1])
    assert worker["backend"] == "litert" and not worker["tensorflow"] and not worker["keras"]
    reference = CamModelLoader(str(tiny_model_path), backend="tensorflow").load_model()
    assert worker["facts"] == [reference.num_classes, list(reference.cam_shift), list(reference.input_size)]
    expected_probabilities, expected_classes, expected_maps = reference.predict(batch)
    np.testing.assert_array_equal(worker["classes"], expected_classes)
    np.testing.assert_allclose(worker["probabilities"], expected_probabilities, rtol=0, atol=1e-4)
    np.testing.assert_allclose(worker["maps"], expected_maps, rtol=0, atol=1e-4 * float(np.abs(expected_maps).max()))


@pytest.fixture
def cpu_worker_loader(tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CamModelLoader:
    """The launcher's staged-LiteRT loader, on a worker taken to have no GPU driver."""
    pytest.importorskip("ai_edge_litert")
    monkeypatch.setattr(inference, "gpu_driver_present", lambda: False)
    return staged_litert_loader(tiny_model_path, tmp_path)


def test_a_worker_asks_tensorflow_where_it_may_see_a_gpu_or_is_asked_for_it(
    cpu_worker_loader: CamModelLoader, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = cpu_worker_loader
    assert loader.runs_without_tensorflow()
    monkeypatch.setattr(inference, "gpu_driver_present", lambda: True)
    assert not loader.runs_without_tensorflow()  # TensorFlow decides: it would run the model on the GPU
    monkeypatch.setattr(inference, "gpu_driver_present", lambda: False)
    for attribute, value in (("faithfulness", True), ("model_facts", None), ("litert_model", None),
                             ("backend", "tensorflow")):
        changed = staged_litert_loader(tiny_model_path, tmp_path)
        setattr(changed, attribute, value)
        assert not changed.runs_without_tensorflow(), attribute


def test_a_staged_model_this_workers_runtime_refuses_runs_on_tensorflow_with_one_warning(
    cpu_worker_loader: CamModelLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = cpu_worker_loader
    refusals: list[int] = []
    monkeypatch.setattr(inference, "litert_or_warn", lambda *args: refusals.append(1))  # warns, returns None

    def no_second_try(*args: object) -> None:
        raise AssertionError("LiteRT was tried a second time")

    monkeypatch.setattr(inference, "litert_predict", no_second_try)
    loaded = loader.load_model()
    assert loaded.backend == "tensorflow" and refusals == [1]


def test_loader_applies_mixed_precision_to_the_loaded_model(tiny_model_path: Path) -> None:
    batch = random_batch(2)
    # A fixed class: both runs explain the same map, whatever either predicts.
    _, _, cams = CamModelLoader(str(tiny_model_path), cam_class=1).load_model().predict(batch)
    _, _, mixed_cams = CamModelLoader(str(tiny_model_path), mixed_precision=True, cam_class=1).load_model().predict(
        batch
    )
    assert mixed_cams.dtype == np.float32
    assert not np.array_equal(mixed_cams, cams)  # the float16 forward pass really ran
    np.testing.assert_allclose(mixed_cams, cams, rtol=0, atol=1e-2 * float(np.abs(cams).max()))
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize(
    ("batch_size", "micro_batch_size", "warmed_up"), [(5, 0, [5]), (32, 0, [8]), (32, 3, [3, 2]), (20, 8, [8, 4])]
)
def test_model_loader_warms_up_at_the_size_of_its_calls(
    tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int, micro_batch_size: int,
    warmed_up: list[int],
) -> None:
    batch_sizes: list[int] = []
    real_traced = ClassicCam.traced

    def recording_traced(method: ClassicCam) -> Callable[[np.ndarray], Explained]:
        run = real_traced(method)

        def recorded(batch: np.ndarray) -> Explained:
            batch_sizes.append(len(batch))
            return run(batch)

        return recorded

    monkeypatch.setattr(ClassicCam, "traced", recording_traced)
    monkeypatch.setattr(inference, "gpu_names", lambda: [])  # the CPU defaults, whatever the machine
    loaded = CamModelLoader(str(tiny_model_path), batch_size=batch_size, micro_batch_size=micro_batch_size).load_model()
    # One warm-up pass at each size of call a full batch is cut into (micro-batches of 8 on CPUs at
    # most, and the remainder), so the first real batch pays no set-up.
    assert batch_sizes == warmed_up
    assert loaded.layout.micro_batch_size == warmed_up[0]


def test_inference_dofn_emits_batches_in_order_however_the_threads_finish(tiny_model_path: Path) -> None:
    # With two forward threads, later micro-batches (of this batch and the next) finish while the
    # first is held; results must still come out in submission order, each once, none left behind.
    loader = CamModelLoader(str(tiny_model_path), batch_size=2, forward_threads=2, micro_batch_size=1)
    dofn = _CamInferenceDoFn(loader)
    dofn.setup()
    assert dofn._model is not None
    real_predict = dofn._model.predict
    first_input = loaded_image(0).model_input
    first_may_finish = threading.Event()
    finished: list[int] = []  # index of each finished micro-batch's image, in finishing order
    inputs = [loaded_image(i).model_input for i in range(8)]

    def predict(batch: np.ndarray) -> Explained:
        held = np.array_equal(batch[0], first_input)
        if held:
            assert first_may_finish.wait(timeout=30)
        outputs = real_predict(batch)
        finished.append(next(i for i, x in enumerate(inputs) if np.array_equal(batch[0], x)))
        if len(finished) == 3 and not held:  # img1, then img2 and img3 of the next batch, all before img0
            first_may_finish.set()
        return outputs

    dofn._model.predict = predict
    dofn.start_bundle()
    emitted: list[str] = []
    for b in range(4):
        batch = [loaded_image(2 * b), loaded_image(2 * b + 1)]
        handed_on = dofn.process(batch, WindowedValue(batch, 0, (GlobalWindow(),)))
        emitted += [value.value.image.entry.image_path for value in handed_on]
    emitted += [value.value.image.entry.image_path for value in dofn.finish_bundle()]
    assert finished.index(0) == 3  # held until three later micro-batches were done
    assert emitted == [f"img{i}.png" for i in range(8)]


def test_micro_batch_slices_cover_the_batch_in_order() -> None:
    # Sizes below 1 are refused where the user gives them: see test_build.test_batch_bounds_refuse_bad_flags.
    assert micro_batch_slices(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert micro_batch_slices(8, 8) == [slice(0, 8)]
    assert micro_batch_slices(2, 8) == [slice(0, 2)]
    assert micro_batch_slices(0, 4) == []


def test_warmup_sizes_are_each_call_size_once_largest_first() -> None:
    assert warmup_sizes(20, 8) == [8, 4]
    assert warmup_sizes(16, 8) == [8]
    assert warmup_sizes(3, 8) == [3]


def test_pending_forward_joins_micro_batches_and_spans_their_times() -> None:
    def done(value: tuple[Explained, float, float]) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(value)
        return future

    first = ((np.array([[0.2, 0.8]]), np.array([1], np.int32), np.zeros((1, 2, 2))), 10.0, 10.5)
    second = ((np.array([[0.6, 0.4], [0.1, 0.9]]), np.array([0, 1], np.int32), np.ones((2, 2, 2))), 10.1, 10.9)
    (probabilities, classes, maps), seconds = PendingForward([done(first), done(second)]).result()
    np.testing.assert_array_equal(probabilities, [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    np.testing.assert_array_equal(classes, [1, 0, 1])
    assert maps.shape == (3, 2, 2) and maps[0].sum() == 0 and maps[1:].min() == 1
    assert seconds == pytest.approx(0.9)  # from the first start to the last end


def test_faithfulness_scores_are_per_image_and_none_for_empty_maps() -> None:
    from transforms.inference import faithfulness_scores
    from transforms.schema import FaithfulnessScores

    arrays = [np.array([0.1, 0.0]), np.array([0.9, 0.0]), np.array([0.25, 0.0]), np.array([1.0, 0.0]),
              np.array([1.0, 0.0])]  # fmt: skip
    assert faithfulness_scores(arrays, 0) == FaithfulnessScores(0.1, 0.9, 0.25, True)
    assert faithfulness_scores(arrays, 1) is None and faithfulness_scores([], 0) is None

"""Each Beam stage on its own, under TestPipeline with assert_that."""

from __future__ import annotations

import os
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import TINY_INPUT, TinyArchive
from transforms.explain import ExplainCams
from transforms.images import LoadedImage, LoadImages
from transforms.inference import CamModelLoader, InferCams
from transforms.manifest import ReadManifest, inspect_manifest
from transforms.mura import ManifestEntry
from transforms.schema import Prediction, RunFacts

FACTS = RunFacts(run_id="test", model_sha256="0" * 64, threshold=0.2, class_names=("normal", "abnormal"))


def local_pipeline() -> TestPipeline:
    # FnApiRunner: Beam 2.77's DirectRunner would first try to download Prism.
    return TestPipeline(runner="FnApiRunner")


def test_read_manifest_mura_skips_blank_lines(tiny_archive: TinyArchive) -> None:
    fmt, columns = inspect_manifest(str(tiny_archive.manifest), "auto")
    assert fmt == "mura" and columns is None
    expected = sorted([*tiny_archive.good, *tiny_archive.bad])
    with local_pipeline() as p:
        paths = p | ReadManifest(str(tiny_archive.manifest), columns) | beam.Map(lambda e: e.image_path)
        assert_that(paths, equal_to(expected))


def test_read_manifest_csv_with_header_and_labels(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image_path,label\n\na.png,1\nb.png,0\n c.png , \n,1\n")
    fmt, columns = inspect_manifest(str(manifest), "auto")
    assert fmt == "csv"
    with local_pipeline() as p:
        entries = p | ReadManifest(str(manifest), columns)
        summary = entries | beam.Map(lambda e: (e.image_path, e.label, e.error is None))
        assert_that(
            summary,
            equal_to([("a.png", 1, True), ("b.png", 0, True), ("c.png", None, True), (",1", None, False)]),
        )


def test_load_images_splits_good_and_error_rows(tiny_archive: TinyArchive) -> None:
    entries = [ManifestEntry(image_path=path) for path in [*tiny_archive.good, *tiny_archive.bad]]
    with local_pipeline() as p:
        images, errors = p | beam.Create(entries) | LoadImages(str(tiny_archive.root), (TINY_INPUT, TINY_INPUT), FACTS)
        shapes = images | "Shapes" >> beam.Map(
            lambda i: (i.entry.image_path, i.rgb.shape[1], i.rgb.shape[0], i.model_input.shape)
        )
        expected = [(path, w, h, (TINY_INPUT, TINY_INPUT, 3)) for path, (w, h) in tiny_archive.sizes.items()]
        assert_that(shapes, equal_to(expected), label="GoodImages")
        reasons = errors | "Reasons" >> beam.Map(lambda r: (r["image_path"], r["status"]))
        assert_that(reasons, equal_to([(path, "error") for path in tiny_archive.bad]), label="ErrorRows")


def _loaded(index: int, width: int = 50, height: int = 40) -> LoadedImage:
    rng = np.random.default_rng(index)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return LoadedImage(
        ManifestEntry(image_path=f"img{index}.png"),
        f"/x/img{index}.png",
        rgb,
        rng.uniform(0, 255, (TINY_INPUT, TINY_INPUT, 3)).astype(np.float32),
    )


# (forward threads, micro-batch size): one call per batch on one thread, and micro-batches of 2 on two.
FORWARD_LAYOUTS = [(1, 3), (2, 2)]


@pytest.mark.parametrize(("forward_threads", "micro_batch_size"), FORWARD_LAYOUTS)
def test_infer_cams_batches_and_explains_the_predicted_class(
    tiny_model_path: Path, forward_threads: int, micro_batch_size: int
) -> None:
    images = [_loaded(i) for i in range(7)]
    loader = CamModelLoader(str(tiny_model_path), batch_size=3, forward_threads=forward_threads,
                            micro_batch_size=micro_batch_size)
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

    stamped = [TimestampedValue(_loaded(i), 10 * (i % 2)) for i in range(6)]
    loader = CamModelLoader(str(tiny_model_path), batch_size=2, forward_threads=forward_threads,
                            micro_batch_size=micro_batch_size)
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
        inferred = p | beam.Create([_loaded(0), _loaded(1)]) | InferCams(
            CamModelLoader(str(tiny_model_path)), 1, 2, cam_class=0
        )
        assert_that(inferred | beam.Map(lambda r: r.prediction.cam_class), equal_to([0, 0]))


def test_explain_cams_writes_heatmaps_and_records(tmp_path: Path) -> None:
    from transforms.inference import InferredImage

    cam = np.zeros((4, 5), dtype=np.float32)
    cam[3, 1] = 2.0
    inferred = [
        InferredImage(_loaded(0), Prediction((0.2, 0.8), 1, cam)),
        InferredImage(_loaded(1), Prediction((0.9, 0.1), 0, -np.ones((4, 5), np.float32))),
    ]
    heatmaps = tmp_path / "heatmaps"
    with local_pipeline() as p:
        records = p | beam.Create(inferred) | ExplainCams(FACTS, str(heatmaps), "png")
        fields = records | beam.Map(
            lambda r: (r["image_path"], r["status"], r["peak_x"] is not None, r["coverage"] > 0, r["heatmap_path"])
        )
        assert_that(
            fields,
            equal_to(
                [
                    ("img0.png", "ok", True, True, str(heatmaps / "img0.png.png")),
                    ("img1.png", "ok", False, False, str(heatmaps / "img1.png.png")),
                ]
            ),
        )
    assert (heatmaps / "img0.png.png").stat().st_size > 0 and (heatmaps / "img1.png.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("batch_size", "micro_batch_size", "warmed_up"), [(5, 0, [5]), (32, 0, [8]), (32, 3, [3, 2]), (20, 8, [8, 4])]
)
def test_model_loader_warms_up_at_the_size_of_its_calls(
    tiny_model_path: Path, monkeypatch, batch_size: int, micro_batch_size: int, warmed_up: list[int]
) -> None:
    import transforms.cam_model as cam_model
    import transforms.inference as inference

    batch_sizes: list[int] = []
    real_predict_fn = cam_model.predict_fn

    def recording_predict_fn(model):
        run = real_predict_fn(model)

        def recorded(batch: np.ndarray):
            batch_sizes.append(len(batch))
            return run(batch)

        return recorded

    monkeypatch.setattr(cam_model, "predict_fn", recording_predict_fn)
    monkeypatch.setattr(inference, "gpu_names", lambda: [])  # the CPU defaults, whatever the machine
    loaded = CamModelLoader(str(tiny_model_path), batch_size=batch_size, micro_batch_size=micro_batch_size).load_model()
    # One warm-up pass at each size of call a full batch is cut into (micro-batches of 8 on CPUs at
    # most, and the remainder), so the first real batch pays no set-up.
    assert batch_sizes == warmed_up
    assert loaded.layout.micro_batch_size == warmed_up[0]


def test_inference_dofn_emits_batches_in_order_however_the_threads_finish(tiny_model_path: Path) -> None:
    # With two forward threads, later micro-batches (of this batch and the next) finish while the
    # first is held; results must still come out in submission order, each once, none left behind.
    import threading

    from transforms.inference import _CamInferenceDoFn

    loader = CamModelLoader(str(tiny_model_path), batch_size=2, forward_threads=2, micro_batch_size=1)
    dofn = _CamInferenceDoFn(loader, cam_class=None)
    dofn.setup()
    real_predict = dofn._model.predict
    first_input = _loaded(0).model_input
    first_may_finish = threading.Event()
    finished: list[int] = []  # index of each finished micro-batch's image, in finishing order
    inputs = [_loaded(i).model_input for i in range(8)]

    def predict(batch: np.ndarray):
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
        batch = [_loaded(2 * b), _loaded(2 * b + 1)]
        emitted += [value.value.image.entry.image_path for value in dofn.process(batch, 0, None, None)]
    emitted += [value.value.image.entry.image_path for value in dofn.finish_bundle()]
    assert finished.index(0) == 3  # held until three later micro-batches were done
    assert emitted == [f"img{i}.png" for i in range(8)]


def test_micro_batch_slices_cover_the_batch_in_order() -> None:
    from transforms.inference import micro_batch_slices

    assert micro_batch_slices(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert micro_batch_slices(8, 8) == [slice(0, 8)]
    assert micro_batch_slices(2, 8) == [slice(0, 2)]
    assert micro_batch_slices(0, 4) == []
    with pytest.raises(ValueError, match="micro_batch_size"):
        micro_batch_slices(4, 0)


def test_pending_forward_joins_micro_batches_and_spans_their_times() -> None:
    import concurrent.futures

    from transforms.inference import PendingForward

    def done(value):
        future = concurrent.futures.Future()
        future.set_result(value)
        return future

    first = (np.array([[0.2, 0.8]]), np.zeros((1, 2, 2, 2)), 10.0, 10.5)
    second = (np.array([[0.6, 0.4], [0.1, 0.9]]), np.ones((2, 2, 2, 2)), 10.1, 10.9)
    probabilities, cams, seconds = PendingForward([done(first), done(second)]).result()
    np.testing.assert_array_equal(probabilities, [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    assert cams.shape == (3, 2, 2, 2) and cams[0].sum() == 0 and cams[1:].min() == 1
    assert seconds == pytest.approx(0.9)  # from the first start to the last end


def test_forward_layout_settles_automatic_values() -> None:
    from transforms.devices import ForwardLayout, forward_layout

    # CPUs, a process with the whole 2-core machine: a thread per core, micro-batches of 8, one core per op.
    assert forward_layout(0, 0, 32, False, 2, 2) == ForwardLayout(2, 8, 1)
    # One thread asked for: its ops spread over every core (0: TensorFlow's default).
    assert forward_layout(1, 0, 32, False, 2, 2) == ForwardLayout(1, 8, 0)
    # A worker process with 4 of 16 cores: 4 threads of one core; 2 threads get 2 cores each.
    assert forward_layout(0, 0, 32, False, 4, 16) == ForwardLayout(4, 8, 1)
    assert forward_layout(2, 0, 32, False, 4, 16) == ForwardLayout(2, 8, 2)
    # Micro-batches never exceed the batch; an explicit size stands.
    assert forward_layout(0, 0, 4, False, 2, 2) == ForwardLayout(2, 4, 1)
    assert forward_layout(0, 16, 32, False, 2, 2) == ForwardLayout(2, 16, 1)
    # A GPU: one thread, whole batches, TensorFlow's own threading.
    assert forward_layout(0, 0, 32, True, 2, 2) == ForwardLayout(1, 32, 0)
    with pytest.raises(ValueError, match="threads"):
        forward_layout(-1, 0, 32, False, 2, 2)
    with pytest.raises(ValueError, match="cores"):
        forward_layout(0, 0, 32, False, 3, 2)


def test_cgroup_cpu_limit_reads_quota_over_period() -> None:
    from transforms.devices import cgroup_cpu_limit, usable_cores

    assert cgroup_cpu_limit("max 100000\n") is None
    assert cgroup_cpu_limit("200000 100000\n") == 2
    assert cgroup_cpu_limit("150000 100000") == 1  # 1.5 cores: one thread per whole core
    assert cgroup_cpu_limit("50000 100000") == 1
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_threading_set_too_late_is_a_warning_not_a_failure(caplog) -> None:  # noqa: ANN001
    import tensorflow as tf

    from transforms.devices import configure_tensorflow

    tf.constant(1.0) + 1.0  # the runtime is running from here on
    in_force = tf.config.threading.get_intra_op_parallelism_threads()
    with caplog.at_level("WARNING", logger="transforms.devices"):
        configure_tensorflow(intra_op_threads=in_force + 3)
    assert "TensorFlow started before cam-audit could set" in caplog.text
    assert tf.config.threading.get_intra_op_parallelism_threads() == in_force

"""Each Beam stage on its own, under TestPipeline with assert_that."""

from __future__ import annotations

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


@pytest.mark.parametrize("forward_threads", [1, 2])
def test_infer_cams_batches_and_explains_the_predicted_class(tiny_model_path: Path, forward_threads: int) -> None:
    images = [_loaded(i) for i in range(7)]
    with local_pipeline() as p:
        inferred = (
            p
            | beam.Create(images)
            | InferCams(
                CamModelLoader(str(tiny_model_path)), min_batch_size=3, max_batch_size=3,
                forward_threads=forward_threads,
            )
        )
        checks = inferred | beam.Map(
            lambda r: (
                r.image.entry.image_path,
                r.prediction.cam.shape,
                r.prediction.cam_class == int(np.argmax(r.prediction.probabilities)),
                abs(sum(r.prediction.probabilities) - 1.0) < 1e-5,
            )
        )
        assert_that(checks, equal_to([(f"img{i}.png", (16, 16), True, True) for i in range(7)]))


@pytest.mark.parametrize("forward_threads", [1, 2])
def test_infer_cams_keeps_each_batch_in_its_window(tiny_model_path: Path, forward_threads: int) -> None:
    # Results leave the forward threads batches late (the last in finish_bundle): each must keep
    # the window of its own batch, not the one being processed when it comes out.
    from apache_beam.transforms.window import FixedWindows, TimestampedValue

    stamped = [TimestampedValue(_loaded(i), 10 * (i % 2)) for i in range(6)]
    with local_pipeline() as p:
        inferred = (
            p
            | beam.Create(stamped)
            | beam.WindowInto(FixedWindows(10))
            | InferCams(
                CamModelLoader(str(tiny_model_path)), min_batch_size=2, max_batch_size=2,
                forward_threads=forward_threads,
            )
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


def test_model_loader_warms_up_at_the_stage_batch_size(tiny_model_path: Path, monkeypatch) -> None:
    import transforms.cam_model as cam_model

    batch_sizes: list[int] = []
    real_predict_fn = cam_model.predict_fn

    def recording_predict_fn(model):
        run = real_predict_fn(model)

        def recorded(batch: np.ndarray):
            batch_sizes.append(len(batch))
            return run(batch)

        return recorded

    monkeypatch.setattr(cam_model, "predict_fn", recording_predict_fn)
    CamModelLoader(str(tiny_model_path), warmup_batch_size=5).load_model()
    # One warm-up pass at the stage's batch size, so the first real batch pays no set-up.
    assert batch_sizes == [5]


def test_inference_dofn_emits_batches_in_order_however_the_threads_finish(tiny_model_path: Path) -> None:
    # With two forward threads a later batch can finish first (here: the first batch is made slow);
    # results must still come out in submission order, each batch once, none left behind.
    import threading

    from transforms.inference import _CamInferenceDoFn

    first_batch_may_finish = threading.Event()
    dofn = _CamInferenceDoFn(CamModelLoader(str(tiny_model_path)), cam_class=None, forward_threads=2)
    dofn.setup()
    real_forward = dofn._forward

    def forward(batch):
        if batch[0].entry.image_path == "img0.png":
            assert first_batch_may_finish.wait(timeout=30)
        return real_forward(batch)

    dofn._forward = forward
    dofn.start_bundle()
    batches = [[_loaded(2 * b), _loaded(2 * b + 1)] for b in range(4)]
    emitted = [value.value.image.entry.image_path for value in dofn.process(batches[0], 0, None, None)]
    emitted += [value.value.image.entry.image_path for value in dofn.process(batches[1], 0, None, None)]
    assert emitted == []  # two batches in flight, one per thread: nothing is waited for yet
    dofn._in_flight[1].outputs.result(timeout=30)  # the second batch is done while the first still runs
    first_batch_may_finish.set()
    for batch in batches[2:]:
        emitted += [value.value.image.entry.image_path for value in dofn.process(batch, 0, None, None)]
    emitted += [value.value.image.entry.image_path for value in dofn.finish_bundle()]
    dofn.teardown()
    assert emitted == [f"img{i}.png" for i in range(8)]

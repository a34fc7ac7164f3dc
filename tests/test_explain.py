"""ExplainCams: each inferred image becomes a record, with its heatmap written beside."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import cv2
import numpy as np
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import TEST_FACTS, loaded_image, local_pipeline
from transforms.devices import ImageThreads
from transforms.explain import ExplainCams
from transforms.flags import FlagThresholds
from transforms.inference import InferredImage
from transforms.schema import Prediction


def test_explain_cams_writes_heatmaps_and_records(tmp_path: Path) -> None:
    cam = np.zeros((4, 5), dtype=np.float32)
    cam[3, 1] = 2.0
    inferred = [
        InferredImage(loaded_image(0), Prediction((0.2, 0.8), 1, cam)),
        InferredImage(loaded_image(1), Prediction((0.9, 0.1), 0, -np.ones((4, 5), np.float32))),
    ]
    heatmaps = tmp_path / "heatmaps"
    with local_pipeline() as p:
        records = p | beam.Create(inferred) | ExplainCams(TEST_FACTS, str(heatmaps), "png")
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


def test_records_only_writes_no_heatmap(tmp_path: Path) -> None:
    cam = np.zeros((4, 5), dtype=np.float32)
    cam[0, 0] = 1.0
    with local_pipeline() as p:
        records = (
            p
            | beam.Create([InferredImage(loaded_image(0), Prediction((0.2, 0.8), 1, cam))])
            | ExplainCams(TEST_FACTS, None)
        )
        # The hot cell is the top-left one and the border is clamped: the first maximum is pixel (0, 0).
        fields = records | beam.Map(lambda r: (r["status"], r["heatmap_path"], r["peak_x"], r["peak_y"]))
        assert_that(fields, equal_to([("ok", None, 0, 0)]))
    assert list(tmp_path.iterdir()) == []


def test_heatmap_is_bounded_and_the_record_keeps_original_pixels(tmp_path: Path) -> None:
    cam = np.zeros((4, 5), dtype=np.float32)
    cam[3, 4] = 1.0  # bottom-right cell: the peak is near the image's bottom-right corner
    image = loaded_image(0, width=50, height=40)
    heatmaps = tmp_path / "heatmaps"
    with local_pipeline() as p:
        records = (
            p
            | beam.Create([InferredImage(image, Prediction((0.2, 0.8), 1, cam))])
            | ExplainCams(TEST_FACTS, str(heatmaps), "png", heatmap_max_side=20)
        )
        fields = records | beam.Map(lambda r: (r["width"], r["height"], r["peak_x"] >= 40, r["peak_y"] >= 30))
        assert_that(fields, equal_to([(50, 40, True, True)]))
    written = cv2.imread(str(heatmaps / "img0.png.png"))
    assert written.shape == (16, 20, 3)  # 50 x 40 shrunk so that the longer side is 20
    assert not [p for p in heatmaps.rglob("*") if p.name.startswith(".cam-audit-tmp-")]  # renamed, no debris


def test_flags_are_computed_on_the_original_pixels() -> None:
    # A peak in the top-left corner (pixel 0, 0) of 50 x 40 random pixels; not confident (0.8 < 0.9).
    cam = np.zeros((4, 5), dtype=np.float32)
    cam[0, 0] = 1.0
    empty = -np.ones((4, 5), np.float32)
    with local_pipeline() as p:
        records = (
            p
            | beam.Create([InferredImage(loaded_image(0), Prediction((0.2, 0.8), 1, cam)),
                           InferredImage(loaded_image(1), Prediction((0.95, 0.05), 0, empty))])
            | ExplainCams(TEST_FACTS, None, flag_thresholds=FlagThresholds(border_margin=0.1))
        )
        fields = records | beam.Map(lambda r: (r["image_path"], r["flag_border_peak"], r["flag_empty_cam"],
                                               r["flag_diffuse"], r["flag_label_disagreement"]))
        # loaded_image carries no label: disagreement is unknown (null), never False.
        assert_that(fields, equal_to([("img0.png", True, False, False, None), ("img1.png", False, True, False, None)]))


def test_explain_cams_on_threads_keeps_each_record_in_its_window_and_the_same_heatmaps(tmp_path: Path) -> None:
    # Records leave the threads later than their images came in (the last in finish_bundle): each keeps
    # its own image's window, and the heatmap files equal those of one thread, byte for byte.
    from apache_beam.transforms.window import FixedWindows, TimestampedValue

    rng = np.random.default_rng(7)
    inferred = [
        InferredImage(loaded_image(i), Prediction((0.3, 0.7), 1, rng.normal(size=(4, 5)).astype(np.float32)))
        for i in range(9)
    ]
    outputs = {}
    for threads in (1, 3):
        heatmaps = tmp_path / f"heatmaps{threads}"
        with local_pipeline() as p:
            records = (
                p
                | beam.Create([TimestampedValue(image, 10 * (i % 2)) for i, image in enumerate(inferred)])
                | beam.WindowInto(FixedWindows(10))
                | ExplainCams(TEST_FACTS, str(heatmaps), "png", threads=ImageThreads(threads))
            )
            windows = records | beam.Map(
                lambda r, window=beam.DoFn.WindowParam: (r["image_path"], int(window.start))
            )
            assert_that(windows, equal_to([(f"img{i}.png", 10 * (i % 2)) for i in range(9)]))
        outputs[threads] = {path.name: path.read_bytes() for path in heatmaps.iterdir()}
    assert len(outputs[1]) == 9 and outputs[1] == outputs[3]


def test_a_chunk_writes_every_heatmap_before_handing_on_its_records(tmp_path: Path) -> None:
    # A chunk draws its images first and writes their files back to back: each record must still name a
    # complete file holding exactly its own heatmap, and match the image explained alone.
    from transforms.explain import _ExplainDoFn

    rng = np.random.default_rng(3)
    chunk = [
        InferredImage(loaded_image(index), Prediction((0.3, 0.7), 1, rng.normal(size=(4, 5)).astype(np.float32)))
        for index in range(5)
    ]
    dofn = _ExplainDoFn(TEST_FACTS, str(tmp_path / "heatmaps"), "png", 4096, FlagThresholds(), ImageThreads(1))
    records = dofn.work_chunk(chunk)
    assert [record["image_path"] for record in records] == [f"img{index}.png" for index in range(5)]
    for inferred, record in zip(chunk, records, strict=True):
        alone, heatmap = dofn.explain(inferred)
        assert record == alone
        assert Path(record["heatmap_path"]).read_bytes() == heatmap
    assert not [path for path in (tmp_path / "heatmaps").iterdir() if path.name.startswith(".cam-audit-tmp-")]

"""ExplainCams stage: CAM -> peak/coverage at original resolution, flags, heatmap file, Parquet record."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.utils import shared
from apache_beam.utils.windowed_value import WindowedValue

from transforms import files
from transforms.cam import explain_cam
from transforms.devices import ImageThreads
from transforms.flags import FlagThresholds, image_flags
from transforms.images import METRICS_NAMESPACE
from transforms.inference import InferredImage
from transforms.ordered_threads import OrderedThreads, stage_threads
from transforms.output_paths import heatmap_relative_path, join_path
from transforms.overlay import DEFAULT_HEATMAP_MAX_SIDE, encode_image, fit_to_side, render_overlay
from transforms.schema import RunFacts, to_record


class _ExplainDoFn(beam.DoFn):
    """InferredImage -> record dict, writing the heatmap on the way when asked to; on `threads` threads."""

    def __init__(
        self,
        facts: RunFacts,
        heatmap_dir: str | None,
        heatmap_format: str,
        heatmap_max_side: int,
        flag_thresholds: FlagThresholds,
        threads: ImageThreads,
    ) -> None:
        self._facts = facts
        self._threads = threads
        self._shared_handle = shared.Shared()
        # One tag per stage: every instance of this stage's DoFn in a process shares its threads.
        self._shared_tag = uuid.uuid4().hex
        self._work: OrderedThreads[InferredImage, dict[str, Any]] | None = None
        self._flag_thresholds = flag_thresholds
        self._heatmap_dir = heatmap_dir
        self._heatmap_format = heatmap_format
        self._heatmap_max_side = heatmap_max_side
        self._written = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "heatmaps_written")

    def setup(self) -> None:
        threads = stage_threads(self._shared_handle, self._shared_tag, self._threads.count(), "cam_explain")
        self._work = OrderedThreads(self.explain, threads)

    def start_bundle(self) -> None:
        assert self._work is not None
        self._work.start()

    def process(
        self,
        inferred: InferredImage,
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
        pane_info: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterator[WindowedValue]:
        assert self._work is not None
        for record, template in self._work.submit(inferred, timestamp, window, pane_info):
            yield self._hand_on(record, template)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        assert self._work is not None
        for record, template in self._work.finish():
            yield self._hand_on(record, template)

    def teardown(self) -> None:
        self._work = None  # lets go of the stage's shared threads

    def _hand_on(self, record: dict[str, Any], template: WindowedValue) -> WindowedValue:
        # Counted here, on the bundle's thread: Beam's metric containers are per thread.
        if record["heatmap_path"] is not None:
            self._written.inc()
        return template.with_value(record)

    def explain(self, inferred: InferredImage) -> dict[str, Any]:
        """One image's record: CAM statistics at original resolution, flags, and its heatmap file when asked for."""
        image = inferred.image
        height, width = image.rgb.shape[:2]
        cam_full, stats = explain_cam(
            inferred.prediction.cam, width, height, self._facts.threshold, inferred.prediction.cam_shift
        )
        heatmap_path = None
        if self._heatmap_dir is not None:
            relative = heatmap_relative_path(image.entry.image_path, self._heatmap_format)
            heatmap_path = join_path(self._heatmap_dir, relative)
            rgb, cam_shown = fit_to_side(image.rgb, cam_full, self._heatmap_max_side)
            overlay = render_overlay(rgb, cam_shown, self._facts.threshold)
            files.write_bytes_atomic(heatmap_path, encode_image(overlay, self._heatmap_format))
        peak = None if stats.peak_x is None else (stats.peak_x, stats.peak_y)
        flags = image_flags(
            image.rgb, peak, inferred.prediction.probabilities, stats.coverage, image.entry.label,
            self._flag_thresholds,
        )
        return to_record(
            image.entry,
            image.image_uri,
            self._facts,
            size=(width, height),
            prediction=inferred.prediction,
            stats=stats,
            heatmap_path=heatmap_path,
            flags=flags,
        )


class ExplainCams(beam.PTransform):
    """Turns inferred images into records on `threads` threads per DoFn instance; `heatmap_dir=None`: records only."""

    def __init__(
        self,
        facts: RunFacts,
        heatmap_dir: str | None,
        heatmap_format: str = "jpg",
        heatmap_max_side: int = DEFAULT_HEATMAP_MAX_SIDE,
        flag_thresholds: FlagThresholds | None = None,
        threads: ImageThreads | None = None,
    ) -> None:
        super().__init__()
        self._dofn = _ExplainDoFn(
            facts,
            heatmap_dir,
            heatmap_format,
            heatmap_max_side,
            flag_thresholds or FlagThresholds(),
            threads or ImageThreads(),
        )

    def expand(self, inferred: beam.PCollection) -> beam.PCollection:
        return inferred | "ExplainAndRender" >> beam.ParDo(self._dofn)

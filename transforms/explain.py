"""ExplainCams stage: CAM -> peak/coverage at original resolution, flags, heatmap file, Parquet record."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from transforms import files
from transforms.cam import explain_cam
from transforms.devices import ImageThreads
from transforms.flags import FlagThresholds, image_flags
from transforms.images import METRICS_NAMESPACE
from transforms.inference import InferredImage
from transforms.ordered_threads import OrderedThreadsDoFn
from transforms.output_paths import heatmap_relative_path, join_path
from transforms.overlay import DEFAULT_HEATMAP_MAX_SIDE, encode_image, fit_to_side, render_overlay
from transforms.schema import RunFacts, to_record


class _ExplainDoFn(OrderedThreadsDoFn):
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
        super().__init__(threads, "cam_explain")
        self._facts = facts
        self._flag_thresholds = flag_thresholds
        self._heatmap_dir = heatmap_dir
        self._heatmap_format = heatmap_format
        self._heatmap_max_side = heatmap_max_side
        self._written = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "heatmaps_written")

    def hand_on(self, record: dict[str, Any], template: WindowedValue) -> WindowedValue:
        # Counted here, on the bundle's thread: Beam's metric containers are per thread.
        if record["heatmap_path"] is not None:
            self._written.inc()
        return template.with_value(record)

    def work_chunk(self, chunk: list[InferredImage]) -> list[dict[str, Any]]:
        """The images' records; their heatmap files are written after the last one is drawn (back to back), before
        any record is handed on."""
        explained = [self.explain(inferred) for inferred in chunk]
        for record, heatmap in explained:
            if heatmap is not None:
                # Temporary names at the top of the heatmap tree, where the launcher looks for debris without
                # listing every heatmap (pipeline/consolidate.py: debris).
                files.write_bytes_atomic(record["heatmap_path"], heatmap, temp_folder=self._heatmap_dir)
        return [record for record, _ in explained]

    def explain(self, inferred: InferredImage) -> tuple[dict[str, Any], bytes | None]:
        """One image's record (CAM statistics at original resolution, flags) and its encoded heatmap, when asked for
        (the record names the file it goes to)."""
        image = inferred.image
        height, width = image.pixels.shape[:2]
        cam_full, stats = explain_cam(
            inferred.prediction.cam, width, height, self._facts.threshold, inferred.prediction.cam_shift
        )
        heatmap_path = heatmap = None
        if self._heatmap_dir is not None:
            relative = heatmap_relative_path(image.entry.image_path, self._heatmap_format)
            heatmap_path = join_path(self._heatmap_dir, relative)
            pixels, cam_shown = fit_to_side(image.pixels, cam_full, self._heatmap_max_side)
            overlay = render_overlay(pixels, cam_shown, self._facts.threshold)
            heatmap = encode_image(overlay, self._heatmap_format)
        peak = None if stats.peak_x is None else (stats.peak_x, stats.peak_y)
        flags = image_flags(
            image.pixels, peak, inferred.prediction.probabilities, stats.coverage, image.entry.label,
            self._flag_thresholds,
        )
        record = to_record(
            image.entry,
            image.image_uri,
            self._facts,
            size=(width, height),
            prediction=inferred.prediction,
            stats=stats,
            heatmap_path=heatmap_path,
            flags=flags,
        )
        return record, heatmap


class ExplainCams(beam.PTransform):
    """Turns inferred images into records on the stage's `threads` per worker process; no heatmap_dir: records only."""

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

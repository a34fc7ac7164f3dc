"""LoadImages stage: read each manifest entry's bytes through FileSystems and decode them."""

from __future__ import annotations

import dataclasses
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.utils.windowed_value import WindowedValue

from transforms import files
from transforms.devices import ImageThreads
from transforms.image_coder import InFlightImageCoder
from transforms.imaging import DecodePolicy, ImageDecodeError, load_model_input
from transforms.mura import ManifestEntry, PathOutsideRootError, resolve_image_path
from transforms.ordered_threads import OrderedThreadsDoFn
from transforms.schema import RunFacts, to_record

ERRORS = "errors"
METRICS_NAMESPACE = "cam_audit"


@dataclasses.dataclass(frozen=True)
class LoadedImage:
    """A decoded image: the original pixels for the heatmap and the flags, and the model-sized input."""

    entry: ManifestEntry
    image_uri: str
    pixels: np.ndarray  # original size, uint8: H x W if the image is grey, else H x W x 3 RGB
    model_input: np.ndarray  # h x w x 3 RGB float32 in 0..255

    @property
    def array_bytes(self) -> int:
        """Bytes its pixel arrays hold (InFlightImageCoder's size estimate)."""
        return self.pixels.nbytes + self.model_input.nbytes


# Images in flight are sized by their arrays, not pickled to be measured (transforms/image_coder.py).
beam.coders.registry.register_coder(LoadedImage, InFlightImageCoder)


def describe_read_error(uri: str, exc: Exception) -> str:
    """A reader-facing reason for a failed read; never raises (an unsupported scheme is a reason too)."""
    if isinstance(exc, IsADirectoryError):
        return f"a folder, not a file: {uri}"
    try:
        missing = isinstance(exc, FileNotFoundError) or not files.exists(uri)
    except Exception as exists_exc:  # noqa: BLE001 - e.g. no FileSystems for the scheme: still this row's reason
        return f"no filesystem for this location: {uri}: {exists_exc}"
    if missing:
        return f"file not found: {uri}"
    return f"unreadable file: {uri}: {type(exc).__name__}: {exc}"


class _LoadImageDoFn(OrderedThreadsDoFn):
    """ManifestEntry -> LoadedImage, or an error record on the `errors` output; decoding runs on `threads` threads."""

    def __init__(
        self, data_root: str, input_size: tuple[int, int], facts: RunFacts, decode: DecodePolicy, threads: ImageThreads
    ) -> None:
        super().__init__(threads, "cam_decode")
        self._data_root = data_root
        self._height, self._width = input_size
        self._facts = facts
        self._decode = decode
        self._loaded = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "images_loaded")
        self._failed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "images_failed")

    def hand_on(self, loaded: LoadedImage | dict[str, Any], template: WindowedValue) -> object:
        # Counted here, on the bundle's thread: Beam's metric containers are per thread.
        if isinstance(loaded, LoadedImage):
            self._loaded.inc()
            return template.with_value(loaded)
        self._failed.inc()
        return beam.pvalue.TaggedOutput(ERRORS, template.with_value(loaded))

    def work(self, entry: ManifestEntry) -> LoadedImage | dict[str, Any]:
        """One entry's image, decoded; or its error record (every failure is the row's, not the run's)."""
        return self._decoded(entry, *self._read(entry))

    def work_chunk(self, entries: list[ManifestEntry]) -> list[LoadedImage | dict[str, Any]]:
        """`work` of each entry: every file read first, then every image decoded (the reads back to back)."""
        reads = [self._read(entry) for entry in entries]
        return [self._decoded(entry, *read) for entry, read in zip(entries, reads, strict=True)]

    def _read(self, entry: ManifestEntry) -> tuple[str, bytes | None, str | None]:
        """(uri, the file's bytes, None), or (uri, None, why there are none): the manifest's error, a path outside
        the data root, a failed read."""
        try:
            uri = resolve_image_path(entry.image_path, self._data_root)
        except PathOutsideRootError as exc:
            return entry.image_path, None, entry.error or str(exc)
        if entry.error is not None:
            return uri, None, entry.error
        try:
            return uri, files.read_bytes(uri), None
        except Exception as exc:  # noqa: BLE001 - any read failure is this row's error, not the run's
            return uri, None, describe_read_error(uri, exc)

    def _decoded(
        self, entry: ManifestEntry, uri: str, data: bytes | None, reason: str | None
    ) -> LoadedImage | dict[str, Any]:
        """The image decoded from `data`, or the entry's error record (`reason`, or why decoding failed)."""
        if data is not None:
            try:
                pixels, model_input = load_model_input(
                    data,
                    self._height,
                    self._width,
                    max_pixels=self._decode.max_pixels,
                    sixteen_bit=self._decode.sixteen_bit,
                )
                return LoadedImage(entry, uri, pixels, model_input)
            except ImageDecodeError as exc:
                reason = f"{exc} ({uri})"
        return to_record(entry, uri, self._facts, error=reason)


class LoadImages(beam.PTransform):
    """Decodes images on the stage's `threads` per worker process; returns (loaded images, error records)."""

    def __init__(
        self,
        data_root: str,
        input_size: tuple[int, int],
        facts: RunFacts,
        decode: DecodePolicy | None = None,
        threads: ImageThreads | None = None,
    ) -> None:
        super().__init__()
        self._dofn = _LoadImageDoFn(data_root, input_size, facts, decode or DecodePolicy(), threads or ImageThreads())

    def expand(self, entries: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        results = entries | "Decode" >> beam.ParDo(self._dofn).with_outputs(ERRORS, main="images")
        # The images' collection typed, so it (and BatchElements' batches of it) gets InFlightImageCoder. Not as the
        # ParDo's output type: --runtime_type_check would hold the error records to it too.
        results.images.element_type = LoadedImage
        return results.images, results[ERRORS]

"""The non-model work alone, in a tight loop: read, decode, resize, CAM upsample, JET overlay, JPEG encode.

What every image costs besides the forward pass, with no Beam, no model and no files written: the
other half of the essential limit 1 / (1 / forward rate + 1 / this rate). One loop per process,
`processes` processes side by side (one per core, as the forward layout uses them). Each image's overlay is
drawn from the model's own CAM of that image when the bench has them (`ModelCams`, made by
`python -m bench.measure cams`): how much of the image the CAM colours sets the overlay's cost, so the loop
draws what the pipeline draws. Without them (the GPU probe) a fixed blob CAM stands in.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# The CAM the overlay is drawn from: one smooth blob on the model's grid, which colours about a tenth
# of each image at the default threshold 0.2 (bench/README.md).
_CAM_BLOB_SIGMA = 0.3


@dataclasses.dataclass(frozen=True)
class ModelCams:
    """The model's raw CAM of each of a list of images (in its order) and the CAM grid's shift, in cells."""

    maps: np.ndarray  # images x h x w float32
    shift: tuple[float, float]

    def save(self, path: Path) -> Path:
        np.savez(path, maps=self.maps, shift=np.asarray(self.shift, dtype=np.float64))
        return path

    @classmethod
    def load(cls, path: Path) -> ModelCams:
        with np.load(path) as saved:
            dy, dx = saved["shift"].tolist()
            return cls(saved["maps"], (dy, dx))


@dataclasses.dataclass(frozen=True)
class NonModelRate:
    """Images per second of the non-model work over all processes."""

    processes: int
    images: int
    seconds: float  # the slowest process's timed seconds

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds


def blob_cam(cam_size: tuple[int, int]) -> np.ndarray:
    """A smooth raw CAM with one peak, in the model's grid (the overlay's input)."""
    rows, cols = (np.linspace(-1.0, 1.0, size) for size in cam_size)
    distance = rows[:, None] ** 2 + cols[None, :] ** 2
    return (np.exp(-distance / (2 * _CAM_BLOB_SIGMA**2)) * 5.0 - 1.0).astype(np.float32)


def heatmap_size(
    pixels: np.ndarray, cam: np.ndarray, threshold: float = 0.2, shift: tuple[float, float] = (0.0, 0.0)
) -> int:
    """One image's work after the forward pass: its raw CAM upsampled to the image, the JET overlay and the JPEG
    encode; returns the heatmap's encoded size."""
    from transforms.cam import explain_cam
    from transforms.overlay import encode_image, render_overlay

    height, width = pixels.shape[:2]
    cam_full, _ = explain_cam(cam, width, height, threshold, shift)
    return len(encode_image(render_overlay(pixels, cam_full, threshold), "jpg"))


def non_model_image(
    data: bytes, input_size: tuple[int, int], cam: np.ndarray, threshold: float = 0.2,
    shift: tuple[float, float] = (0.0, 0.0),
) -> int:
    """One image's non-model work on its bytes (decode and resize, then heatmap_size); the heatmap's encoded size."""
    from transforms.imaging import load_model_input

    pixels, _ = load_model_input(data, *input_size)
    return heatmap_size(pixels, cam, threshold, shift)


def _loop(files: Sequence[str], input_size: tuple[int, int], cams: Sequence[np.ndarray], shift: tuple[float, float],
          min_seconds: float) -> tuple[int, float]:
    """One process: whole passes over `files` (read from disk each time), file i overlaid with `cams[i]`, until
    `min_seconds` have passed.

    Files are read with a plain `open`, as `transforms.files.read_bytes` reads local paths, without importing
    Beam: the GPU probe (bench/gpu_probe.py) runs this loop on a machine that has none.
    """
    from transforms.allocator import keep_freed_memory

    keep_freed_memory()  # as every cam-audit worker process does: the same work, the same allocator
    non_model_image(Path(files[0]).read_bytes(), input_size, cams[0], shift=shift)  # imports, first-call set-up
    images, start = 0, time.perf_counter()
    while True:
        for path, cam in zip(files, cams, strict=True):
            non_model_image(Path(path).read_bytes(), input_size, cam, shift=shift)
            images += 1
        if time.perf_counter() - start >= min_seconds:
            return images, time.perf_counter() - start


def time_non_model(archive_root: Path, paths: Sequence[str], input_size: tuple[int, int],
                   cam_size: tuple[int, int], processes: int, min_seconds: float,
                   cams: ModelCams | None = None) -> NonModelRate:
    """The non-model rate of `processes` processes side by side, each over its own share of `paths` (relative to
    `archive_root`, or absolute), each image overlaid with its CAM in `cams` (one per path), or with the blob CAM
    of `cam_size` when there are none. Spawned, not forked: a parent holding TensorFlow's or JAX's threads would
    be copied mid-flight."""
    if cams is None:
        cams = ModelCams(np.broadcast_to(blob_cam(cam_size), (len(paths), *cam_size)), (0.0, 0.0))
    if len(cams.maps) != len(paths):
        raise ValueError(f"{len(cams.maps)} CAMs for {len(paths)} images")
    shares = [
        ([str(archive_root / path) for path in paths[index::processes]], list(cams.maps[index::processes]))
        for index in range(processes)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.starmap(_loop, [(files, input_size, maps, cams.shift, min_seconds) for files, maps in shares])
    return NonModelRate(processes, sum(images for images, _ in results), max(seconds for _, seconds in results))

"""The limit: bare forward throughput of the one-pass CAM model on decoded, resized tensors."""

from __future__ import annotations

import collections
import dataclasses
import time

import numpy as np

from bench.nonmodel import ModelCams
from transforms.inference import CamModelLoader, LoadedCamModel

# The limit cycles over at most this many decoded images (more would only hold more memory).
LIMIT_IMAGES = 512
# The two ways the limit is measured: TensorFlow's own threading with one call per batch (what a
# user gets by default), and the layout cam-audit settles on for this machine (bench/README.md).
LIMIT_LAYOUTS = ("tensorflow_default", "cam_audit")
# cam-audit's layout on the LiteRT backend (bench/README.md: the essential limit of a LiteRT run).
LITERT_LAYOUT = "litert"


@dataclasses.dataclass(frozen=True)
class ForwardLimit:
    """Images per second of the CAM model alone, at one batch size and one forward layout."""

    layout: str
    backend: str  # what ran the forward passes (LoadedCamModel.backend)
    batch_size: int
    threads: int
    micro_batch_size: int
    intra_op_threads: int  # 0: TensorFlow's default (every core)
    images: int  # images pushed through in the timed passes
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds


def limit_loader(
    model_path: str, layout: str, batch_size: int, mixed_precision: bool = False, forward_threads: int = 0,
    micro_batch_size: int = 0,
) -> CamModelLoader:
    """The pipeline's model loader, set up as one of LIMIT_LAYOUTS or LITERT_LAYOUT (cam_audit and litert: with
    cam-audit's two flags; litert converts the model in the worker, as a run without a launcher would)."""
    if layout == "tensorflow_default":
        return CamModelLoader(model_path, mixed_precision=mixed_precision, batch_size=batch_size,
                              forward_threads=1, micro_batch_size=batch_size)
    if layout == "cam_audit":
        return CamModelLoader(model_path, mixed_precision=mixed_precision, batch_size=batch_size,
                              forward_threads=forward_threads, micro_batch_size=micro_batch_size)
    if layout == LITERT_LAYOUT:
        return CamModelLoader(model_path, batch_size=batch_size, forward_threads=forward_threads,
                              micro_batch_size=micro_batch_size, backend="litert")
    raise ValueError(f"unknown limit layout {layout!r}; choose from {(*LIMIT_LAYOUTS, LITERT_LAYOUT)}")


def time_forward(model: LoadedCamModel, layout: str, inputs: np.ndarray, batch_size: int,
                 min_seconds: float) -> ForwardLimit:
    """Warm up on two batches, then time whole passes over `inputs` until `min_seconds` have passed.

    Batches are sliced views of one array, submitted as the pipeline's inference stage submits them
    (one batch queued behind the one being waited for) and every output comes back as numpy: the
    stage's forward work, minus decoding and everything after.
    """
    batches = [inputs[start : start + batch_size] for start in range(0, len(inputs), batch_size)]
    for batch in batches[:2]:
        model.submit(batch).result()
    pending: collections.deque = collections.deque()
    images = 0
    start = time.perf_counter()
    while True:  # at least one whole pass, however short min_seconds
        for batch in batches:
            pending.append(model.submit(batch))
            if len(pending) > 1:
                pending.popleft().result()
            images += len(batch)
        if time.perf_counter() - start >= min_seconds:
            break
    while pending:
        pending.popleft().result()
    return ForwardLimit(layout, model.backend, batch_size, model.layout.threads, model.layout.micro_batch_size,
                        model.layout.intra_op_threads, images, time.perf_counter() - start)


def model_cams(model: LoadedCamModel, inputs: np.ndarray, batch_size: int) -> ModelCams:
    """The model's raw CAM of each input (of the class the pipeline explains: the predicted one), in batches."""
    starts = range(0, len(inputs), batch_size)
    maps = [model.submit(inputs[start : start + batch_size]).result()[0][2] for start in starts]
    return ModelCams(np.concatenate(maps).astype(np.float32), model.cam_shift)

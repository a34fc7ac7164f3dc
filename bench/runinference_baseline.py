"""The stock-Beam alternative: RunInference returns feature maps and probabilities, numpy makes the CAMs.

What a user builds from Beam's parts: a small `ModelHandler` whose model has two outputs (the last conv
maps and the probabilities), Beam's `RunInference` (its own batching, one synchronous call per batch),
then a DoFn that contracts each image's B x h x w x C maps with the Dense kernel in numpy (Zhou et al.
2016, eq. 2). Decoding, heatmaps and records reuse cam-audit's stages, so the comparison isolates the
inference design. (`apache_beam.ml.inference.tensorflow_inference` is not used: it imports tensorflow_hub
and tf_keras, which are not installed; its default `model(x)` eager call is also slower than the
`predict_on_batch` used here.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.build import build_audit, plan_audit, prepare_output
from pipeline.consolidate import consolidate
from pipeline.options import CamAuditOptions, route_labels_flag
from pipeline.run import local_runner
from transforms.images import LoadedImage
from transforms.inference import InferredImage
from transforms.schema import Prediction


class FeatureMapsModelHandler(ModelHandler[LoadedImage, PredictionResult, Any]):
    """Loads the classifier as a Keras model with two outputs: (feature maps, class scores)."""

    def __init__(self, model_path: str, batch_size: int) -> None:
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._model_path = model_path

    def load_model(self) -> Any:
        import keras

        from transforms.cam_head import find_cam_head
        from transforms.model_files import load_keras_model

        model, _ = load_keras_model(self._model_path)
        return keras.Model(model.inputs, [find_cam_head(model).features, model.outputs[0]])

    def run_inference(
        self, batch: Sequence[LoadedImage], model: Any, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        # predict_on_batch runs a traced function; Beam's TF handler calls model(x) eagerly, which is slower.
        features, scores = model.predict_on_batch(np.stack([image.model_input for image in batch]))
        return [PredictionResult(image, (features[i], scores[i])) for i, image in enumerate(batch)]

    def get_num_bytes(self, batch: Sequence[LoadedImage]) -> int:
        # The base class pickles the whole batch to count its bytes; Beam's numpy handlers sum nbytes.
        return sum(image.pixels.nbytes + image.model_input.nbytes for image in batch)


def cam_kernel_and_probabilities(head: Any) -> tuple[np.ndarray, str]:
    """The C x K kernel whose columns weight the maps per class, and how scores become probabilities."""
    kernel = np.asarray(head.dense_layer.kernel, dtype=np.float32)
    if head.output_kind == "sigmoid1":
        kernel = np.concatenate([-kernel, kernel], axis=1)
    return kernel, head.output_kind


def to_probabilities(scores: np.ndarray, output_kind: str) -> np.ndarray:
    """Model output of one image -> class probabilities, as the one-pass CAM model computes them."""
    if output_kind == "sigmoid1":
        return np.array([1.0 - scores[0], scores[0]], dtype=np.float32)
    if output_kind == "linear":
        exponent = np.exp(scores - scores.max())
        return exponent / exponent.sum()
    return scores


class CamFromFeatureMaps(beam.DoFn):
    """(image, feature maps, scores) -> InferredImage: the CAM contracted on the CPU, per image."""

    def __init__(
        self, kernel: np.ndarray, output_kind: str, cam_shift: tuple[float, float], cam_class: int | None
    ) -> None:
        self._kernel = kernel
        self._output_kind = output_kind
        self._cam_shift = cam_shift
        self._cam_class = cam_class

    def process(self, result: PredictionResult) -> Iterator[InferredImage]:
        features, scores = result.inference
        probabilities = to_probabilities(scores, self._output_kind)
        chosen = int(np.argmax(probabilities)) if self._cam_class is None else self._cam_class
        cam = np.einsum("hwc,c->hw", features, self._kernel[:, chosen])
        prediction = Prediction(tuple(float(p) for p in probabilities), chosen, cam.astype(np.float32), self._cam_shift)
        yield InferredImage(result.example, prediction)


class RunInferenceCams(beam.PTransform):
    """The alternative inference stage: RunInference for (feature maps, scores), then a numpy CAM per image."""

    def __init__(self, model_path: str, batch_size: int, cam_class: int | None) -> None:
        super().__init__()
        from transforms.cam_head import find_cam_head
        from transforms.model_files import load_keras_model
        from transforms.receptive_field import feature_grid

        model, _ = load_keras_model(model_path)
        head = find_cam_head(model)
        self._kernel, self._output_kind = cam_kernel_and_probabilities(head)
        self._shift = feature_grid(model, head.features).shift_cells()
        self._handler = FeatureMapsModelHandler(model_path, batch_size)
        self._cam_class = cam_class

    def expand(self, images: beam.PCollection) -> beam.PCollection:
        return (
            images
            | "RunInference" >> RunInference(self._handler)
            | "CamFromFeatureMaps"
            >> beam.ParDo(CamFromFeatureMaps(self._kernel, self._output_kind, self._shift, self._cam_class))
        )


def run_runinference_audit(argv: list[str]) -> str:
    """Run the alternative with cam-audit's command line (same checks, same runner); returns the output dir."""
    options = PipelineOptions(route_labels_flag(list(argv)))
    audit_options = options.view_as(CamAuditOptions)
    plan = plan_audit(audit_options)
    prepare_output(plan)
    pipeline = beam.Pipeline(runner=local_runner(options), options=options)
    inference = RunInferenceCams(audit_options.model, plan.max_batch_size, audit_options.cam_class)
    build_audit(pipeline, plan, inference)
    pipeline.run().wait_until_finish()
    consolidate(plan.output_dir, plan.path_counts, plan.record_shards)
    return plan.output_dir

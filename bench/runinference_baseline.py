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

from pipeline.build import AuditPlan, plan_audit
from pipeline.options import CamAuditOptions, route_labels_flag
from pipeline.run import local_runner
from transforms.explain import ExplainCams
from transforms.images import LoadedImage, LoadImages
from transforms.inference import InferredImage, explained_class
from transforms.manifest import ReadManifest
from transforms.records import WriteRecords
from transforms.schema import Prediction


class FeatureMapsModelHandler(ModelHandler[LoadedImage, PredictionResult, Any]):
    """Loads the classifier as a Keras model with two outputs: (feature maps, class scores)."""

    def __init__(self, model_path: str, batch_size: int) -> None:
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._model_path = model_path

    def load_model(self) -> Any:
        import keras

        from transforms.cam_model import find_cam_head, load_keras_model

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
        return sum(image.rgb.nbytes + image.model_input.nbytes for image in batch)


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
        chosen = explained_class(probabilities, self._cam_class)
        cam = np.einsum("hwc,c->hw", features, self._kernel[:, chosen])
        prediction = Prediction(tuple(float(p) for p in probabilities), chosen, cam.astype(np.float32), self._cam_shift)
        yield InferredImage(result.example, prediction)


def build_runinference_audit(
    pipeline: beam.Pipeline, plan: AuditPlan, model_path: str
) -> dict[str, beam.PCollection]:
    """Same stages as cam-audit's graph, with InferCams replaced by RunInference + a numpy CAM DoFn."""
    from transforms.cam_model import feature_grid, find_cam_head, load_keras_model

    model, _ = load_keras_model(model_path)
    head = find_cam_head(model)
    kernel, output_kind = cam_kernel_and_probabilities(head)
    shift = feature_grid(model, head).shift_cells()
    del model
    entries = pipeline | "ReadManifest" >> ReadManifest(
        plan.manifest, plan.csv_columns, plan.labels
    )
    images, error_records = entries | "LoadImages" >> LoadImages(plan.data_root, plan.input_size, plan.facts)
    results = images | "RunInference" >> RunInference(FeatureMapsModelHandler(model_path, plan.max_batch_size))
    inferred = results | "CamFromFeatureMaps" >> beam.ParDo(
        CamFromFeatureMaps(kernel, output_kind, shift, plan.cam_class)
    )
    ok_records = inferred | "ExplainCams" >> ExplainCams(plan.facts, plan.heatmap_dir, plan.heatmap_format)
    return (ok_records, error_records) | "WriteRecords" >> WriteRecords(plan.output_dir, plan.record_shards)


def run_runinference_audit(argv: list[str]) -> str:
    """Run the alternative with cam-audit's command line (same checks, same runner); returns the output dir."""
    options = PipelineOptions(route_labels_flag(list(argv)))
    audit_options = options.view_as(CamAuditOptions)
    plan = plan_audit(audit_options)
    pipeline = beam.Pipeline(runner=local_runner(options), options=options)
    build_runinference_audit(pipeline, plan, audit_options.model)
    pipeline.run().wait_until_finish()
    return plan.output_dir

"""InFlightImageCoder: the coder of decoded images in flight -- a pickle round trip, a size estimate without one."""

from __future__ import annotations

import pickle
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest

import transforms.image_coder as image_coder
from tests.conftest import loaded_image
from transforms.image_coder import SMALL_FIELDS_BYTES, InFlightImageCoder
from transforms.images import LoadedImage, LoadImages
from transforms.inference import CamModelLoader, InferCams, InferredImage
from transforms.schema import Prediction, RunFacts


def inferred_image(index: int, width: int = 640, height: int = 480) -> InferredImage:
    """A loaded image of `width` x `height` with a 7 x 7 CAM."""
    cam = np.random.default_rng(index).normal(size=(7, 7)).astype(np.float32)
    return InferredImage(loaded_image(index, width, height), Prediction((0.3, 0.7), 1, cam, (0.5, 0.5)))


def test_the_images_in_flight_and_their_batches_get_the_coder() -> None:
    registry = beam.coders.registry
    assert isinstance(registry.get_coder(LoadedImage), InFlightImageCoder)
    assert isinstance(registry.get_coder(InferredImage), InFlightImageCoder)
    batches = registry.get_coder(beam.typehints.List[LoadedImage])  # BatchElements' output type
    assert isinstance(batches, beam.coders.ListCoder) and isinstance(batches._elem_coder, InFlightImageCoder)


def test_the_stages_type_their_images_and_leave_the_error_records_untyped(tiny_model_path: Path) -> None:
    pipeline = beam.Pipeline()
    entries = pipeline | beam.Create([])
    images, errors = entries | LoadImages("/data", (32, 32), RunFacts("run", "0" * 64, 0.2, ("normal", "abnormal")))
    assert images.element_type is LoadedImage
    assert not isinstance(beam.coders.registry.get_coder(errors.element_type), InFlightImageCoder)
    batches = images | beam.BatchElements(min_batch_size=2, max_batch_size=4)
    assert isinstance(beam.coders.registry.get_coder(batches.element_type)._elem_coder, InFlightImageCoder)
    inferred = images | InferCams(CamModelLoader(str(tiny_model_path)), 1, 4)
    assert isinstance(beam.coders.registry.get_coder(inferred.element_type), InFlightImageCoder)
    # The graph survives Beam's proto round trip (interactive runners and expansion services take it).
    beam.Pipeline.from_runner_api(pipeline.to_runner_api(), pipeline.runner, pipeline._options)


def test_a_round_trip_gives_the_element_back() -> None:
    coder = InFlightImageCoder()
    original = inferred_image(3)
    decoded = coder.decode(coder.encode(original))
    assert decoded.image.entry == original.image.entry and decoded.image.image_uri == original.image.image_uri
    assert np.array_equal(decoded.image.pixels, original.image.pixels)
    assert np.array_equal(decoded.image.model_input, original.image.model_input)
    assert decoded.prediction.probabilities == original.prediction.probabilities
    assert np.array_equal(decoded.prediction.cam, original.prediction.cam)


@pytest.mark.parametrize("make", [lambda: loaded_image(1, 640, 480), lambda: inferred_image(2)])
def test_the_size_estimate_is_close_to_the_pickle_and_pickles_nothing(make, monkeypatch: pytest.MonkeyPatch) -> None:
    element = make()
    pickled = len(pickle.dumps(element, protocol=pickle.HIGHEST_PROTOCOL))
    coder = InFlightImageCoder()

    def no_pickling(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the estimate pickled the element")

    monkeypatch.setattr(image_coder.pickle, "dumps", no_pickling)
    estimate = coder.estimate_size(element)
    assert abs(estimate - pickled) <= SMALL_FIELDS_BYTES  # arrays counted exactly; the rest within the allowance
    # What Beam's size sampling calls: the coder's implementation, nested in a list as a batch is.
    batch_size, _ = beam.coders.ListCoder(coder).get_impl().get_estimated_size_and_observables([element] * 3)
    assert 3 * estimate < batch_size <= 3 * estimate + 64

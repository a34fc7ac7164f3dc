"""LiteRT backend (transforms.backends.litert): the converted one-pass model against TensorFlow's on the test
archive, the class selection in numpy, and one interpreter per concurrent caller."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest

from tests.conftest import TinyArchive, build_tiny_cam_model, random_batch
from transforms.backends.litert import LiteRtCam, convert_cam_model, explained_maps
from transforms.cam import explain_cam
from transforms.imaging import load_model_input
from transforms.methods.cam import ClassicCam

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def tiny_cam() -> ClassicCam:
    return ClassicCam(build_tiny_cam_model(seed=5))


@pytest.fixture(scope="module")
def flatbuffer(tiny_cam: ClassicCam) -> bytes:
    return convert_cam_model(tiny_cam.cam_model)


def test_explained_maps_keeps_each_images_class_map() -> None:
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]], np.float32)
    cams = np.arange(3 * 2 * 2 * 2, dtype=np.float32).reshape(3, 2, 2, 2)
    _, classes, maps = explained_maps(probabilities, cams, None)
    assert classes.tolist() == [1, 0, 0]  # a tie goes to the first class, as tf.argmax
    np.testing.assert_array_equal(maps[0], [[1, 3], [5, 7]])
    np.testing.assert_array_equal(maps[1], [[8, 10], [12, 14]])
    _, fixed, fixed_maps = explained_maps(probabilities, cams, 1)
    assert fixed.dtype == np.int32 and fixed.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(fixed_maps[1], [[9, 11], [13, 15]])


def test_same_records_as_tensorflow_on_every_image_of_the_test_archive(
    tiny_cam: ClassicCam, flatbuffer: bytes, tiny_archive: TinyArchive
) -> None:
    height, width = tiny_cam.input_size
    decoded = [load_model_input((tiny_archive.root / path).read_bytes(), height, width) for path in tiny_archive.good]
    batch = np.stack([model_input for _, model_input in decoded])
    reference = tiny_cam.traced()(batch)
    probabilities, classes, maps = LiteRtCam(flatbuffer, None, batch_size=len(batch))(batch)
    np.testing.assert_array_equal(classes, reference[1])
    np.testing.assert_allclose(probabilities, reference[0], rtol=0, atol=1e-4)
    for index, (rgb, _) in enumerate(decoded):
        image_height, image_width = rgb.shape[:2]
        _, expected = explain_cam(reference[2][index], image_width, image_height, 0.2)
        _, got = explain_cam(maps[index], image_width, image_height, 0.2)
        assert (got.peak_x, got.peak_y) == (expected.peak_x, expected.peak_y), tiny_archive.good[index]
        assert got.coverage == pytest.approx(expected.coverage, abs=0.01)


def test_outputs_do_not_depend_on_the_batch_size(tiny_cam: ClassicCam, flatbuffer: bytes) -> None:
    batch = random_batch(5, seed=7)
    model = LiteRtCam(flatbuffer, None, batch_size=8)
    whole = model(batch)
    parts = [model(batch[i : i + 2]) for i in range(0, 5, 2)]
    for output, joined in zip(whole, (np.concatenate(part) for part in zip(*parts, strict=True)), strict=True):
        np.testing.assert_array_equal(output, joined)


def test_a_list_of_images_gives_what_their_stacked_batch_gives(flatbuffer: bytes) -> None:
    # A list is stacked straight into the interpreter's input tensor; the view on it must be let go before the
    # call, and again before the next resize (a held view makes the runtime refuse both).
    model = LiteRtCam(flatbuffer, None, batch_size=4)
    for size, seed in ((4, 1), (3, 2), (4, 3)):
        batch = random_batch(size, seed=seed)
        stacked = model(batch)
        listed = model([image for image in batch])
        for left, right in zip(stacked, listed, strict=True):
            np.testing.assert_array_equal(left, right)


def test_concurrent_callers_each_get_their_own_interpreter(flatbuffer: bytes) -> None:
    batches = [random_batch(3, seed=seed) for seed in range(8)]
    serial = [LiteRtCam(flatbuffer, 0)(batch) for batch in batches]
    shared = LiteRtCam(flatbuffer, 0, interpreters=2, batch_size=3)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        concurrent_outputs = list(pool.map(shared, batches))
    for expected, got in zip(serial, concurrent_outputs, strict=True):
        for left, right in zip(expected, got, strict=True):
            np.testing.assert_array_equal(left, right)

"""The method template (transforms.methods.base): in-graph preprocessing, the explained class, one trace per worker."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import build_tiny_cam_model, random_batch
from transforms.methods.base import PREPROCESS_MODES, preprocess_fn
from transforms.methods.cam import ClassicCam, build_cam_model


def test_preprocess_modes_scale_in_graph() -> None:
    values = np.array([0.0, 127.5, 255.0], dtype=np.float32)
    np.testing.assert_array_equal(preprocess_fn("none")(values), values)
    np.testing.assert_allclose(preprocess_fn("mobilenet_v2")(values), [-1.0, 0.0, 1.0])
    assert PREPROCESS_MODES == ("none", "mobilenet_v2")
    with pytest.raises(ValueError, match="--preprocess"):
        preprocess_fn("imagenet")


@pytest.mark.parametrize("cam_class", [0, 1])
def test_traced_pass_with_a_fixed_class_explains_that_class_for_every_image(cam_class: int) -> None:
    model = build_tiny_cam_model(seed=3)
    batch = random_batch(4)
    _, classes, maps = ClassicCam(model, "none", cam_class).traced()(batch)
    np.testing.assert_array_equal(classes, [cam_class] * 4)
    np.testing.assert_allclose(maps, np.asarray(build_cam_model(model)(batch)[1])[..., cam_class], rtol=0, atol=1e-6)


def test_last_smaller_batch_does_not_retrace() -> None:
    run = ClassicCam(build_tiny_cam_model(), "none", None).traced()
    run(random_batch(8))
    run(random_batch(3))
    run(random_batch(1))
    assert run.traced.experimental_get_tracing_count() == 1

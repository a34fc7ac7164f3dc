"""Mixed precision for one model: a float16 backbone, a float32 CAM head, nothing process-wide."""

from __future__ import annotations

import keras
import numpy as np

from tests.conftest import build_tiny_cam_model, random_batch
from transforms.methods.cam import ClassicCam, build_cam_model
from transforms.mixed_precision import mixed_precision_clone


def test_mixed_precision_clone_computes_in_float16_and_keeps_the_head_float32() -> None:
    model = build_tiny_cam_model(seed=5)
    clone = mixed_precision_clone(model)
    policies = {layer.name: layer.dtype_policy.name for layer in clone.layers if layer.weights}
    assert policies["last_conv"] == "mixed_float16" and policies["classifier"] == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # no process-wide side effect
    batch = random_batch(4)
    probabilities, cams = (np.asarray(t) for t in build_cam_model(model)(batch, training=False))
    mixed_probabilities, mixed_cams = (np.asarray(t) for t in build_cam_model(clone)(batch, training=False))
    assert mixed_probabilities.dtype == np.float32 and mixed_cams.dtype == np.float32
    # float16 keeps ~3 significant digits: CAMs agree to 1 % of their range, argmaxes match.
    np.testing.assert_allclose(mixed_cams, cams, rtol=0, atol=1e-2 * float(np.abs(cams).max()))
    np.testing.assert_allclose(mixed_probabilities, probabilities, atol=1e-2)
    assert np.array_equal(mixed_cams.reshape(4, -1, 2).argmax(axis=1), cams.reshape(4, -1, 2).argmax(axis=1))
    # The traced pass of the clone hands back float32 too.
    traced_probabilities, _, traced_maps = ClassicCam(clone).traced()(batch)
    assert traced_probabilities.dtype == np.float32 and traced_maps.dtype == np.float32


def test_a_head_without_gap_stays_float32_and_hirescam_runs_on_the_clone() -> None:
    from tests.method_checks import build_flatten_head_model
    from transforms.methods.hirescam import HiResCam

    model = build_flatten_head_model(seed=5)
    clone = mixed_precision_clone(model)
    policies = {layer.name: layer.dtype_policy.name for layer in clone.layers if layer.weights}
    assert policies["last_conv"] == "mixed_float16"
    assert policies["hidden"] == policies["classifier"] == "float32"
    batch = random_batch(3)
    _, classes, maps = HiResCam(model).traced()(batch)
    _, mixed_classes, mixed_maps = HiResCam(clone).traced()(batch)
    assert mixed_maps.dtype == np.float32 and np.array_equal(mixed_classes, classes)
    np.testing.assert_allclose(mixed_maps, maps, rtol=0, atol=2e-2 * float(np.abs(maps).max()))

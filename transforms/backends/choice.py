"""Which backend runs a worker's forward passes; a LiteRT model is used only once it matches TensorFlow."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from transforms import files
from transforms.backends.litert import LiteRtCam, convert_cam_model, litert_installed
from transforms.backends.litert_cache import LiteRtCache
from transforms.methods.base import CamMethod, Explained
from transforms.model_files import file_sha256

_LOGGER = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorflow", "litert")
# Methods whose one-pass model LiteRT runs: classic CAM's is a plain forward pass. Gradient-based
# methods need TensorFlow's autodiff.
LITERT_METHODS = ("cam",)
# Largest difference from TensorFlow accepted on the probe inputs, in probability (and in CAM,
# relative to the map's largest magnitude).
PROBE_TOLERANCE = 1e-4
PROBE_IMAGES = 4


class LiteRtRefusedError(Exception):
    """Why LiteRT will not run this model in TensorFlow's place (the run then uses TensorFlow)."""


def check_backend(requested: str, mixed_precision: bool) -> None:
    """Fail fast on a --backend that cannot work here; ValueError naming the fix."""
    if requested not in BACKENDS:
        raise ValueError(f"--backend must be one of {BACKENDS}, got {requested!r}")
    if requested == "litert" and mixed_precision:
        raise ValueError("--backend litert runs float32 models; --mixed_precision needs --backend tensorflow")
    if requested == "litert" and not litert_installed():
        raise ValueError("--backend litert needs the ai-edge-litert package: pip install 'cam-audit[litert]'")


def wants_litert(requested: str, method: str, mixed_precision: bool, has_gpu: bool) -> bool:
    """Whether to try LiteRT: asked for, or `auto` on a CPU worker with float32 and the package installed."""
    if requested == "litert":
        return True
    return (requested == "auto" and not has_gpu and not mixed_precision and method in LITERT_METHODS
            and litert_installed())


def probe_batch(input_size: tuple[int, int], images: int = PROBE_IMAGES, seed: int = 0) -> np.ndarray:
    """Fixed random RGB 0..255 inputs the converted model is checked on."""
    height, width = input_size
    return np.random.default_rng(seed).uniform(0.0, 255.0, (images, height, width, 3)).astype(np.float32)


def outputs_mismatch(reference: Explained, candidate: Explained, tolerance: float = PROBE_TOLERANCE) -> str | None:
    """How two backends' outputs on the same inputs differ beyond `tolerance`, or None when they agree.

    Explained classes may differ only where TensorFlow's top two probabilities are within the tolerance.
    """
    ref_probabilities, ref_classes, ref_maps = reference
    probabilities, classes, maps = candidate
    if ref_maps.shape != maps.shape or ref_probabilities.shape != probabilities.shape:
        return f"output shapes differ: {ref_maps.shape} vs {maps.shape}"
    worst = float(np.max(np.abs(ref_probabilities - probabilities), initial=0.0))
    if not worst <= tolerance:
        return f"probabilities differ from TensorFlow's by up to {worst:.2g} (> {tolerance:g})"
    top_two = np.sort(ref_probabilities, axis=-1)[:, -2:] if ref_probabilities.shape[-1] > 1 else None
    clear = np.ones(len(ref_classes), bool) if top_two is None else top_two[:, 1] - top_two[:, 0] > tolerance
    if np.any((ref_classes != classes) & clear):
        return f"explained classes differ from TensorFlow's: {ref_classes.tolist()} vs {classes.tolist()}"
    scale = max(float(np.max(np.abs(ref_maps), initial=0.0)), 1e-12)
    map_error = float(np.max(np.abs(ref_maps - maps), initial=0.0)) / scale
    if not map_error <= tolerance * 10:
        return f"CAMs differ from TensorFlow's by up to {map_error:.2g} of their range"
    return None


def _probe_outputs(flatbuffer: bytes, method: CamMethod, probes: np.ndarray) -> Explained:
    """The flatbuffer's outputs on the probe inputs; LiteRtRefusedError when the runtime cannot run it."""
    try:
        return LiteRtCam(flatbuffer, method.cam_class, batch_size=len(probes))(probes)
    except Exception as error:  # the runtime's RuntimeError or ValueError, ...
        raise _refusal("run", error) from error


def _refusal(step: str, error: Exception) -> LiteRtRefusedError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    return LiteRtRefusedError(f"LiteRT could not {step} the model ({type(error).__name__}: {reason})")


def checked_flatbuffer(method: CamMethod, cache: LiteRtCache | None = None) -> bytes:
    """The method's one-pass model as a LiteRT flatbuffer that matches TensorFlow on probe inputs: `cache`'s entry
    when it has one that passes the check, else a fresh conversion. Only reads the cache: `prepare_output` keeps
    what the run uses (`LiteRtCache.keep`), once every check has passed.

    Raises:
        LiteRtRefusedError: the method has no LiteRT path, the package is missing, conversion or the
            runtime failed (an op LiteRT lacks), or the outputs differ from TensorFlow's.
    """
    if method.name not in LITERT_METHODS:
        raise LiteRtRefusedError(
            f"the {method.name!r} method has no LiteRT path (LiteRT runs {', '.join(LITERT_METHODS)})"
        )
    if not litert_installed():
        raise LiteRtRefusedError("the ai-edge-litert package is not installed (pip install 'cam-audit[litert]')")
    probes = probe_batch(method.input_size)
    reference = tuple(np.asarray(output) for output in method.explain(probes))
    cached = cache.load() if cache is not None else None
    if cached is not None:
        try:
            mismatch = outputs_mismatch(reference, _probe_outputs(cached, method, probes))  # type: ignore[arg-type]
        except LiteRtRefusedError as refused:
            mismatch = str(refused)
        if mismatch is None:
            return cached
        _LOGGER.warning("the cached LiteRT model %s failed its check (%s): converting the model again (the run "
                        "replaces the entry)",
                        cache.path, mismatch)  # type: ignore[union-attr]
    try:
        flatbuffer = convert_cam_model(method.cam_model)  # type: ignore[attr-defined] - ClassicCam's model
    except Exception as error:  # the converter's ConverterError, ...
        raise _refusal("convert", error) from error
    if mismatch := outputs_mismatch(reference, _probe_outputs(flatbuffer, method, probes)):  # type: ignore[arg-type]
        raise LiteRtRefusedError(mismatch)
    return flatbuffer


def flatbuffer_or_warn(method: CamMethod, cache: LiteRtCache | None = None) -> bytes | None:
    """`checked_flatbuffer`, or None after the one warning that says why TensorFlow runs instead."""
    try:
        return checked_flatbuffer(method, cache)
    except LiteRtRefusedError as refused:
        _LOGGER.warning("LiteRT backend not used, the model runs on TensorFlow instead: %s", refused)
        return None


def staged_flatbuffer(staged: tuple[str, str]) -> bytes:
    """The flatbuffer the launcher staged at (path, sha256); ValueError if it changed since."""
    flatbuffer = files.read_bytes(staged[0])
    if file_sha256(flatbuffer) != staged[1]:
        raise ValueError(f"the LiteRT model {staged[0]} changed since the launcher wrote it (SHA-256 differs)")
    return flatbuffer


def litert_or_warn(
    flatbuffer: bytes, cam_class: int | None, interpreters: int, num_threads: int, batch_size: int
) -> LiteRtCam | None:
    """The LiteRT forward function over a checked flatbuffer; None, after one warning, when this worker's runtime
    refuses it."""
    try:
        return LiteRtCam(flatbuffer, cam_class, interpreters, num_threads, batch_size)
    except (RuntimeError, ValueError) as error:  # the runtime refusing an op on this worker
        _LOGGER.warning("LiteRT backend not used, the model runs on TensorFlow instead: %s: %s",
                        type(error).__name__, error)
        return None


def litert_predict(
    method: CamMethod, staged: tuple[str, str] | None, interpreters: int, num_threads: int, batch_size: int,
) -> Callable[[np.ndarray], Explained] | None:
    """A worker's LiteRT forward function: from the flatbuffer the launcher staged ((path, sha256)), or
    converted and checked here; None, after one warning, when LiteRT cannot serve."""
    if not litert_installed():
        _LOGGER.warning("LiteRT backend not used, the model runs on TensorFlow instead: this worker lacks the "
                        "ai-edge-litert package (install cam-audit[litert] in the worker image)")
        return None
    flatbuffer = flatbuffer_or_warn(method) if staged is None else staged_flatbuffer(staged)
    if flatbuffer is None:
        return None
    return litert_or_warn(flatbuffer, method.cam_class, interpreters, num_threads, batch_size)

"""Heatmap rendering: JET-coloured CAM blended over the original image, and its encoding."""

from __future__ import annotations

import cv2
import numpy as np

HEATMAP_FORMATS = ("jpg", "png")
_JPEG_QUALITY = 90
# zlib level 1: PNG output ~4x faster to encode than OpenCV's default 3, files ~10% larger.
_PNG_COMPRESSION = 1


def render_overlay(rgb: np.ndarray, cam_full: np.ndarray, threshold: float, alpha: float = 0.5) -> np.ndarray:
    """BGR uint8 image: JET(CAM) blended at `alpha` where CAM >= threshold, the image elsewhere.

    Leaving pixels below the threshold uncoloured is the classic CAM recipe: the anatomy stays
    readable and only the regions that drove the decision are painted.
    """
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    mask = cam_full >= threshold
    if not mask.any():
        return bgr
    heat = cv2.applyColorMap(np.clip(cam_full * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(bgr, 1.0 - alpha, heat, alpha, 0.0)
    np.copyto(bgr, blended, where=mask[..., None])
    return bgr


def encode_image(bgr: np.ndarray, image_format: str) -> bytes:
    """Encode a BGR image as JPEG or PNG bytes."""
    if image_format == "jpg":
        ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    elif image_format == "png":
        ok, buffer = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESSION])
    else:
        raise ValueError(f"heatmap format must be one of {HEATMAP_FORMATS}, got {image_format!r}")
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {bgr.shape} image as {image_format}")
    return buffer.tobytes()

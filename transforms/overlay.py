"""Heatmap rendering: JET-coloured CAM blended over the original image, and its encoding."""

from __future__ import annotations

import cv2
import numpy as np

HEATMAP_FORMATS = ("jpg", "png")
# Longer side of a heatmap, in pixels. Every radiograph of a real archive (MURA's <= 512 px, a 43 cm
# flat-panel detector's ~3000 x 3500) stays full size; a larger image's heatmap is shrunk to at most
# 4096 x 4096 (48 MB of BGR to render and encode) instead of growing with the image.
DEFAULT_HEATMAP_MAX_SIDE = 4096
_JPEG_QUALITY = 90
# zlib level 1: PNG output much faster to encode than OpenCV's default 3, files slightly larger.
_PNG_COMPRESSION = 1
# OpenCV's JET colours of the 256 levels, one table per BGR channel for cv2.LUT: applyColorMap's own bytes,
# faster (bench/README.md, sessions 9 and 12).
_JET_BGR = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_JET).reshape(256, 3)
JET_CHANNEL_LUTS = tuple(np.ascontiguousarray(_JET_BGR[:, channel]) for channel in range(3))


def render_overlay(pixels: np.ndarray, cam_full: np.ndarray, threshold: float, alpha: float = 0.5) -> np.ndarray:
    """BGR uint8 image of grey (H x W) or RGB (H x W x 3) uint8 pixels: JET(CAM) blended at `alpha` where
    CAM >= threshold, the image elsewhere.

    Leaving pixels below the threshold uncoloured is the classic CAM recipe: the anatomy stays
    readable and only the regions that drove the decision are painted.
    """
    bgr = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR if pixels.ndim == 2 else cv2.COLOR_RGB2BGR)
    mask = cam_full >= threshold
    box = mask_box(mask)
    if box is None:
        return bgr
    # Colour, blend and copy only inside the box around the coloured pixels: outside it every pixel
    # stays the image's anyway, and a CAM blob rarely covers most of the image.
    region = bgr[box]
    heat = jet_colours(cam_to_uint8(cam_full[box]))
    blended = cv2.addWeighted(region, 1.0 - alpha, heat, alpha, 0.0)
    # cv2.copyTo with a uint8 mask: the same pixels as np.copyto(where=mask[..., None]), far faster.
    cv2.copyTo(blended, mask[box].view(np.uint8), region)
    return bgr


def jet_colours(levels: np.ndarray) -> np.ndarray:
    """H x W uint8 levels -> H x W x 3 BGR JET colours, byte for byte cv2.applyColorMap(levels, COLORMAP_JET)."""
    # Three one-channel lookups merged: no BGR copy of the levels first, and cv2.LUT's one-channel path is faster.
    return cv2.merge([cv2.LUT(levels, table) for table in JET_CHANNEL_LUTS])


def heatmap_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) of a heatmap: the image's, shrunk in proportion so the longer side is <= max_side."""
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit_to_side(pixels: np.ndarray, cam_full: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """The image (grey or RGB) and its full-size CAM, area-averaged down to heatmap_size (unchanged when they fit)."""
    height, width = pixels.shape[:2]
    size = heatmap_size(width, height, max_side)
    if size == (width, height):
        return pixels, cam_full
    return (
        cv2.resize(pixels, size, interpolation=cv2.INTER_AREA),
        cv2.resize(cam_full, size, interpolation=cv2.INTER_AREA),
    )


def mask_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """(rows, columns) slices of the smallest box holding every True of a 2-D mask; None when it has none."""
    # OpenCV's bounding box of the non-zero pixels: one pass, against numpy's two reductions over the mask.
    left, top, width, height = cv2.boundingRect(np.ascontiguousarray(mask, dtype=bool).view(np.uint8))
    if width == 0:
        return None
    return slice(top, top + height), slice(left, left + width)


def cam_to_uint8(cam_full: np.ndarray) -> np.ndarray:
    """Normalised CAM in [0, 1] -> uint8 0..255, rounded half up, in one scratch buffer."""
    scaled = cam_full * 255.0  # the input's float type, as the arithmetic always was
    scaled += 0.5
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


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

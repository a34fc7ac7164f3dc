"""Image decoding shared by inference and training: bytes -> grey or RGB uint8 -> model-sized float32 RGB."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from transforms.image_header import JPEG_START, PNG_SIGNATURE, ImageHeaderError, check_pixel_budget, image_size
from transforms.png_inflate import inflate_png

# OpenCV's own threads would fight TensorFlow's for the same cores; callers parallelise instead.
cv2.setNumThreads(1)

_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"

# How 16-bit grey becomes 8 bits. minmax: each image's own range stretched to 0..255 (detectors
# rarely fill 16 bits); scale: value * 255 / 65535, the same mapping for every image (fixed-window data).
SIXTEEN_BIT_MODES = ("minmax", "scale")
# Radiographs are at most ~3000 x 3500 px (a 43 cm detector at 0.14 mm); 50 MP leaves room for any
# real one while a decoded image stays a few hundred MB at worst (16-bit RGBA).
DEFAULT_MAX_PIXELS = 50_000_000


@dataclasses.dataclass(frozen=True)
class DecodePolicy:
    """How bytes become pixels: the pixel budget (--max_pixels, None: none) and the 16-bit map (--sixteen_bit)."""

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    sixteen_bit: str = "minmax"


class ImageDecodeError(ValueError):
    """The bytes are not a complete, decodable image; the message says what was wrong."""


def check_complete(data: bytes) -> None:
    """Reject empty files and PNG/JPEG files cut short, which decoders may half-decode silently."""
    if not data:
        raise ImageDecodeError("empty file: 0 bytes")
    if data.startswith(PNG_SIGNATURE):
        # The IEND chunk closes every complete PNG; trailing bytes after it are tolerated.
        if _PNG_END not in data[-4096:]:
            raise ImageDecodeError(f"truncated PNG: no IEND chunk ({len(data)} bytes)")
    elif data.startswith(JPEG_START):
        # libjpeg pads a cut JPEG with grey and only warns; the EOI marker proves completeness.
        if _JPEG_END not in data[-4096:]:
            raise ImageDecodeError(f"truncated JPEG: no end-of-image marker ({len(data)} bytes)")


def to_display_uint8(image: np.ndarray, sixteen_bit: str = "minmax") -> np.ndarray:
    """Any OpenCV-decoded image (grey, 16-bit grey, BGR, BGRA) -> H x W grey uint8 if it is grey (most
    radiographs), else H x W x 3 RGB uint8.

    Grey stays one channel up to the heatmap: a third of the bytes per image in flight, and no colour
    conversion the overlay would repeat (its BGR of the grey is the BGR of its RGB, byte for byte).
    """
    if image.dtype == np.uint16:
        image = sixteen_to_uint8(image, sixteen_bit)
    elif image.dtype != np.uint8:
        raise ImageDecodeError(f"unsupported pixel type: {image.dtype}")
    if image.ndim == 2:
        return image
    channels = image.shape[2]
    if channels == 1:
        return image[..., 0]
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:
        # Alpha is dropped, not composited: radiographs carry no meaning in transparency.
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ImageDecodeError(f"unsupported channel count: {channels}")


def to_rgb_uint8(image: np.ndarray, sixteen_bit: str = "minmax") -> np.ndarray:
    """Any OpenCV-decoded image -> H x W x 3 RGB uint8 (to_display_uint8, grey stacked to 3 channels)."""
    pixels = to_display_uint8(image, sixteen_bit)
    return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB) if pixels.ndim == 2 else pixels


def stretch_to_uint8(image: np.ndarray) -> np.ndarray:
    """Min-max stretch a high-bit-depth image to 0..255.

    X-ray detectors rarely fill 16 bits (12-bit data in a 16-bit PNG is common), so a fixed
    /257 scale would give near-black images; the stretch uses the range actually present.
    """
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros(image.shape, dtype=np.uint8)
    scaled = (image.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def scale_to_uint8(image: np.ndarray) -> np.ndarray:
    """16-bit values to 8 bits by the fixed map value * 255 / 65535, rounded: the same grey for every image."""
    return np.clip(image.astype(np.float32) * (255.0 / 65535.0) + 0.5, 0, 255).astype(np.uint8)


def sixteen_to_uint8(image: np.ndarray, mode: str) -> np.ndarray:
    """16-bit pixels to 8 bits by the --sixteen_bit policy (SIXTEEN_BIT_MODES)."""
    if mode == "minmax":
        return stretch_to_uint8(image)
    if mode == "scale":
        return scale_to_uint8(image)
    raise ValueError(f"--sixteen_bit must be one of {SIXTEEN_BIT_MODES}, got {mode!r}")


def decode_unchanged(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Encoded PNG/JPEG bytes -> the pixels as stored (grey, 16-bit grey, BGR, BGRA), checked complete.

    The size is read from the header first and, above `max_pixels`, refused before any pixel is
    decoded: a 876 KB PNG can hold 30000 x 30000 pixels (900 MB decoded, several GB on the way).
    """
    check_complete(data)
    try:
        width, height = image_size(data)
        if max_pixels is not None:
            check_pixel_budget(width, height, max_pixels)
    except ImageHeaderError as exc:
        raise ImageDecodeError(str(exc)) from exc
    inflated = inflate_png(data)
    image = None if inflated is None else cv2.imdecode(np.frombuffer(inflated, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:  # not a PNG the fast path takes, or damaged: the original bytes decide
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageDecodeError(f"not a decodable image: {len(data)} bytes, starts {data[:8]!r}")
    if image.size == 0:
        raise ImageDecodeError("image has no pixels: the decoder returned an empty array")
    return image


def decode_image(data: bytes, sixteen_bit: str = "minmax") -> np.ndarray:
    """Encoded PNG/JPEG (grey, 16-bit grey, RGB, RGBA, palette) bytes -> H x W x 3 RGB uint8."""
    return to_rgb_uint8(decode_unchanged(data), sixteen_bit)


def _resize_uint8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Any uint8 image to height x width, with the interpolation the model input uses."""
    src_height, src_width = image.shape[:2]
    # Area averaging when shrinking avoids aliasing of fine trabecular texture; bilinear to grow.
    shrinking = src_height >= height and src_width >= width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resize_for_model(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Grey or RGB uint8 at any size -> height x width x 3 RGB float32 in 0..255, the model's input.

    Grey is resized as its one channel and then stacked: the same bytes as resizing the three equal
    channels (OpenCV resizes channels independently), for a third of the work.
    """
    resized = _resize_uint8(pixels, height, width)
    if resized.ndim == 2:
        resized = cv2.cvtColor(resized, cv2.COLOR_GRAY2RGB)
    return resized.astype(np.float32)


def load_model_input(
    data: bytes,
    height: int,
    width: int,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    sixteen_bit: str = "minmax",
) -> tuple[np.ndarray, np.ndarray]:
    """Encoded bytes -> (original pixels, model input); the one loading path.

    The pixels are H x W uint8 for a grey image, H x W x 3 RGB uint8 otherwise; the model input is
    RGB float32. Raises ImageDecodeError for bytes that are not a complete PNG/JPEG or hold more than
    `max_pixels` pixels (None: no limit).
    """
    pixels = to_display_uint8(decode_unchanged(data, max_pixels), sixteen_bit)
    return pixels, resize_for_model(pixels, height, width)

"""Image sizes read from PNG/JPEG headers, against files written by OpenCV and Pillow."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from transforms.image_header import ImageHeaderError, check_pixel_budget, image_size, jpeg_size, png_size


def pillow_bytes(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def opencv_bytes(pixels: np.ndarray, ext: str) -> bytes:
    ok, buffer = cv2.imencode(ext, pixels)
    assert ok
    return buffer.tobytes()


GREY = np.arange(37 * 53, dtype=np.uint32).reshape(37, 53).astype(np.uint8)


@pytest.mark.parametrize(
    "data",
    [
        opencv_bytes(GREY, ".png"),
        opencv_bytes(GREY.astype(np.uint16) * 200, ".png"),
        opencv_bytes(np.dstack([GREY] * 3), ".jpg"),
        pillow_bytes(Image.fromarray(GREY).convert("P"), "PNG"),
        pillow_bytes(Image.fromarray(np.dstack([GREY] * 4), "RGBA"), "PNG"),
        pillow_bytes(Image.fromarray(GREY), "JPEG", progressive=True),  # SOF2
        pillow_bytes(Image.fromarray(GREY).convert("CMYK"), "JPEG"),
        # APP1 (EXIF) and a large APP2 before the frame header: segments are skipped by their length.
        pillow_bytes(Image.fromarray(GREY), "JPEG", exif=b"Exif\x00\x00" + b"\x00" * 300, icc_profile=b"\x01" * 5000),
    ],
    ids=["cv-grey", "cv-grey16", "cv-jpeg", "pil-palette", "pil-rgba", "pil-progressive", "pil-cmyk", "pil-app-segs"],
)
def test_header_size_matches_the_decoded_size(data: bytes) -> None:
    assert image_size(data) == (53, 37)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape[:2] == (37, 53)


def test_only_the_first_bytes_are_needed() -> None:
    png = opencv_bytes(GREY, ".png")
    assert png_size(png[:24]) == (53, 37)
    jpeg = pillow_bytes(Image.fromarray(GREY), "JPEG")
    start = jpeg.index(b"\xff\xc0")
    assert jpeg_size(jpeg[: start + 9]) == (53, 37)


def bomb_png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR for an image of any size: what a decompression bomb starts with."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_pixel_budget_names_the_size_and_the_limit() -> None:
    width, height = image_size(bomb_png_header(30000, 30000))
    assert (width, height) == (30000, 30000)
    with pytest.raises(ImageHeaderError, match=r"30000x30000 = 900,000,000 pixels, limit 50,000,000"):
        check_pixel_budget(width, height, 50_000_000)
    check_pixel_budget(7071, 7071, 50_000_000)  # 49,999,041 pixels: within


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello, I am text", "not a PNG or JPEG"),
        (b"GIF89a\x01\x00\x01\x00", "not a PNG or JPEG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "IHDR"),
        (bomb_png_header(0, 10), "empty image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "frame header"),  # cut inside the APP0 segment
        (b"\xff\xd8\x00\x00\x00\x00", "malformed JPEG"),
    ],
)
def test_unreadable_headers_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(ImageHeaderError, match=reason):
        image_size(data)

"""Image dimensions from the first bytes of a PNG or JPEG, read without decoding a pixel."""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_START = b"\xff\xd8"

# JPEG start-of-frame markers SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC)
# share the range but are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, with no length field: TEM, RST0..RST7, SOI.
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8), 0xD8])


class ImageHeaderError(ValueError):
    """The bytes do not start like a PNG or JPEG whose size can be read; the message says why."""


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, which the format requires to come first."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageHeaderError(f"PNG without an IHDR chunk: {len(data)} bytes")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        raise ImageHeaderError(f"empty image in the header: PNG of {width}x{height}")
    return width, height


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's first start-of-frame segment, skipping APPn and other segments."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ImageHeaderError(
                f"malformed JPEG header: segment expected at byte {position}, found {data[position]:#04x}"
            )
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_SOF:
            if position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            if width == 0 or height == 0:
                raise ImageHeaderError(f"empty image in the header: JPEG of {width}x{height}")
            return width, height
        position += 2 + length
    raise ImageHeaderError(f"JPEG without a frame header: none in its {len(data)} bytes")


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of PNG or JPEG bytes, from the header alone; anything else is an ImageHeaderError."""
    if data.startswith(PNG_SIGNATURE):
        return png_size(data)
    if data.startswith(JPEG_START):
        return jpeg_size(data)
    if not data:
        raise ImageHeaderError("empty file: 0 bytes")
    raise ImageHeaderError(f"not a PNG or JPEG file: {len(data)} bytes, starts {data[:8]!r}")


def check_pixel_budget(width: int, height: int, max_pixels: int) -> None:
    """Refuse an image above the pixel budget before it is decoded (a small file can hold a huge image)."""
    if width * height > max_pixels:
        raise ImageHeaderError(
            f"image above --max_pixels: {width}x{height} = {width * height:,} pixels, limit {max_pixels:,}; not decoded"
        )

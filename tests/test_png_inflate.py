"""The libdeflate path for PNG: OpenCV's pixels of the original bytes, and None wherever it must not apply."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from transforms import png_inflate
from transforms.imaging import ImageDecodeError, decode_unchanged
from transforms.png_inflate import inflate_png, png_chunks, scanline_bytes, stored_png

RNG = np.random.default_rng(15)


def opencv_png(image: np.ndarray, level: int = 3, strategy: int = cv2.IMWRITE_PNG_STRATEGY_DEFAULT) -> bytes:
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_STRATEGY, strategy])
    assert ok
    return encoded.tobytes()


def pillow_png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def as_decoded(data: bytes | bytearray) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_from_scanlines(ihdr: bytes, stream: bytes, idat_pieces: int = 1) -> bytes:
    """A PNG assembled by hand from an IHDR payload and a zlib stream split over `idat_pieces` IDAT chunks."""
    step = -(-len(stream) // idat_pieces)
    idats = b"".join(chunk(b"IDAT", stream[i : i + step]) for i in range(0, len(stream), step))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idats + chunk(b"IEND", b"")


def grey_scanlines(height: int, width: int) -> tuple[bytes, bytes]:
    """An 8-bit grey IHDR payload and its scanlines (filter byte 0 per row)."""
    rows = RNG.integers(0, 256, (height, width), dtype=np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    return struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0), raw


OPENCV_FLAVOURS = {
    "grey 8-bit": RNG.integers(0, 256, (37, 53), dtype=np.uint8),
    "grey 16-bit": RNG.integers(0, 65536, (29, 31), dtype=np.uint16),
    "BGR 8-bit": RNG.integers(0, 256, (23, 41, 3), dtype=np.uint8),
    "BGR 16-bit": RNG.integers(0, 65536, (17, 19, 3), dtype=np.uint16),
    "BGRA 8-bit": RNG.integers(0, 256, (21, 22, 4), dtype=np.uint8),
    "smooth radiograph-like grey": cv2.GaussianBlur(RNG.integers(0, 256, (300, 260), dtype=np.uint8), (0, 0), 6),
}


@pytest.mark.parametrize("flavour", sorted(OPENCV_FLAVOURS))
@pytest.mark.parametrize("level", [0, 1, 3, 9])
def test_opencv_written_pngs_decode_to_the_same_pixels(flavour: str, level: int) -> None:
    original = opencv_png(OPENCV_FLAVOURS[flavour], level)
    inflated = inflate_png(original)
    assert inflated is not None
    decoded = as_decoded(inflated)
    assert decoded.dtype == as_decoded(original).dtype
    np.testing.assert_array_equal(decoded, as_decoded(original))
    np.testing.assert_array_equal(decoded, OPENCV_FLAVOURS[flavour])


@pytest.mark.parametrize(
    "strategy", [cv2.IMWRITE_PNG_STRATEGY_FILTERED, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY, cv2.IMWRITE_PNG_STRATEGY_RLE]
)
def test_every_zlib_strategy_decodes_to_the_same_pixels(strategy: int) -> None:
    image = OPENCV_FLAVOURS["smooth radiograph-like grey"]
    np.testing.assert_array_equal(as_decoded(inflate_png(opencv_png(image, 6, strategy))), image)


@pytest.mark.parametrize(
    "mode,size",
    [("1", (13, 7)), ("L", (5, 3)), ("P", (31, 17)), ("LA", (11, 9)), ("I;16", (19, 23)), ("RGB", (1, 1))],
)
def test_pillow_written_pngs_of_other_depths_and_palettes_decode_the_same(mode: str, size: tuple[int, int]) -> None:
    pixels = RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    image = image.quantize(7) if mode == "P" else image.convert(mode)
    original = pillow_png(image)
    inflated = inflate_png(original)
    assert inflated is not None
    np.testing.assert_array_equal(as_decoded(inflated), as_decoded(original))


def test_sub_byte_rows_are_counted_with_their_padding() -> None:
    # 1-bit, 13 wide: 2 bytes of samples per row plus the filter byte; 16-bit RGBA: 8 bytes a pixel.
    assert scanline_bytes(13, 7, 1, 0) == 7 * 3
    assert scanline_bytes(5, 2, 16, 6) == 2 * (1 + 40)
    assert scanline_bytes(3, 1, 4, 3) == 1 + 2


def test_many_stored_blocks_and_idat_chunks_decode_the_same() -> None:
    # 65,535 bytes fill one stored block exactly: rows of 511 + 1 bytes over 2.5 blocks, split over 5 IDATs.
    ihdr, raw = grey_scanlines(320, 511)
    original = png_from_scanlines(ihdr, zlib.compress(raw, 6), idat_pieces=5)
    inflated = inflate_png(original)
    assert sum(kind == b"IDAT" for kind, _, _ in png_chunks(bytes(inflated))) == 1
    np.testing.assert_array_equal(as_decoded(inflated), as_decoded(original))


@pytest.mark.parametrize("length", [0, 1, 65534, 65535, 65536, 3 * 65535])
def test_the_stored_stream_is_a_valid_zlib_stream_with_correct_checks(length: int) -> None:
    raw = RNG.integers(0, 256, length, dtype=np.uint8).tobytes()
    png = bytes(stored_png(memoryview(b"HEAD"), raw, memoryview(b"TAIL")))
    assert png.startswith(b"HEAD") and png.endswith(b"TAIL")
    size, kind = struct.unpack(">I4s", png[4:12])
    payload = png[12 : 12 + size]
    assert kind == b"IDAT" and len(png) == 4 + 12 + size + 4
    # Checked with Python's own zlib, an implementation independent of libdeflate's.
    assert zlib.decompress(payload) == raw
    assert struct.unpack(">I", png[12 + size : 16 + size])[0] == zlib.crc32(kind + payload)


def test_decode_unchanged_uses_the_fast_path_and_returns_the_same_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    image = OPENCV_FLAVOURS["smooth radiograph-like grey"]
    data = opencv_png(image)
    calls = []
    monkeypatch.setattr("transforms.imaging.inflate_png", lambda d: calls.append(d) or inflate_png(d))
    np.testing.assert_array_equal(decode_unchanged(data), image)
    assert calls == [data]


def with_ihdr_byte(data: bytes, offset: int, value: int) -> bytes:
    """The PNG with one IHDR payload byte changed and the IHDR's CRC recomputed."""
    payload = bytearray(data[16:29])
    payload[offset] = value
    return data[:8] + chunk(b"IHDR", bytes(payload)) + data[33:]


def test_interlaced_animated_and_foreign_bytes_are_left_to_opencv() -> None:
    grey = opencv_png(OPENCV_FLAVOURS["grey 8-bit"])
    assert inflate_png(with_ihdr_byte(grey, 12, 1)) is None  # Adam7 interlace
    frames = [Image.fromarray(OPENCV_FLAVOURS["grey 8-bit"]), Image.fromarray(255 - OPENCV_FLAVOURS["grey 8-bit"])]
    assert inflate_png(pillow_png(frames[0], save_all=True, append_images=frames[1:])) is None  # APNG
    ok, jpeg = cv2.imencode(".jpg", OPENCV_FLAVOURS["grey 8-bit"])
    assert inflate_png(jpeg.tobytes()) is None
    assert inflate_png(b"") is None
    assert inflate_png(grey[:-12]) is None  # no IEND


def damaged(kind: str) -> bytes:
    ihdr, raw = grey_scanlines(40, 50)
    stream = zlib.compress(raw)
    if kind == "bad IDAT CRC":
        good = png_from_scanlines(ihdr, stream)
        at = good.index(b"IEND") - 8  # the IDAT's CRC, just before IEND's length
        return good[:at] + bytes([good[at] ^ 1]) + good[at + 1 :]
    if kind == "short stream":
        return png_from_scanlines(ihdr, zlib.compress(raw[:-50]))
    if kind == "long stream":
        return png_from_scanlines(ihdr, zlib.compress(raw + b"\x00" * 51))
    if kind == "extra data after the stream":
        return png_from_scanlines(ihdr, stream + b"\x00\x00\x00\x00")
    if kind == "cut stream":
        return png_from_scanlines(ihdr, stream[: len(stream) // 2])
    if kind == "preset dictionary":
        return png_from_scanlines(ihdr, b"\x78\xbb" + stream[2:])
    if kind == "bad filter byte":
        return png_from_scanlines(ihdr, zlib.compress(b"\x07" + raw[1:]))
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["bad IDAT CRC", "short stream", "long stream", "extra data after the stream", "cut stream", "preset dictionary"],
)
def test_damaged_image_data_is_left_to_opencv(kind: str) -> None:
    assert inflate_png(damaged(kind)) is None


@pytest.mark.parametrize(
    "kind",
    ["bad IDAT CRC", "short stream", "long stream", "extra data after the stream", "cut stream", "bad filter byte"],
)
def test_damaged_pngs_decode_or_fail_exactly_as_opencv_alone_does(kind: str) -> None:
    data = damaged(kind)
    plain = as_decoded(data)
    if plain is None:
        with pytest.raises(ImageDecodeError):
            decode_unchanged(data)
    else:
        np.testing.assert_array_equal(decode_unchanged(data), plain)


def test_images_above_the_inflated_budget_are_left_to_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    data = opencv_png(OPENCV_FLAVOURS["grey 8-bit"])
    monkeypatch.setattr(png_inflate, "MAX_INFLATED_BYTES", 37 * 54 - 1)
    assert inflate_png(data) is None
    monkeypatch.setattr(png_inflate, "MAX_INFLATED_BYTES", 37 * 54)
    assert inflate_png(data) is not None

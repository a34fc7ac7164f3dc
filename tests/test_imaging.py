"""Decoding every supported flavour, and the errors bad bytes give."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from transforms.imaging import (
    ImageDecodeError,
    decode_image,
    load_model_input,
    resize_for_model,
    stretch_to_uint8,
    to_display_uint8,
)

GREY = (np.arange(30 * 40) % 251).astype(np.uint8).reshape(30, 40)
RGB = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format=fmt)
    return buffer.getvalue()


def test_grey_png_is_stacked_to_three_equal_channels() -> None:
    rgb = decode_image(encode(GREY))
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], GREY)


def test_rgb_png_keeps_channel_order() -> None:
    np.testing.assert_array_equal(decode_image(encode(RGB)), RGB)


def test_rgba_png_drops_alpha() -> None:
    rgba = np.dstack([RGB, np.full((30, 40), 7, np.uint8)])
    np.testing.assert_array_equal(decode_image(encode(rgba)), RGB)


def test_palette_png_expands_to_its_colours() -> None:
    data = encode(RGB, mode="P")
    expected = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(decode_image(data), expected)


def test_sixteen_bit_grey_is_stretched_to_full_range() -> None:
    grey16 = (GREY.astype(np.uint16) * 16 + 100)  # 12-bit data in a 16-bit PNG
    data = cv2.imencode(".png", grey16)[1].tobytes()
    rgb = decode_image(data)
    assert rgb.dtype == np.uint8 and rgb.min() == 0 and rgb.max() == 255
    np.testing.assert_array_equal(rgb[..., 0], stretch_to_uint8(grey16))


def test_stretch_of_constant_image_is_black() -> None:
    assert stretch_to_uint8(np.full((3, 3), 900, np.uint16)).max() == 0


def test_jpeg_decodes_close_to_source() -> None:
    rgb = decode_image(encode(np.dstack([GREY] * 3), "JPEG"))
    assert rgb.shape == (30, 40, 3)
    assert np.abs(rgb[..., 0].astype(int) - GREY).mean() < 8


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (encode(RGB)[:100], "truncated PNG"),
        (encode(RGB, "JPEG")[:200], "truncated JPEG"),
        (b"GIF89a not really", "not a PNG or JPEG file"),
    ],
)
def test_bad_bytes_raise_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(data)


def test_corrupt_png_body_is_an_error() -> None:
    data = bytearray(encode(RGB))
    data[60:160] = b"\x00" * 100  # inside IDAT, IEND intact
    with pytest.raises(ImageDecodeError):
        decode_image(bytes(data))


def test_resize_for_model_gives_float_input_of_model_size() -> None:
    resized = resize_for_model(decode_image(encode(GREY)), 16, 24)
    assert resized.shape == (16, 24, 3) and resized.dtype == np.float32
    assert 0.0 <= resized.min() and resized.max() <= 255.0
    rgb, model_input = load_model_input(encode(RGB), 60, 80)  # growing uses bilinear
    assert rgb.shape == (30, 40, 3) and model_input.shape == (60, 80, 3)


@pytest.mark.parametrize("sixteen_bits", [False, True])
@pytest.mark.parametrize(("height", "width"), [(224, 224), (32, 48), (20, 90), (64, 64)])
def test_grey_model_input_equals_resizing_the_rgb_image(height: int, width: int, sixteen_bits: bool) -> None:
    grey = np.random.default_rng(height).integers(0, 256, (47, 61), dtype=np.uint8)  # shrinks, grows, both
    data = png16(grey.astype(np.uint16) * 257) if sixteen_bits else encode(grey)
    pixels, model_input = load_model_input(data, height, width)
    assert model_input.dtype == np.float32 and model_input.shape == (height, width, 3)
    np.testing.assert_array_equal(pixels, grey)
    # The three equal channels resized as one image, as a colour image is.
    rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    np.testing.assert_array_equal(model_input, cv2.resize(rgb, (width, height), interpolation=(
        cv2.INTER_AREA if height <= 47 and width <= 61 else cv2.INTER_LINEAR)).astype(np.float32))


def test_grey_images_stay_one_channel_and_colour_ones_become_rgb() -> None:
    assert load_model_input(encode(GREY), 8, 8)[0].shape == (30, 40)
    assert load_model_input(png16(TWELVE_BIT), 8, 8)[0].tolist() == decode_image(png16(TWELVE_BIT))[..., 0].tolist()
    np.testing.assert_array_equal(to_display_uint8(GREY[..., None]), GREY)  # a decoder's H x W x 1 grey
    np.testing.assert_array_equal(load_model_input(encode(RGB), 8, 8)[0], RGB)
    np.testing.assert_array_equal(load_model_input(encode(RGB, mode="P"), 8, 8)[0], decode_image(encode(RGB, mode="P")))


def test_an_image_above_the_pixel_budget_is_refused_before_decode() -> None:
    data = encode(GREY)  # 40 x 30 = 1,200 pixels
    with pytest.raises(ImageDecodeError, match=r"above --max_pixels: 40x30 = 1,200 pixels, limit 1,199"):
        load_model_input(data, 16, 16, max_pixels=1199)
    pixels, _ = load_model_input(data, 16, 16, max_pixels=1200)
    assert pixels.shape == (30, 40)


TWELVE_BIT = np.array([[0, 100, 4095], [2048, 1000, 3000]], dtype=np.uint16)  # 12-bit data in 16 bits


def png16(array: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", array)
    assert ok
    return buffer.tobytes()


def test_sixteen_bit_minmax_stretches_each_image_to_its_own_range() -> None:
    rgb = decode_image(png16(TWELVE_BIT), sixteen_bit="minmax")
    # (v - 0) * 255 / 4095, rounded half up: computed by hand
    expected = np.array([[0, 6, 255], [128, 62, 187]], dtype=np.uint8)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    assert decode_image(png16(TWELVE_BIT)).tolist() == rgb.tolist()  # minmax is the default


def test_sixteen_bit_scale_maps_every_image_by_the_same_window() -> None:
    rgb = decode_image(png16(TWELVE_BIT), sixteen_bit="scale")
    # v * 255 / 65535, rounded half up: 4095 -> 15.93 -> 16, 3000 -> 11.67 -> 12
    expected = np.array([[0, 0, 16], [8, 4, 12]], dtype=np.uint8)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    full = np.array([[0, 65535]], dtype=np.uint16)
    assert decode_image(png16(full), sixteen_bit="scale")[..., 0].tolist() == [[0, 255]]


def test_unknown_sixteen_bit_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="--sixteen_bit"):
        decode_image(png16(TWELVE_BIT), sixteen_bit="window")

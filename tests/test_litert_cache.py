"""Converted LiteRT models kept between runs (transforms/backends/litert_cache.py): keyed by everything that makes
them, used only once they pass the same check against TensorFlow as a fresh conversion, never required."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import pytest

import transforms.backends.choice as choice
from pipeline.build import plan_audit
from tests.conftest import TinyArchive
from tests.test_build import audit_options, base_args
from transforms.backends.choice import checked_flatbuffer
from transforms.backends.litert_cache import LiteRtCache, conversion_key, default_cache_dir, source_digest
from transforms.methods.cam import ClassicCam

SHA = "a" * 64


def test_the_key_changes_with_each_thing_the_flatbuffer_is_made_from() -> None:
    pytest.importorskip("tensorflow")
    key = conversion_key(SHA, "cam", "none")
    assert key == conversion_key(SHA, "cam", "none") and len(key) == 64
    assert len({key, conversion_key("b" * 64, "cam", "none"), conversion_key(SHA, "cam", "mobilenet_v2"),
                conversion_key(SHA, "gradcam", "none")}) == 4  # fmt: skip
    # The code that builds and converts the model is part of it: other sources, another digest.
    assert source_digest() == source_digest() != source_digest(("transforms.methods.base",))


def test_the_default_folder_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == str(tmp_path / "cam-audit" / "litert")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == str(tmp_path / "home" / ".cache" / "cam-audit" / "litert")


def test_an_entry_is_written_whole_and_a_cache_that_cannot_be_written_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = LiteRtCache(str(tmp_path / "cache"), "k" * 64)
    assert cache.load() is None
    cache.store(b"flatbuffer")
    assert cache.load() == b"flatbuffer" and [p.name for p in (tmp_path / "cache").iterdir()] == ["k" * 64 + ".tflite"]
    (tmp_path / "file").write_bytes(b"")
    blocked = LiteRtCache(str(tmp_path / "file" / "cache"), "k" * 64)  # under a file: no folder can be made
    with caplog.at_level(logging.WARNING):
        blocked.store(b"flatbuffer")
    assert blocked.load() is None and "the next run converts it again" in caplog.text


@pytest.fixture
def tiny_cam(tiny_model_path: Path) -> ClassicCam:
    pytest.importorskip("ai_edge_litert")
    return ClassicCam(keras.saving.load_model(tiny_model_path, compile=False))


def test_a_checked_entry_replaces_the_conversion_and_a_bad_one_is_converted_again(
    tiny_cam: ClassicCam, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = LiteRtCache(str(tmp_path), "k" * 64)
    converted = checked_flatbuffer(tiny_cam, cache)
    assert cache.load() == converted  # kept once checked
    real_convert = choice.convert_cam_model

    def no_conversion(model: object) -> bytes:
        raise AssertionError("converted although the cache holds a checked entry")

    monkeypatch.setattr(choice, "convert_cam_model", no_conversion)
    assert checked_flatbuffer(tiny_cam, cache) == converted
    # An entry that fails the check (here: not a flatbuffer at all) is never used: the model is converted again.
    monkeypatch.setattr(choice, "convert_cam_model", real_convert)
    cache.store(b"not a flatbuffer")
    with caplog.at_level(logging.WARNING, logger=choice.__name__):
        assert checked_flatbuffer(tiny_cam, cache) == converted
    assert "failed its check" in caplog.text and cache.load() == converted


def test_the_launcher_converts_a_model_once_and_an_empty_folder_keeps_nothing(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ai_edge_litert")
    argv = [*base_args(tiny_archive, tiny_model_path, tmp_path / "out"), "--backend", "litert",
            "--litert_cache_dir", str(tmp_path / "cache")]  # fmt: skip
    first = plan_audit(audit_options(argv))
    assert first.litert_flatbuffer is not None and len(list((tmp_path / "cache").iterdir())) == 1
    real_convert = choice.convert_cam_model
    conversions: list[object] = []
    monkeypatch.setattr(choice, "convert_cam_model", lambda model: conversions.append(model) or real_convert(model))
    assert plan_audit(audit_options(argv)).litert_flatbuffer == first.litert_flatbuffer and not conversions
    uncached = [*argv[:-1], ""]
    assert plan_audit(audit_options(uncached)).litert_flatbuffer == first.litert_flatbuffer
    assert len(conversions) == 1 and len(list((tmp_path / "cache").iterdir())) == 1

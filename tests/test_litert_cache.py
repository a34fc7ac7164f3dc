"""Converted LiteRT models kept between runs (transforms/backends/litert_cache.py): keyed by everything that makes
them, used only once they pass the same check against TensorFlow as a fresh conversion, never required."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import keras
import pytest

import transforms.backends.choice as choice
from pipeline.build import plan_audit, prepare_output
from tests.conftest import TinyArchive, build_tiny_cam_model
from tests.test_build import audit_options, base_args
from transforms import files
from transforms.backends.choice import checked_flatbuffer
from transforms.backends.litert_cache import (
    LiteRtCache,
    check_cache_dir,
    conversion_key,
    default_cache_dir,
    source_digest,
    unsafe_cache_dir,
)
from transforms.methods.cam import ClassicCam

SHA = "a" * 64


def test_the_key_changes_with_each_thing_the_flatbuffer_is_made_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tf = pytest.importorskip("tensorflow")
    key = conversion_key(SHA, "cam", "none")
    assert key == conversion_key(SHA, "cam", "none") and len(key) == 64
    assert len({key, conversion_key("b" * 64, "cam", "none"), conversion_key(SHA, "cam", "mobilenet_v2"),
                conversion_key(SHA, "gradcam", "none")}) == 4  # fmt: skip
    monkeypatch.setattr(tf, "__version__", tf.__version__ + ".other")
    assert conversion_key(SHA, "cam", "none") != key  # another converter
    # The code is part of it: the same module names, one file edited, another digest.
    (tmp_path / "cache_probe_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_digest(("cache_probe_module",))
    (tmp_path / "cache_probe_module.py").write_text("VALUE = 2\n")
    assert source_digest(("cache_probe_module",)) != before


def test_the_default_folder_follows_xdg_cache_home_and_needs_absolute_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == str(tmp_path / "cam-audit" / "litert")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec ignores a relative path
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == str(tmp_path / "home" / ".cache" / "cam-audit" / "litert")
    monkeypatch.delenv("XDG_CACHE_HOME")
    for home in ("", "/"):  # no usable home: no cache rather than one under the working folder or /
        monkeypatch.setenv("HOME", home)
        assert default_cache_dir() == ""
    with pytest.raises(ValueError, match="local folder"):
        check_cache_dir("gs://bucket/cache")
    check_cache_dir(str(tmp_path))


def test_an_entry_is_written_whole_kept_private_and_a_cache_that_cannot_be_written_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = LiteRtCache(str(tmp_path / "cache"), "k" * 64)
    assert cache.load() is None
    cache.store(b"flatbuffer")
    assert cache.load() == b"flatbuffer" and [p.name for p in (tmp_path / "cache").iterdir()] == ["k" * 64 + ".tflite"]
    assert (tmp_path / "cache").stat().st_mode & 0o077 == 0  # only its user may plant an entry
    (tmp_path / "file").write_bytes(b"")
    blocked = LiteRtCache(str(tmp_path / "file" / "cache"), "k" * 64)  # under a file: no folder can be made
    with caplog.at_level(logging.WARNING):
        blocked.store(b"flatbuffer")
    assert blocked.load() is None and "the next run converts it again" in caplog.text


def test_keep_marks_an_entry_used_or_replaces_it_and_only_the_caches_own_old_files_go(tmp_path: Path) -> None:
    cache = LiteRtCache(str(tmp_path), "k" * 64)
    old_entry, abandoned = tmp_path / ("0" * 64 + ".tflite"), tmp_path / f"{files.TEMP_PREFIX}{'1' * 32}"
    recent = tmp_path / f"{files.TEMP_PREFIX}{'3' * 32}"
    foreign = [tmp_path / "my_model.tflite", tmp_path / "notes.tmp", tmp_path / ("A" * 64 + ".tflite")]
    long_ago = time.time() - 40 * 24 * 3600
    for path in (old_entry, abandoned, recent, *foreign):
        path.write_bytes(b"x")
        os.utime(path, (long_ago, long_ago) if path != recent else None)
    cache.keep(b"one")  # absent: stored, and the cache's own stale files go; a user's files stay, however old
    assert cache.load() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([recent.name, Path(cache.path).name,
                                                                  *(p.name for p in foreign)])  # fmt: skip
    os.utime(cache.path, (long_ago, long_ago))
    cache.keep(b"one")  # the same bytes: only marked as used
    assert Path(cache.path).stat().st_mtime > long_ago + 3600
    cache.keep(b"two")  # other bytes (an entry that failed its check): replaced
    assert cache.load() == b"two"


def test_a_folder_others_can_write_or_another_users_is_not_trusted(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert unsafe_cache_dir(str(tmp_path / "absent")) is None  # made private when first written
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert unsafe_cache_dir(str(shared)) == "others may write to it"
    shared.chmod(0o755)
    assert unsafe_cache_dir(str(shared)) is None
    if os.getuid() == 0:  # root can hand a folder to another user: its models are not trusted either
        os.chown(shared, 65534, 65534)
        assert unsafe_cache_dir(str(shared)) == "it belongs to another user"
    shared.chmod(0o777)
    pytest.importorskip("ai_edge_litert")
    argv = [*base_args(tiny_archive, tiny_model_path, tmp_path / "out"), "--backend", "litert",
            "--litert_cache_dir", str(shared)]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        plan = plan_audit(audit_options(argv))
    assert plan.litert_cache is None and plan.litert_flatbuffer is not None
    assert "not used" in caplog.text and "converted at every run" in caplog.text


@pytest.fixture
def tiny_cam(tiny_model_path: Path) -> ClassicCam:
    pytest.importorskip("ai_edge_litert")
    return ClassicCam(keras.saving.load_model(tiny_model_path, compile=False))


def test_a_checked_entry_replaces_the_conversion_and_one_that_fails_is_converted_again(
    tiny_cam: ClassicCam, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = LiteRtCache(str(tmp_path), "k" * 64)
    converted = checked_flatbuffer(tiny_cam, cache)
    assert cache.load() is None  # planning only reads the cache
    cache.keep(converted)
    real_convert = choice.convert_cam_model

    def no_conversion(model: object) -> bytes:
        raise AssertionError("converted although the cache holds a checked entry")

    monkeypatch.setattr(choice, "convert_cam_model", no_conversion)
    assert checked_flatbuffer(tiny_cam, cache) == converted
    monkeypatch.setattr(choice, "convert_cam_model", real_convert)
    # Entries that fail the check are never used: bytes the runtime refuses, and another model's flatbuffer,
    # which runs but disagrees with TensorFlow.
    other_model = checked_flatbuffer(ClassicCam(build_tiny_cam_model(seed=1)))
    for bad, reason in ((b"not a flatbuffer", "could not run"), (other_model, "differ from TensorFlow")):
        cache.store(bad)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=choice.__name__):
            assert checked_flatbuffer(tiny_cam, cache) == converted
        assert "failed its check" in caplog.text and reason in caplog.text


def test_the_launcher_converts_a_model_once_keeps_it_after_the_checks_and_an_empty_folder_keeps_nothing(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ai_edge_litert")
    argv = [*base_args(tiny_archive, tiny_model_path, tmp_path / "out"), "--backend", "litert",
            "--litert_cache_dir", str(tmp_path / "cache")]  # fmt: skip
    first = plan_audit(audit_options(argv))
    assert first.litert_flatbuffer is not None and not (tmp_path / "cache").exists()  # planning writes nothing
    prepare_output(first)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    real_convert = choice.convert_cam_model
    conversions: list[object] = []
    monkeypatch.setattr(choice, "convert_cam_model", lambda model: conversions.append(model) or real_convert(model))
    assert plan_audit(audit_options(argv)).litert_flatbuffer == first.litert_flatbuffer and not conversions
    # Another --preprocess is another graph: converted afresh, its own entry.
    scaled = plan_audit(audit_options([*argv, "--preprocess", "mobilenet_v2"]))
    assert len(conversions) == 1 and scaled.litert_cache.key != first.litert_cache.key
    uncached = plan_audit(audit_options([*argv[:-1], ""]))
    assert uncached.litert_flatbuffer == first.litert_flatbuffer and uncached.litert_cache is None
    assert len(conversions) == 2
    with pytest.raises(ValueError, match="local folder"):
        plan_audit(audit_options([*argv[:-1], "s3://bucket/cache"]))

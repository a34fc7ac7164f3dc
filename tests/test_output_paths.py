"""The output folder's names; heatmap paths mirror the manifest path and never leave the heatmaps folder."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from transforms.output_paths import (
    ERROR_PREFIX,
    HEATMAPS_DIR,
    OK_PREFIX,
    RECORDS_DIR,
    RUN_INFO_FILE,
    heatmap_relative_path,
    heatmaps_dir,
    is_uri,
    join_path,
    records_dir,
)


@pytest.mark.parametrize(
    ("image_path", "expected"),
    [
        ("MURA-v1.1/valid/XR_WRIST/p1/s1/image1.png", "MURA-v1.1/valid/XR_WRIST/p1/s1/image1.png.jpg"),
        ("../../etc/passwd", "_up/_up/etc/passwd.jpg"),
        ("a/./b/../../../c.png", "_up/c.png.jpg"),
        ("/abs/x.png", "_abs/abs/x.png.jpg"),
        ("gs://bucket/a/b.png", "_uri/gs/bucket/a/b.png.jpg"),
        ("C:\\scans\\y.png", "_abs/C/scans/y.png.jpg"),
        ("..", "_up.jpg"),
        ("a/b:c?.png", "a/b_c_.png.jpg"),
    ],
)
def test_heatmap_relative_path_mapping(image_path: str, expected: str) -> None:
    assert heatmap_relative_path(image_path, "jpg") == expected


@pytest.mark.parametrize(
    "image_path",
    ["../../../x.png", "/etc/passwd", "a/../../b.png", "gs://b/../../x", "..\\..\\x.png", "./../.", "", "//x/y"],
)
def test_heatmap_paths_stay_inside_the_folder(tmp_path: Path, image_path: str) -> None:
    root = tmp_path / "heatmaps"
    full = os.path.realpath(join_path(str(root), heatmap_relative_path(image_path, "png")))
    assert full.startswith(str(root.resolve()) + os.sep)


def test_png_and_jpg_sources_do_not_collide() -> None:
    assert heatmap_relative_path("s/image1.png", "jpg") != heatmap_relative_path("s/image1.jpg", "jpg")


def test_join_path_handles_uris() -> None:
    assert join_path("gs://b/out/", "heatmaps", "a.jpg") == "gs://b/out/heatmaps/a.jpg"
    assert join_path("gs://b/out", "records", "*.parquet") == "gs://b/out/records/*.parquet"
    assert join_path("s3://b", "run_info.json") == "s3://b/run_info.json"


def test_join_path_handles_local_paths(tmp_path: Path) -> None:
    assert join_path(str(tmp_path), "heatmaps", "a.jpg") == os.path.join(str(tmp_path), "heatmaps", "a.jpg")
    assert join_path("out/", "records") == os.path.join("out", "records")
    assert join_path("/data/out", "run_info.json") == os.path.join("/data/out", "run_info.json")


def test_is_uri_tells_schemes_from_local_paths() -> None:
    assert is_uri("gs://b/x") and is_uri("s3://b") and is_uri("memory://x")
    assert not is_uri("/data/x") and not is_uri("C:\\data") and not is_uri("relative/x")


def test_output_folder_names() -> None:
    assert (HEATMAPS_DIR, RECORDS_DIR, RUN_INFO_FILE) == ("heatmaps", "records", "run_info.json")
    assert (OK_PREFIX, ERROR_PREFIX) == ("part", "errors")
    assert heatmaps_dir("gs://b/out") == "gs://b/out/heatmaps" and records_dir("gs://b/out/") == "gs://b/out/records"
    assert records_dir("/out") == os.path.join("/out", "records")
    assert heatmaps_dir("out") == os.path.join("out", "heatmaps")


def test_a_long_name_keeps_its_heatmap_name_within_255_bytes() -> None:
    fits = "é" * 100 + "x" * 47 + ".png"  # 255 bytes with ".jpg" appended: kept as is
    assert heatmap_relative_path(f"dir/{fits}", "jpg") == f"dir/{fits}.jpg"
    long_a, long_b = "a" * 250 + "1.png", "a" * 250 + "2.png"  # 255 bytes each: too long with ".jpg"
    name_a = heatmap_relative_path(long_a, "jpg")
    assert len(name_a.encode()) == 255 and name_a.endswith(".jpg") and name_a.startswith("a" * 200)
    assert name_a != heatmap_relative_path(long_b, "jpg")  # the hash keeps them apart


def test_plain_paths_take_the_short_way_to_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    # The full rules, with the shortcut for plain relative paths turned off, are the reference.
    import transforms.output_paths as output_paths

    rng = random.Random(7)
    alphabet = "ab._-/Z9:\\ \x01*é"
    paths = ["MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/image1.png", "a/./b.png", "a/b/", "a//b.png",
             "-x/.y", "x/..", "x" * 251, "x" * 252, "d/" + "n" * 251, "d/" + "n" * 252, "."]
    paths += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    fast = [heatmap_relative_path(path, image_format) for path in paths for image_format in ("jpg", "png")]
    monkeypatch.setattr(output_paths, "_PLAIN_PATH", re.compile(r"(?!)"))  # matches nothing
    assert fast == [heatmap_relative_path(path, image_format) for path in paths for image_format in ("jpg", "png")]

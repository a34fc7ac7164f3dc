"""Heatmap paths mirror the manifest path and never leave the heatmaps folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transforms.output_paths import heatmap_relative_path, join_output


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
    full = os.path.realpath(join_output(str(root), heatmap_relative_path(image_path, "png")))
    assert full.startswith(str(root.resolve()) + os.sep)


def test_png_and_jpg_sources_do_not_collide() -> None:
    assert heatmap_relative_path("s/image1.png", "jpg") != heatmap_relative_path("s/image1.jpg", "jpg")


def test_join_output_handles_uris() -> None:
    assert join_output("gs://b/out/", "heatmaps", "a.jpg") == "gs://b/out/heatmaps/a.jpg"

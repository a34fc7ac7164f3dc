"""MURA path parsing, labeled-studies files, generic CSV lines and path resolution."""

from __future__ import annotations

import os

import pytest

from transforms.mura import (
    PathOutsideRootError,
    clean_line,
    csv_entry,
    default_data_root,
    detect_format,
    is_csv_header,
    mura_entry,
    mura_image_path,
    mura_study_dir,
    parse_csv_header,
    parse_labeled_studies,
    parse_mura_path,
    resolve_image_path,
)

PATH = "MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/image1.png"


def test_parse_mura_path_fields() -> None:
    info = parse_mura_path(PATH)
    assert info is not None
    assert info.split == "valid" and info.body_part == "XR_WRIST" and info.patient_id == "patient11185"
    assert info.study_id == "MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive"
    assert info.label == 1
    negative = parse_mura_path("MURA-v1.1/train/XR_SHOULDER/patient00001/study3_negative/image2.png")
    assert negative is not None and negative.label == 0 and negative.split == "train"


def test_parse_mura_path_with_prefix_and_backslashes() -> None:
    info = parse_mura_path("gs://bucket/data/MURA-v1.1\\valid\\XR_HAND\\patient00002\\study2_negative\\image3.png")
    assert info is not None and info.body_part == "XR_HAND" and info.label == 0
    assert info.study_id.endswith("XR_HAND/patient00002/study2_negative")


@pytest.mark.parametrize("path", ["images/a.png", "MURA-v1.1/valid/wrist/patient1/study1_positive/x.png", ""])
def test_non_mura_paths_are_none(path: str) -> None:
    assert parse_mura_path(path) is None


def test_clean_line_strips_crlf_spaces_and_bom() -> None:
    assert clean_line("\ufeff a/b.png \r\n") == "a/b.png"
    assert clean_line("  \r") == ""


def test_labeled_studies_parse_and_override() -> None:
    text = "MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/,0\r\n\n"
    labels = parse_labeled_studies(text, "labels.csv")
    assert labels == {"MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive": 0}
    assert mura_entry(PATH, labels).label == 0  # the labels file wins over the folder name
    assert mura_entry(PATH, None).label == 1


def test_labeled_studies_bad_label_names_the_line() -> None:
    with pytest.raises(ValueError, match="labels.csv:2"):
        parse_labeled_studies("a/,1\nb/,maybe\n", "labels.csv")


def test_mura_entry_outside_mura_layout_is_audited_with_a_note() -> None:
    entry = mura_entry("MURA-v1.1/extra/XR_HAND/patient99991 x/study1_positive/image 1.png", None)
    assert entry.error is None and entry.image_path.endswith("image 1.png")
    assert (entry.study_id, entry.patient_id, entry.body_part, entry.split, entry.label) == (None,) * 5
    assert "not in MURA v1.1's layout" in (entry.metadata_note or "")
    assert mura_entry(PATH, None).metadata_note is None


def test_csv_entry_without_study_says_why() -> None:
    columns = parse_csv_header("image_path,label")
    assert "no study_id" in (csv_entry("scans/a.png,1", columns, None).metadata_note or "")
    assert csv_entry(f"{PATH},1", columns, None).metadata_note is None


@pytest.mark.parametrize("path", ["../outside.png", "a/../../outside.png", "..", "a/..\\..\\x.png"])
def test_relative_path_climbing_out_of_the_root_is_refused(path: str) -> None:
    with pytest.raises(PathOutsideRootError, match="outside --data_root"):
        resolve_image_path(path, "/data/root")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a/../b.png", os.path.join("/data/root", "a/../b.png")),  # stays inside: joined as written
        ("/abs/x.png", "/abs/x.png"),
        ("gs://bucket/x.png", "gs://bucket/x.png"),
        ("..hidden/x.png", os.path.join("/data/root", "..hidden/x.png")),
    ],
)
def test_paths_that_stay_inside_or_are_absolute_resolve(path: str, expected: str) -> None:
    assert resolve_image_path(path, "/data/root") == expected


def test_csv_manifest_lines() -> None:
    columns = parse_csv_header("image_path,label,body_part")
    assert is_csv_header("Image_Path , label,body_part", columns)
    entry = csv_entry('"dir, with comma/a.png",1,XR_HAND', columns, None)
    assert entry.image_path == "dir, with comma/a.png" and entry.label == 1 and entry.body_part == "XR_HAND"
    assert csv_entry("b.png,,", columns, None).label is None
    assert csv_entry(",1,", columns, None).error is not None
    assert "bad label" in (csv_entry("c.png,yes,", columns, None).error or "")
    mura = csv_entry(f"{PATH},,", columns, None)  # MURA fields are still derived from the path
    assert mura.label == 1 and mura.patient_id == "patient11185"


def test_csv_header_must_name_image_path() -> None:
    with pytest.raises(ValueError, match="image_path"):
        parse_csv_header("path,label")


def test_detect_format() -> None:
    assert detect_format("image_path,label") == "csv"
    assert detect_format(PATH) == "mura"


def test_default_data_root_and_resolution(tmp_path: os.PathLike) -> None:
    manifest = os.path.join(str(tmp_path), "MURA-v1.1", "valid_image_paths.csv")
    assert default_data_root(manifest, "mura") == str(tmp_path)
    assert default_data_root(manifest, "csv") == os.path.join(str(tmp_path), "MURA-v1.1")
    assert default_data_root("gs://b/MURA-v1.1/valid.csv", "mura") == "gs://b"
    assert default_data_root("gs://b/valid.csv", "mura") == "gs://b"  # never above the bucket
    assert resolve_image_path("a/b.png", "/data") == "/data/a/b.png"
    assert resolve_image_path("a/b.png", "gs://b/root/") == "gs://b/root/a/b.png"
    assert resolve_image_path("/abs/b.png", "/data") == "/abs/b.png"
    assert resolve_image_path("s3://x/b.png", "/data") == "s3://x/b.png"


def test_mura_study_dir_and_image_path_build_what_parse_mura_path_reads() -> None:
    study = mura_study_dir("valid", "XR_WRIST", 11185, 1, 1)
    assert study == "MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/"
    assert mura_image_path(study, 1) == PATH
    negative = mura_image_path(mura_study_dir("train", "XR_SHOULDER", 1, 3, 0), 2)
    assert negative == "MURA-v1.1/train/XR_SHOULDER/patient00001/study3_negative/image2.png"
    info = parse_mura_path(negative)
    assert info is not None and (info.split, info.body_part, info.patient_id, info.label) == (
        "train", "XR_SHOULDER", "patient00001", 0)
    assert info.study_id + "/" == mura_study_dir("train", "XR_SHOULDER", 1, 3, 0)

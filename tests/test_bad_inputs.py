"""A generated bad-input corpus, end to end: every line gets its documented row, in one process and in several."""

from __future__ import annotations

import dataclasses
import io
import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.run import run

MAX_PIXELS = 1_000_000  # small, so that the pixel bomb below stays cheap to generate
LONG_NAME = "long_" + "n" * 220 + ".png"
ODD_NAME = "odd dir é/spaced name %41 #1 ?q=1.png"


@dataclasses.dataclass(frozen=True)
class Corpus:
    root: Path  # --data_root
    manifest: Path
    lines: list[str]  # the manifest's non-blank lines, as written
    expected: dict[str, str | None]  # image path -> None (ok row) or a phrase its error must contain


def png(pixels: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", pixels)
    assert ok
    return buffer.tobytes()


def pillow(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def write_corpus(base: Path) -> Corpus:
    """Every kind of bad (and awkward but good) input the issue lists, with the outcome each must have."""
    root = base / "data"
    rng = np.random.default_rng(7)
    grey = rng.integers(0, 256, (48, 40), dtype=np.uint8)
    good_png, good_jpeg = png(grey), pillow(Image.fromarray(grey), "JPEG")
    files: dict[str, bytes] = {
        "truncated.png": good_png[: len(good_png) // 2],
        "truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "zero.png": b"",
        "text.png": b"this is a text file, not an image\n",
        "jpeg_named.png": good_jpeg,
        "one_pixel.png": png(np.full((1, 1), 128, np.uint8)),
        "wide_4000x20.png": png(rng.integers(0, 256, (20, 4000), dtype=np.uint8)),
        "rgba.png": pillow(Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 200)]), "RGBA"), "PNG"),
        "palette.png": pillow(Image.fromarray(grey).convert("P"), "PNG"),
        "grey16_full.png": png(grey.astype(np.uint16) * 257),
        "grey16_12bit.png": png(grey.astype(np.uint16) * 16),
        "cmyk.jpg": pillow(Image.fromarray(np.dstack([grey] * 3)).convert("CMYK"), "JPEG"),
        "animated.png": pillow(Image.fromarray(grey), "PNG", save_all=True,
                               append_images=[Image.fromarray(255 - grey)]),
        # 1,001 x 1,000 black pixels: a few KB on disk, just above the --max_pixels of the run
        "bomb.png": png(np.zeros((1000, 1001), np.uint8)),
        "MURA-v1.1/extra/XR_HAND/patient99991 x/study1_positive/image 1.png": good_png,
        ODD_NAME: good_png,
        LONG_NAME: good_png,
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "folder.png").mkdir()
    (base / "outside.png").write_bytes(good_png)  # exists: only the refusal keeps it unread
    absolute = base / "elsewhere" / "absolute.png"
    absolute.parent.mkdir()
    absolute.write_bytes(good_png)

    expected: dict[str, str | None] = {
        "truncated.png": "truncated PNG",
        "truncated.jpg": "truncated JPEG",
        "zero.png": "empty file",
        "text.png": "not a PNG or JPEG file",
        "jpeg_named.png": None,  # content decides, not the extension
        "folder.png": "a folder, not a file",
        "missing.png": "file not found",
        "one_pixel.png": None,
        "wide_4000x20.png": None,
        "rgba.png": None,
        "palette.png": None,
        "grey16_full.png": None,
        "grey16_12bit.png": None,
        "cmyk.jpg": None,
        "animated.png": None,  # its first frame
        "bomb.png": "image above --max_pixels: 1001x1000 = 1,001,000 pixels, limit 1,000,000",
        "../outside.png": "path outside --data_root",
        "sub/../../outside.png": "path outside --data_root",
        str(absolute): None,
        "ftp://example.invalid/MURA-v1.1/valid/XR_HAND/patient1/study1_positive/image1.png":
            "no filesystem for this location",
        "MURA-v1.1/extra/XR_HAND/patient99991 x/study1_positive/image 1.png": None,
        ODD_NAME: None,
        LONG_NAME: None,
    }  # fmt: skip
    lines = [*expected, "one_pixel.png"]  # a duplicate line: two rows
    text = "\ufeff" + "\r\n\r\n".join(lines) + "\r\n  \r\n"  # BOM, CRLF, blank and whitespace-only lines
    manifest = base / "corpus_image_paths.csv"
    manifest.write_bytes(text.encode("utf-8"))
    return Corpus(root, manifest, lines, expected)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def audit(corpus: Corpus, model: Path, output: Path, *extra: str) -> list[dict]:
    run(["--manifest", str(corpus.manifest), "--data_root", str(corpus.root), "--model", str(model),
         "--output", str(output), "--batch_size", "4", "--max_pixels", str(MAX_PIXELS), *extra])  # fmt: skip
    return pq.read_table(output / "records").to_pylist()


def check_outcomes(corpus: Corpus, output: Path, rows: list[dict]) -> None:
    assert len(rows) == len(corpus.lines)  # conservation: one row per non-blank line
    assert sorted(r["image_path"] for r in rows) == sorted(corpus.lines)  # recorded exactly as written
    for row in rows:
        phrase = corpus.expected[row["image_path"]]
        if phrase is None:
            assert row["status"] == "ok", (row["image_path"], row["error"])
            heatmap = cv2.imread(row["heatmap_path"])
            assert heatmap is not None and Path(row["heatmap_path"]).is_relative_to(output / "heatmaps")
        else:
            assert row["status"] == "error" and phrase in row["error"], (row["image_path"], row["error"])
    assert [p for p in output.rglob("*") if p.name.startswith(".cam-audit-tmp-")] == []
    assert sorted(p.name for p in (output / "records").iterdir() if p.is_dir()) == []


def test_every_corpus_line_gets_its_documented_row(corpus: Corpus, tiny_model_path: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    rows = audit(corpus, tiny_model_path, output)
    check_outcomes(corpus, output, rows)
    by_path = {r["image_path"]: r for r in rows}
    assert (by_path["wide_4000x20.png"]["width"], by_path["wide_4000x20.png"]["height"]) == (4000, 20)
    assert cv2.imread(by_path["wide_4000x20.png"]["heatmap_path"]).shape == (20, 4000, 3)
    odd = by_path["MURA-v1.1/extra/XR_HAND/patient99991 x/study1_positive/image 1.png"]
    assert odd["study_id"] is None and "not in MURA v1.1's layout" in odd["metadata_note"]
    assert by_path[ODD_NAME]["heatmap_path"].endswith("odd dir é/spaced name %41 #1 _q=1.png.jpg")
    assert [r["status"] for r in rows if r["image_path"] == "one_pixel.png"] == ["ok", "ok"]


@pytest.mark.slow
def test_conservation_holds_with_several_worker_processes(
    corpus: Corpus, tiny_model_path: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    rows = audit(corpus, tiny_model_path, output, "--direct_num_workers", "2",
                 "--direct_running_mode", "multi_processing")  # fmt: skip
    check_outcomes(corpus, output, rows)
    # The launcher's summary, written after consolidating both workers' files, counts the same rows.
    assert json.loads((output / "run_info.json").read_text())["summary"]["rows"] == len(corpus.lines)


def test_the_crafted_header_of_a_real_bomb_is_refused_as_the_small_one(tmp_path: Path) -> None:
    # The 30000 x 30000 PNG of the issue, as its first bytes: the size alone decides (README figures).
    from transforms.imaging import ImageDecodeError, load_model_input

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4 + b"IEND\xaeB`\x82"
    with pytest.raises(ImageDecodeError, match="30000x30000 = 900,000,000 pixels, limit 50,000,000"):
        load_model_input(data, 32, 32)

"""LoadImages: every manifest entry becomes a decoded image or an error row."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import TEST_FACTS, TINY_INPUT, TinyArchive, local_pipeline
from transforms.devices import ImageThreads
from transforms.images import LoadImages
from transforms.mura import ManifestEntry


def test_load_images_splits_good_and_error_rows(tiny_archive: TinyArchive) -> None:
    entries = [ManifestEntry(image_path=path) for path in [*tiny_archive.good, *tiny_archive.bad]]
    with local_pipeline() as p:
        images, errors = (
            p | beam.Create(entries) | LoadImages(str(tiny_archive.root), (TINY_INPUT, TINY_INPUT), TEST_FACTS)
        )
        shapes = images | "Shapes" >> beam.Map(
            lambda i: (i.entry.image_path, i.pixels.shape[1], i.pixels.shape[0], i.model_input.shape)
        )
        expected = [(path, w, h, (TINY_INPUT, TINY_INPUT, 3)) for path, (w, h) in tiny_archive.sizes.items()]
        assert_that(shapes, equal_to(expected), label="GoodImages")
        reasons = errors | "Reasons" >> beam.Map(lambda r: (r["image_path"], r["status"]))
        assert_that(reasons, equal_to([(path, "error") for path in tiny_archive.bad]), label="ErrorRows")


def test_load_images_on_threads_keeps_every_row_in_its_own_window(tiny_archive: TinyArchive) -> None:
    # Decoded images and error rows leave the decoding threads later than their entries came in (the
    # last ones in finish_bundle): each must keep its own entry's window, good or bad.
    from apache_beam.transforms.window import FixedWindows, TimestampedValue

    paths = [*tiny_archive.good, *tiny_archive.bad]
    stamped = [TimestampedValue(ManifestEntry(image_path=path), 10 * (i % 3)) for i, path in enumerate(paths)]
    expected = {path: 10 * (i % 3) for i, path in enumerate(paths)}
    with local_pipeline() as p:
        images, errors = (
            p
            | beam.Create(stamped)
            | beam.WindowInto(FixedWindows(10))
            | LoadImages(str(tiny_archive.root), (TINY_INPUT, TINY_INPUT), TEST_FACTS, threads=ImageThreads(3))
        )
        good = images | "GoodWindows" >> beam.Map(
            lambda i, window=beam.DoFn.WindowParam: (i.entry.image_path, int(window.start))
        )
        bad = errors | "ErrorWindows" >> beam.Map(
            lambda r, window=beam.DoFn.WindowParam: (r["image_path"], int(window.start))
        )
        assert_that(good, equal_to([(path, expected[path]) for path in tiny_archive.good]), label="Good")
        assert_that(bad, equal_to([(path, expected[path]) for path in tiny_archive.bad]), label="Bad")


def test_a_chunk_reads_then_decodes_and_gives_each_entry_what_it_would_alone(tiny_archive: TinyArchive) -> None:
    # A chunk reads every file before decoding any: the rows must not change, good or bad, whatever sits
    # beside them -- a manifest error, a path that climbs out of the data root, a missing or undecodable file.
    import numpy as np

    from transforms.images import _LoadImageDoFn
    from transforms.imaging import DecodePolicy

    entries = [
        *(ManifestEntry(image_path=path) for path in [*tiny_archive.good, *tiny_archive.bad]),
        ManifestEntry(image_path=tiny_archive.good[0], error="the manifest's own reason"),
        ManifestEntry(image_path="../outside.png"),
        ManifestEntry(image_path="../outside.png", error="the manifest's own reason"),
    ]
    dofn = _LoadImageDoFn(str(tiny_archive.root), (TINY_INPUT, TINY_INPUT), TEST_FACTS, DecodePolicy(), ImageThreads(1))
    chunk = dofn.work_chunk(entries)
    alone = [dofn.work(entry) for entry in entries]
    assert len(chunk) == len(entries)
    for together, single, entry in zip(chunk, alone, entries, strict=True):
        assert type(together) is type(single), entry
        if isinstance(single, dict):
            assert together == single
            assert together["status"] == "error" and together["image_uri"]
        else:
            assert together.entry == single.entry and together.image_uri == single.image_uri
            assert np.array_equal(together.pixels, single.pixels)
            assert np.array_equal(together.model_input, single.model_input)
    manifest_error = chunk[len(tiny_archive.good) + len(tiny_archive.bad)]
    # A row the manifest already failed still names where its image would have been read from.
    assert manifest_error["error"] == "the manifest's own reason"
    assert manifest_error["image_uri"] == str(tiny_archive.root / tiny_archive.good[0])
    assert chunk[-1]["error"] == "the manifest's own reason" and chunk[-1]["image_uri"] == "../outside.png"
    assert "outside" in chunk[-2]["error"] or "data root" in chunk[-2]["error"]

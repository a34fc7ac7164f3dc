"""The report page escapes what it shows and links thumbnails to their heatmaps."""

from __future__ import annotations

from pipeline.report_html import Thumbnail, gallery, key_value_table


def test_text_is_escaped() -> None:
    html = key_value_table([("manifest", "<script>alert(1)</script>")])
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_gallery_links_thumbnails_and_names_images() -> None:
    html = gallery("false positives", [
        Thumbnail('a/"b".png', "P(abnormal) 0.9", "thumbs/0000.jpg", "../heatmaps/a/b.png.jpg"),
        Thumbnail("c.png", "P(abnormal) 0.8", None, None),
    ])
    assert '<a href="../heatmaps/a/b.png.jpg"><img src="thumbs/0000.jpg"' in html
    assert "a/&quot;b&quot;.png" in html and "c.png" in html and html.count("<img") == 1
    assert "(2)" in html and "none" in gallery("empty", [])

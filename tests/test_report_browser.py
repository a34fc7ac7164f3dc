"""The report in a real headless browser (Debian's chromium driven by Playwright): renders, every image
resolves, no console errors; a screenshot is kept as a test artefact."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline.report import build_report
from tests.conftest import write_audited_run

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def require_browser() -> None:
    """Skip with the reason where no browser exists; under CI=true (.ci/run installs chromium) fail instead."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"no {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("no playwright (pip install -e '.[test]')")
    if not missing:
        return
    reason = "report browser test: " + "; ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " - CI must run this test, not skip it")
    pytest.skip(reason)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    require_browser()
    from playwright.sync_api import sync_playwright

    write_audited_run(tmp_path / "run")
    page_path = Path(build_report(str(tmp_path / "run"), resamples=50).page)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            page.goto(page_path.as_uri(), wait_until="load")
            assert page.title() == "cam-audit report"
            assert "report" in page.inner_text("h1") and page.inner_text(".verdict")
            widths = page.evaluate("Array.from(document.images, image => [image.src, image.naturalWidth])")
            assert len(widths) >= 5 + 1  # the five plots and at least one thumbnail
            assert [src for src, width in widths if width == 0] == []
            assert problems == []
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    assert screenshot.stat().st_size > 0
    shutil.copy(screenshot, tmp_path / "report.png")
    print(f"report screenshot: {screenshot}")


def test_a_missing_browser_skips_outside_ci_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(f"{__name__}.CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no-chromium"):
        require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run this test"):
        require_browser()

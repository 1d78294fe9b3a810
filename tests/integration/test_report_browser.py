"""The evaluation and comparison pages in a real browser: headless Debian Chromium driven by Playwright.

Each page is written to a file and loaded through a ``file://`` URL, as someone opening an archived
report would. The browser must decode every embedded PNG (``naturalWidth > 0``), show the gate's verdict
at the top, log no console error, run no script (the ``<script>`` category and slice names are text) and
fetch nothing but the page itself. Full-page screenshots land in ``test-artifacts/`` at the repository
root, for a person to look at. No Ray is started.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import browser as shared
import report_fixtures
from tripwire.eval_report import render_comparison_html, render_evaluation_html

pytestmark = [pytest.mark.integration, pytest.mark.browser]

VERDICT_MAX_TOP_PX = 60  # the body's margin and nothing else above the verdict

shared.require_browser()  # skips the module where Debian chromium (make browser) or playwright is missing
browser, artifacts = shared.browser, shared.artifacts  # the module-scoped fixtures (tests/browser.py)


def open_report(browser, path: Path, screenshot: Path) -> dict:
    """Loads ``path`` in a fresh page; returns what the page did (console errors, requests, dialogs, images,
    the verdict's box) after saving a full-page screenshot."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = {"console_errors": [], "page_errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda msg: seen["console_errors"].append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: seen["page_errors"].append(str(error)))
    page.on("request", lambda request: seen["requests"].append(request.url))

    def on_dialog(dialog):
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        page.goto(path.as_uri(), wait_until="load", timeout=30_000)
        page.wait_for_function("Array.from(document.images).every(img => img.complete)", timeout=30_000)
        seen["images"] = page.eval_on_selector_all(
            "img", "els => els.map(e => ({alt: e.alt, complete: e.complete, width: e.naturalWidth,"
                   " height: e.naturalHeight}))")
        verdict = page.locator("#verdict")
        seen["verdict_visible"] = verdict.is_visible()
        seen["verdict_box"] = verdict.bounding_box()
        seen["verdict_text"] = verdict.inner_text()
        seen["first_in_body"] = page.evaluate("document.body.firstElementChild && document.body.firstElementChild.id")
        seen["scripts"] = page.evaluate("document.scripts.length")
        seen["title"] = page.title()
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    return seen


def check_page(seen: dict, path: Path, verdict_word: str, images: int) -> None:
    assert seen["console_errors"] == [] and seen["page_errors"] == [], seen
    assert seen["dialogs"] == [], f"a script ran in the page: {seen['dialogs']}"
    assert seen["scripts"] == 0
    assert seen["requests"] == [path.as_uri()], f"the page fetched more than itself: {seen['requests']}"
    assert len(seen["images"]) == images, seen["images"]
    for image in seen["images"]:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    assert seen["first_in_body"] == "verdict"
    assert seen["verdict_visible"]
    box = seen["verdict_box"]
    assert box is not None and box["y"] < VERDICT_MAX_TOP_PX and box["height"] > 0, box
    assert seen["verdict_text"].startswith(verdict_word), seen["verdict_text"]


def test_the_evaluation_page_renders_in_chromium(browser, artifacts, tmp_path):
    report = report_fixtures.evaluation_report(gate="fail")
    path = tmp_path / "eval_report.html"
    path.write_text(render_evaluation_html(report), encoding="utf-8")
    screenshot = artifacts / "eval_report.png"
    seen = open_report(browser, path, screenshot)
    check_page(seen, path, "FAIL", images=len(report["curves"]))
    assert seen["title"] == "Tripwire evaluation: core@3"
    assert screenshot.stat().st_size > 10_000


def test_the_comparison_page_renders_in_chromium(browser, artifacts, tmp_path):
    report = report_fixtures.comparison_report(gate="pass")
    path = tmp_path / "compare_report.html"
    path.write_text(render_comparison_html(report), encoding="utf-8")
    screenshot = artifacts / "compare_report.png"
    seen = open_report(browser, path, screenshot)
    check_page(seen, path, "PASS", images=len(report["sets"]))
    assert screenshot.stat().st_size > 10_000


def test_a_real_evaluation_report_in_the_browser(browser, artifacts, evaluated):
    """The report ``tripwire evaluate`` wrote for the session's model (not a fixture): it loads, every plot
    decodes, nothing is fetched, and its screenshot is kept for a person to look at."""
    report, out = evaluated
    seen = open_report(browser, Path(out) / "report.html", artifacts / "eval_report_real.png")
    assert not seen["console_errors"] and not seen["page_errors"] and not seen["dialogs"], seen
    assert all(url.startswith("file://") for url in seen["requests"]), seen["requests"]
    images = seen["images"]
    assert len(images) >= len(report["curves"]) and all(i["complete"] and i["width"] > 0 for i in images), images
    assert seen["verdict_visible"] and seen["first_in_body"] == "verdict"
    assert seen["title"] == f"Tripwire evaluation: {report['golden']['name']}@{report['golden']['version']}"

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
from tripwire.evaluation.report import render_comparison_html, render_evaluation_html

pytestmark = [pytest.mark.integration, pytest.mark.browser]

VERDICT_MAX_TOP_PX = 60  # the body's margin and nothing else above the verdict

shared.require_browser()  # skips the module where Debian chromium (make browser) or playwright is missing
browser, artifacts = shared.browser, shared.artifacts  # the module-scoped fixtures (tests/browser.py)


def open_report(browser, path: Path, screenshot: Path) -> dict:
    """The page loaded and screenshotted (tests/browser.py), its verdict as the key element."""
    return shared.open_file_page(browser, path, screenshot, "verdict")


def check_page(seen: dict, path: Path, verdict_word: str, images: int) -> None:
    shared.assert_self_contained(seen, path, images)
    assert seen["first_in_body"] == "verdict"
    assert seen["key_visible"]
    box = seen["key_box"]
    assert box is not None and box["y"] < VERDICT_MAX_TOP_PX and box["height"] > 0, box
    assert seen["key_text"].startswith(verdict_word), seen["key_text"]


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
    assert seen["key_visible"] and seen["first_in_body"] == "verdict"
    assert seen["title"] == f"Tripwire evaluation: {report['golden']['name']}@{report['golden']['version']}"

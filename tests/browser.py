"""Shared pieces of the browser tests (headless Debian Chromium driven by Playwright).

A test module calls ``sync_api = require_browser()`` at its top, which skips the whole module, with the
reason, where Debian Chromium or the playwright package is missing, and imports the fixtures ``browser``
(one Chromium a module) and ``artifacts`` (``test-artifacts/`` at the repository root, for screenshots).
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
NO_CHROMIUM = "Debian chromium not installed: run `make browser` (apt-get install chromium)"
NO_PLAYWRIGHT = "the playwright package is not installed: pip install playwright==1.65.0"


def require_browser():
    """``playwright.sync_api``; skips the calling test module (at import) where Chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM, allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the module's tests."""
    sync_api = require_browser()
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def artifacts():
    """``test-artifacts/`` at the repository root (created), where screenshots go for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def open_file_page(browser, path: Path, screenshot: Path, key_id: str) -> dict:
    """Loads the self-contained page ``path`` (``file://``) in a fresh page and saves a full-page screenshot;
    returns what the page did: console and page errors, requests, dialogs, its images, the number of
    scripts, its title, its body text, the first element's id, and the ``key_id`` element's visibility, box
    and text (as ``key_visible``, ``key_box``, ``key_text``)."""
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
        key = page.locator(f"#{key_id}")
        seen["key_visible"] = key.is_visible()
        seen["key_box"] = key.bounding_box()
        seen["key_text"] = key.inner_text()
        seen["first_in_body"] = page.evaluate("document.body.firstElementChild && document.body.firstElementChild.id")
        seen["scripts"] = page.evaluate("document.scripts.length")
        seen["title"] = page.title()
        seen["body_text"] = page.inner_text("body")
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    return seen


def assert_self_contained(seen: dict, path: Path, images: int) -> None:
    """What :func:`open_file_page` saw of an archived report: no errors, no script ran, nothing fetched but
    the page itself, and ``images`` images, each decoded and described (alt text)."""
    assert seen["console_errors"] == [] and seen["page_errors"] == [], seen
    assert seen["dialogs"] == [], f"a script ran in the page: {seen['dialogs']}"
    assert seen["scripts"] == 0
    assert seen["requests"] == [path.as_uri()], f"the page fetched more than itself: {seen['requests']}"
    assert len(seen["images"]) == images, seen["images"]
    for image in seen["images"]:
        assert image["alt"] and image["complete"] and image["width"] > 0 and image["height"] > 0, image

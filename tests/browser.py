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

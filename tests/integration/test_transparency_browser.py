"""The transparency report's page in a real browser: headless Debian Chromium driven by Playwright.

A month of synthetic decisions (several categories, languages, markets, reviews and appeals) goes through
the decision log on SQLite, :func:`tripwire.compliance.cases.cases`, :func:`build_report` and
:func:`write_report`; the page is loaded through a ``file://`` URL as someone opening an archived report
would. Every embedded PNG must decode, the totals must be visible at the top, no console error may be
logged, no script may run and nothing but the page itself may be fetched. Full-page screenshots land in
``test-artifacts/`` for a person to look at. No Ray is started.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import browser as shared
from helpers import resolved_item
from tripwire.compliance.cases import cases, period
from tripwire.compliance.records import (APPEAL, APPEAL_OUTCOME, DECISION, REVIEW_OUTCOME, appeal_body,
                                         appeal_outcome_body, decision_body, review_outcome_body)
from tripwire.compliance.report import build_report
from tripwire.compliance.report_page import write_report
from tripwire.compliance.decision_log import DecisionLog
from tripwire.moderation.result import ModerationResult

pytestmark = [pytest.mark.integration, pytest.mark.browser]

TOTALS_MAX_TOP_PX = 200  # the title and the period line, nothing else, above the totals
START, END = period("2025-03-01", "2025-03-31")
CATEGORIES = ("hate", "violence", "sexual", "self_harm", "harassment", "spam")
LANGUAGES = ("en", "de", "fr", "es", "it", "pl", "nl", None)
MARKETS = ("DE", "FR", "ES", "IT", "PL", "NL", None, "<b>XX</b>")  # one string from the log that needs escaping
TYPES = (("text",), ("image",), ("text", "image"), ("video",), ("audio",))
THRESHOLDS = {"review": 0.5, "restrict": 0.7, "block": 0.9}

shared.require_browser()  # skips the module where Debian chromium (make browser) or playwright is missing
browser, artifacts = shared.browser, shared.artifacts  # the module-scoped fixtures (tests/browser.py)


def decision_entry(rng: random.Random, i: int) -> tuple[str, dict]:
    """One decision: its action from a score drawn for one category, like the policy's bands."""
    category, score = rng.choice(CATEGORIES), rng.random()
    action = next((a for a in ("block", "restrict", "review") if score >= THRESHOLDS[a]), "allow")
    reasons = [] if action == "allow" else [{"category": category, "score": score, "threshold": THRESHOLDS[action],
                                             "action": action, "ground": "incompatible"}]
    result = ModerationResult.from_json({"id": f"item-{i}", "scores": {category: score}, "flagged": [r["category"] for r in reasons],
              "decision": {"action": action, "reasons": reasons, "flagged": [r["category"] for r in reasons],
                           "policy_version": "p1", "market": rng.choice(MARKETS)},
              "attribution": {}, "evidence": {}, "modalities": ["text"], "model_version": "m1",
              "policy_version": "p1"})
    detected = START + rng.uniform(0, END - START - 86400)
    body = decision_body(result, source=rng.choice(("serving", "serving", "scan")), policy=None,
                         detected_at=detected, decided_at=detected + rng.lognormvariate(-0.5, 1.0),
                         content_hash="x" * 64, content_types=list(rng.choice(TYPES)), language=rng.choice(LANGUAGES))
    return f"d-{i}", body


def what_followed(rng: random.Random, puid: str, body: dict) -> list[tuple[str, str, dict]]:
    """Reviewers resolve most review-band decisions; some enforced ones are appealed."""
    entries = []
    action = body["action"]
    if action == "review" and rng.random() < 0.85:
        confirmed = rng.random() < 0.7
        resolved = rng.choice(("restrict", "block")) if confirmed else "allow"
        item = resolved_item(f"r-{puid}", resolved, {c: int(confirmed) for c in body["flagged"]},
                             body["decided_at"] + rng.uniform(600, 30 * 3600), created_at=body["decided_at"])
        entries.append((REVIEW_OUTCOME, puid, review_outcome_body(item, body, reviewers=1)))
        action = resolved
    if action in ("restrict", "block") and rng.random() < 0.3:
        filed = body["decided_at"] + 3600
        entries.append((APPEAL, puid, appeal_body("please look again", filed, f"a-{puid}")))
        if rng.random() < 0.8:
            item = resolved_item(f"a-{puid}", "allow" if rng.random() < 0.25 else action, {}, filed + 7200,
                                 source="appeal")
            entries.append((APPEAL_OUTCOME, puid, appeal_outcome_body(body, item, filed)))
    return entries


def month_of_decisions(tmp_path: Path, decisions: int = 400):
    rng = random.Random(20250301)
    entries = []
    for i in range(decisions):
        puid, body = decision_entry(rng, i)
        entries.append((DECISION, puid, body))
        entries += what_followed(rng, puid, body)
    log = DecisionLog(str(tmp_path / "log.db"))
    try:
        log.append(entries)
        month = list(cases(log.records(), START, END))
    finally:
        log.close()
    # Every enforced decision got its statement of reasons.
    return build_report(month, START, END, statements_issued=sum(case.enforced for case in month))


def open_report(browser, path: Path, screenshot: Path) -> dict:
    """The page loaded and screenshotted (tests/browser.py), its totals as the key element."""
    return shared.open_file_page(browser, path, screenshot, "totals")


def check_page(seen: dict, path: Path, images: int) -> None:
    shared.assert_self_contained(seen, path, images)
    assert seen["key_visible"]
    box = seen["key_box"]
    assert box is not None and box["y"] < TOTALS_MAX_TOP_PX and box["height"] > 0, box


def test_the_transparency_page_renders_in_chromium(browser, artifacts, tmp_path):
    report = month_of_decisions(tmp_path)
    assert report.decisions == 400 and report.appeals.decided > 0 and report.accuracy.precision.of > 0
    path = write_report(report, tmp_path / "report")
    screenshot = artifacts / "transparency-report.png"
    seen = open_report(browser, path, screenshot)
    check_page(seen, path, images=3)
    assert f"{report.decisions:,}" in seen["key_text"] and f"{report.enforced:,}" in seen["key_text"]
    assert "Reconciled" in seen["key_text"]
    assert "<b>XX</b>" in seen["body_text"]  # shown as text, not markup
    assert screenshot.stat().st_size > 10_000


def test_an_empty_period_renders_in_chromium(browser, artifacts, tmp_path):
    start, end = period("2024-01-01", "2024-01-31")
    report = build_report([], start, end, statements_issued=0)
    path = write_report(report, tmp_path / "empty")
    seen = open_report(browser, path, artifacts / "transparency-report-empty.png")
    check_page(seen, path, images=0)
    assert "No decisions in this period." in seen["body_text"]

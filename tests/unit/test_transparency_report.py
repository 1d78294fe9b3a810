"""Transparency reports from a synthetic decision log on SQLite: every count, median, p90 and interval
against figures worked out by hand; the CSV files carry report.json's numbers; an empty period still
makes a page; and strings from the log are escaped on the page."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpers import resolved_item
from tripwire.compliance.cases import all_cases, cases, period
from tripwire.compliance.records import (APPEAL, APPEAL_OUTCOME, DECISION, REVIEW_OUTCOME, appeal_body,
                                         appeal_outcome_body, decision_body, review_outcome_body)
from tripwire.compliance.report import (ALL_LANGUAGES, BY_PEOPLE, FULLY_AUTOMATED, build_report, last_day,
                                        wilson_interval)
from tripwire.compliance.report_page import write_report
from tripwire.compliance.decision_log import DecisionLog
from tripwire.moderation.result import ModerationResult

START, END = period("2025-03-01", "2025-03-31")
T0 = START + 3600.0  # an hour into the period
HOUR = 3600.0

THRESHOLDS = {"review": 0.5, "restrict": 0.7, "block": 0.9}


def reason(category: str, action: str, score: float) -> dict:
    return {"category": category, "score": score, "threshold": THRESHOLDS[action], "action": action,
            "ground": "incompatible"}


def result(item_id: str, action: str, reasons: list[dict], market: str | None) -> ModerationResult:
    """A moderation result as the moderation core assembles it (reasons strictest first)."""
    return ModerationResult.from_json({"id": item_id, "scores": {r["category"]: r["score"] for r in reasons},
            "flagged": [r["category"] for r in reasons],
            "decision": {"action": action, "reasons": reasons, "flagged": [r["category"] for r in reasons],
                         "policy_version": "p1", "market": market},
            "attribution": {}, "evidence": {}, "modalities": ["text"], "model_version": "m1", "policy_version": "p1"})


class Log:
    """Builds the log's entries case by case: a decision, then what followed it."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, dict]] = []
        self.bodies: dict[str, dict] = {}

    def decision(self, puid: str, action: str, reasons: list[dict], *, source: str = "serving",
                 types: tuple[str, ...] = ("text",), language: str | None = "en", market: str | None = "DE",
                 detected: float = T0, took: float = 0.5) -> "Log":
        body = decision_body(result(puid, action, reasons, market), source=source, policy=None, detected_at=detected,
                             decided_at=detected + took, content_hash="x" * 64, content_types=list(types),
                             language=language)
        self.bodies[puid] = body
        self.entries.append((DECISION, puid, body))
        return self

    def review(self, puid: str, action: str, labels: dict[str, int], resolved_at: float) -> "Log":
        original = self.bodies[puid]
        item = resolved_item(f"r-{puid}", action, labels, resolved_at, created_at=original["decided_at"])
        self.entries.append((REVIEW_OUTCOME, puid, review_outcome_body(item, original, reviewers=1)))
        return self

    def appeal(self, puid: str, filed_at: float, resolved: str | None = None) -> "Log":
        self.entries.append((APPEAL, puid, appeal_body("please look again", filed_at, f"a-{puid}")))
        if resolved is not None:
            item = resolved_item(f"a-{puid}", resolved, {}, filed_at + HOUR, source="appeal")
            self.entries.append((APPEAL_OUTCOME, puid, appeal_outcome_body(self.bodies[puid], item, filed_at)))
        return self

    def report(self, tmp_path: Path, statements: int | None = None, start: float = START, end: float = END):
        log = DecisionLog(str(tmp_path / "log.db"))
        try:
            log.append(self.entries)
            return build_report(cases(log.records(), start, end), start, end, statements)
        finally:
            log.close()


def synthetic_log() -> Log:
    """Eight decisions in the period (d1-d8) and one before it; the expected figures are worked out in the
    tests below from this list."""
    hate_block, hate_review = reason("hate", "block", 0.95), reason("hate", "review", 0.6)
    violence_restrict, violence_review = reason("violence", "restrict", 0.8), reason("violence", "review", 0.55)
    log = Log()
    log.decision("before", "block", [hate_block], detected=START - HOUR)  # decided before the period
    log.decision("d1", "block", [hate_block, violence_restrict], took=0.5).appeal("d1", T0 + HOUR, resolved="block")
    log.decision("d2", "restrict", [violence_restrict], types=("text", "image"), took=2.0)
    log.appeal("d2", T0 + HOUR, resolved="allow")  # overturned: the enforcement is reversed
    log.decision("d3", "review", [hate_review], source="scan", types=("image",), language="de", market="FR")
    log.review("d3", "restrict", {"hate": 1}, resolved_at=T0 + HOUR)  # people restrict; the flag is confirmed
    log.decision("d4", "review", [violence_review], source="scan", language="de", market="FR")
    log.review("d4", "allow", {"violence": 0}, resolved_at=T0 + 5 * HOUR)  # people allow; not confirmed
    log.decision("d5", "review", [reason("spam", "review", 0.52)], market=None)  # still waiting for people
    log.decision("d6", "allow", [], language=None)
    log.decision("d7", "allow", [], types=("audio",))
    log.review("d7", "allow", {}, resolved_at=T0 + HOUR)  # a sampled allowed item: no flag to confirm
    log.decision("d8", "review", [hate_review]).review("d8", "block", {"hate": 0, "violence": 1}, T0 + 2 * HOUR)
    log.appeal("d8", T0 + 3 * HOUR)  # not decided yet
    return log


@pytest.fixture
def report(tmp_path):
    return synthetic_log().report(tmp_path, statements=4)


def test_the_totals_reconcile(report):
    assert (report.decisions, report.enforced, report.statements_issued) == (8, 4, 4)
    assert report.statements_reconcile is True
    assert (report.first_day, report.last_day) == ("2025-03-01", "2025-03-31")  # both days included
    assert sum(report.by_action.values()) == report.decisions
    assert report.by_action["restrict"] + report.by_action["block"] == report.enforced


def test_decisions_by_category_action_content_type_market_language_and_source(report):
    assert report.by_action == {"allow": 3, "review": 1, "restrict": 2, "block": 2}
    assert report.by_category == {
        "hate": {"allow": 0, "review": 0, "restrict": 1, "block": 2},
        "none": {"allow": 2, "review": 0, "restrict": 0, "block": 0},
        "violence": {"allow": 1, "review": 0, "restrict": 1, "block": 0},
        "spam": {"allow": 0, "review": 1, "restrict": 0, "block": 0},
    }
    assert list(report.by_category) == ["hate", "none", "violence", "spam"]  # largest first, then by name
    assert report.by_content_type == {"text": 6, "image": 2, "audio": 1}  # d2 counts in text and in image
    assert report.by_market == {"DE": 5, "FR": 2, "unspecified": 1}
    assert report.by_language == {"de": 2, "en": 5, "unknown": 1}
    assert report.by_source == {"serving": 6, "scan": 2}


def test_automated_and_human_means(report):
    assert report.automation == {FULLY_AUTOMATED: {"decisions": 4, "enforced": 2},
                                 BY_PEOPLE: {"decisions": 3, "enforced": 2},
                                 "awaiting review": {"decisions": 1, "enforced": 0}}


def test_median_and_p90_time_to_action(report):
    # Enforced: d1 0.5 s and d2 2 s (automated); d3 1 h and d8 2 h (people, from detection).
    times = report.time_to_action
    assert (times["all"].cases, times["all"].median_s, times["all"].p90_s) == (4, 1801.0, pytest.approx(6120.0))
    assert (times[FULLY_AUTOMATED].median_s, times[FULLY_AUTOMATED].p90_s) == (1.25, pytest.approx(1.85))
    assert (times[BY_PEOPLE].median_s, times[BY_PEOPLE].p90_s) == (5400.0, pytest.approx(6840.0))
    # Buckets: < 1 s, 1-10 s, ..., 1-6 h (the fifth bucket is 10 min-1 h, exclusive of 1 h).
    assert times["all"].histogram == [1, 1, 0, 0, 0, 2, 0, 0, 0]


def test_appeals(report):
    appeals = report.appeals
    assert (appeals.filed, appeals.decided, appeals.upheld, appeals.overturned,
            appeals.enforcements_reversed) == (3, 2, 1, 1, 1)


def test_the_wilson_interval_matches_published_values():
    low, high = wilson_interval(8, 10)  # Wilson (1927); e.g. Newcombe (1998), Table I: 0.4902 to 0.9433
    assert low == pytest.approx(0.4902, abs=5e-5) and high == pytest.approx(0.9433, abs=5e-5)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=5e-5))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=5e-5), 1.0)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_accuracy_overall_and_per_language(report):
    overall = report.accuracy
    assert (overall.overturn_rate.count, overall.overturn_rate.of, overall.overturn_rate.value) == (1, 2, 0.5)
    assert (overall.overturn_rate.ci_low, overall.overturn_rate.ci_high) == wilson_interval(1, 2)
    # Reviews of flagged decisions: d3 confirmed, d4 and d8 not; d7 (nothing flagged) does not count.
    assert (overall.precision.count, overall.precision.of) == (1, 3)
    assert overall.precision.value == pytest.approx(1 / 3)
    assert (overall.precision.ci_low, overall.precision.ci_high) == wilson_interval(1, 3)
    by_language = report.accuracy_by_language
    assert list(by_language) == ["de", "en", "unknown"]
    assert (by_language["de"].precision.count, by_language["de"].precision.of) == (1, 2)
    assert (by_language["en"].precision.count, by_language["en"].precision.of) == (0, 1)
    assert (by_language["en"].overturn_rate.count, by_language["en"].overturn_rate.of) == (1, 2)
    assert by_language["de"].overturn_rate.value is None and by_language["de"].overturn_rate.of == 0
    assert by_language["unknown"].precision.value is None


def test_cases_from_outside_the_period_are_left_out(tmp_path):
    log = DecisionLog(str(tmp_path / "log.db"))
    try:
        log.append(synthetic_log().entries)
        everything = list(all_cases(log.records()).values())
    finally:
        log.close()
    assert len(everything) == 9
    report = build_report(everything, START, END)
    assert report.decisions == 8 and report.by_category["hate"]["block"] == 2
    assert last_day(START, START + 1.5 * 86400) == "2025-03-02"  # an end within a day keeps that day


def test_statements_that_do_not_reconcile_are_shown(tmp_path):
    report = synthetic_log().report(tmp_path, statements=3)
    assert report.statements_reconcile is False
    page = write_report(report, tmp_path / "out").read_text(encoding="utf-8")
    assert "Does not reconcile: -1 statement(s)" in page


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def number(text: str) -> float | None:
    return None if text == "" else float(text)


def test_the_csv_files_carry_the_json_figures(report, tmp_path):
    out = tmp_path / "out"
    page = write_report(report, out)
    assert page == out / "index.html" and page.is_file()
    figures = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert figures["decisions"] == 8 and figures["enforced"] == 4 and figures["statements_reconcile"] is True

    for row in read_csv(out / "decisions_by_category.csv"):
        by_action = figures["by_category"][row["category"]]
        assert int(row["decisions"]) == sum(by_action.values())
        assert {a: int(row[a]) for a in by_action} == by_action
    for name, key, field in (("decisions_by_action", "action", "by_action"),
                             ("decisions_by_content_type", "content_type", "by_content_type"),
                             ("decisions_by_market", "market", "by_market"),
                             ("decisions_by_language", "language", "by_language"),
                             ("decisions_by_source", "source", "by_source")):
        assert {r[key]: int(r["decisions"]) for r in read_csv(out / f"{name}.csv")} == figures[field], name
    assert {r["means"]: {"decisions": int(r["decisions"]), "enforced": int(r["enforced"])}
            for r in read_csv(out / "automation.csv")} == figures["automation"]
    for row in read_csv(out / "time_to_action.csv"):
        scope = figures["time_to_action"][row["means"]]
        assert (int(row["enforced"]), number(row["median_s"]), number(row["p90_s"])) == (
            scope["cases"], scope["median_s"], scope["p90_s"])
    histogram = read_csv(out / "time_to_action_histogram.csv")
    assert [int(r["all"]) for r in histogram] == figures["time_to_action"]["all"]["histogram"]
    appeals = {r["appeals"]: int(r["count"]) for r in read_csv(out / "appeals.csv")}
    assert appeals == {"filed": 3, "decided": 2, "upheld": 1, "overturned": 1, "enforcements reversed": 1}

    accuracy = read_csv(out / "accuracy.csv")
    assert [r["language"] for r in accuracy] == [ALL_LANGUAGES, "de", "en", "unknown"]
    for row in accuracy:
        expected = figures["accuracy"] if row["language"] == ALL_LANGUAGES else (
            figures["accuracy_by_language"][row["language"]])
        for column, measure in (("precision", "precision"), ("overturn_rate", "overturn_rate")):
            got = [number(row[column]), number(row[f"{column}_ci_low"]), number(row[f"{column}_ci_high"])]
            assert got == [expected[measure]["value"], expected[measure]["ci_low"], expected[measure]["ci_high"]]
        assert int(row["flagged_reviews"]) == expected["precision"]["of"]
        assert int(row["flags_confirmed"]) == expected["precision"]["count"]
        assert int(row["appeals_decided"]) == expected["overturn_rate"]["of"]


def test_the_page_heads_with_the_totals_and_embeds_its_plots(report, tmp_path):
    page = write_report(report, tmp_path / "out").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert page.index('id="totals"') < page.index("<table")
    assert "Reconciled: one statement of reasons per enforced decision." in page
    assert page.count('<img alt="') == 3 and page.count('src="data:image/png;base64,') == 3
    assert "http://" not in page and "https://" not in page  # nothing to fetch


def test_an_empty_period_makes_a_valid_report(tmp_path):
    start, end = period("2024-01-01", "2024-01-31")  # before every decision in the log
    report = synthetic_log().report(tmp_path, start=start, end=end)
    assert (report.decisions, report.enforced, report.statements_issued) == (0, 0, None)
    assert report.by_category == {} and report.by_action == {"allow": 0, "review": 0, "restrict": 0, "block": 0}
    assert report.time_to_action["all"].median_s is None and report.accuracy.precision.value is None
    out = tmp_path / "empty"
    page = write_report(report, out).read_text(encoding="utf-8")
    assert "No decisions in this period." in page and "<img" not in page
    assert "not given, so not reconciled" in page
    assert read_csv(out / "decisions_by_category.csv") == []
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["decisions"] == 0


def test_the_page_escapes_strings_from_the_log(tmp_path):
    market = "<script>alert('market')</script>"
    language = '"><img src=x onerror=alert(1)>$\\x^_'  # also mathtext's specials, for the plot's labels
    log = Log().decision("d1", "block", [reason("<b>hate</b>", "block", 0.95)], market=market, language=language)
    log.appeal("d1", T0 + HOUR, resolved="allow")
    log.decision("d2", "review", [reason("hate", "review", 0.6)], language=language)
    log.review("d2", "block", {"hate": 1}, resolved_at=T0 + HOUR)
    report = log.report(tmp_path)
    out = tmp_path / "out"
    page = write_report(report, out).read_text(encoding="utf-8")
    for raw in (market, language.lower(), "<b>hate</b>"):
        assert raw not in page
    assert "&lt;script&gt;alert(&#x27;market&#x27;)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;b&gt;hate&lt;/b&gt;" in page
    assert "<script" not in page and page.count("<img ") == 3  # the three plots, none from the data
    # The CSV files are data, not HTML: the strings stay as logged.
    assert {r["market"] for r in read_csv(out / "decisions_by_market.csv")} == {market, "DE"}

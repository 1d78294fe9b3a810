"""The transparency report's tables: the same rows feed the CSV files and the page."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tripwire.compliance.report import (ALL_LANGUAGES, Accuracy, NO_CATEGORY, Proportion, TIME_BUCKETS,
                                        TransparencyReport)


# --- tables (the same rows feed the CSV files and the page) ----------------------------------------------

@dataclass(frozen=True)
class Table:
    """One table: ``name`` is its CSV file's stem, ``columns`` its column names (a :class:`Proportion` cell
    becomes three CSV columns: ``<name>``, ``<name>_ci_low``, ``<name>_ci_high``)."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    note: str = ""


def _counts_table(name: str, title: str, key: str, counts: Mapping[str, int], note: str = "") -> Table:
    return Table(name, title, (key, "decisions"), [(k, n) for k, n in counts.items()], note)


def _category_table(report: TransparencyReport) -> Table:
    actions = tuple(report.by_action)
    rows = [(category, sum(by_action.values()), *(by_action.get(a, 0) for a in actions))
            for category, by_action in report.by_category.items()]
    return Table("decisions_by_category", "Decisions by category and action", ("category", "decisions", *actions),
                 rows, f"Category: the top reason's (the strictest); {NO_CATEGORY} for allowed content. Action: "
                       "the effective one (the reviewers' where people decided; review while waiting for them).")


def _automation_table(report: TransparencyReport) -> Table:
    rows = [(means, figures["decisions"], figures["enforced"]) for means, figures in report.automation.items()]
    return Table("automation", "Automated and human decisions", ("means", "decisions", "enforced"), rows,
                 "Detection is automated for every decision. Fully automated: the model and the policy decided. "
                 "Decided by people: the model put the content in the review band and reviewers decided "
                 "(partially automated). Awaiting review: in the review band, not resolved yet.")


def _time_table(report: TransparencyReport) -> Table:
    rows = [(scope, t.cases, t.median_s, t.p90_s) for scope, t in report.time_to_action.items()]
    return Table("time_to_action", "Time from detection to action", ("means", "enforced", "median_s", "p90_s"),
                 rows, "Enforced decisions only: from detection to the restriction (the reviewers' resolution "
                       "where people decided). p90: nine in ten were acted on within it.")


def _time_histogram_table(report: TransparencyReport) -> Table:
    scopes = tuple(report.time_to_action)
    rows = [(label, *(report.time_to_action[s].histogram[i] for s in scopes))
            for i, (label, _) in enumerate(TIME_BUCKETS)]
    return Table("time_to_action_histogram", "Time to action, by bucket", ("bucket", *scopes), rows,
                 "Enforced decisions per bucket; a bucket holds its lower bound, not its upper one.")


def _appeals_table(report: TransparencyReport) -> Table:
    appeals = report.appeals
    rows = [("filed", appeals.filed), ("decided", appeals.decided), ("upheld", appeals.upheld),
            ("overturned", appeals.overturned), ("enforcements reversed", appeals.enforcements_reversed)]
    return Table("appeals", "Appeals", ("appeals", "count"), rows,
                 "Appeals of the period's decisions. Overturned: the reviewers' action no longer restricts the "
                 "content, which reverses the enforcement.")


def _accuracy_row(language: str, decisions: int, accuracy: Accuracy) -> tuple[Any, ...]:
    return (language, decisions, accuracy.overturn_rate.of, accuracy.overturn_rate.count, accuracy.overturn_rate,
            accuracy.precision.of, accuracy.precision.count, accuracy.precision)


def _accuracy_table(report: TransparencyReport) -> Table:
    rows = [_accuracy_row(ALL_LANGUAGES, report.decisions, report.accuracy)]
    rows += [_accuracy_row(lang, report.by_language.get(lang, 0), accuracy)
             for lang, accuracy in report.accuracy_by_language.items()]
    return Table("accuracy", "Accuracy of automated means, per language",
                 ("language", "decisions", "appeals_decided", "appeals_overturned", "overturn_rate",
                  "flagged_reviews", "flags_confirmed", "precision"), rows,
                 f"{ALL_LANGUAGES}: every language pooled. Overturn rate: appeals overturned of appeals decided "
                 "(the possible error rate). Precision: reviews that confirmed a category the model flagged, of "
                 "reviews of flagged content (the review band, so it describes the model near its thresholds). "
                 "Brackets: Wilson 95% intervals. Precision alone hides misses: recall needs a stratified "
                 "review sample of allowed content.")


def report_tables(report: TransparencyReport) -> list[Table]:
    """Every table of the report, in page order."""
    return [
        _category_table(report),
        _counts_table("decisions_by_action", "Decisions by action", "action", report.by_action,
                      "Restrict and block are enforcements (a statement of reasons is owed for each)."),
        _counts_table("decisions_by_content_type", "Decisions by content type", "content_type",
                      report.by_content_type, "A decision on content with several modalities (say text and an "
                      "image) counts once in each: this column can sum to more than the decisions."),
        _counts_table("decisions_by_market", "Decisions by market", "market", report.by_market),
        _counts_table("decisions_by_language", "Decisions by language", "language", report.by_language),
        _counts_table("decisions_by_source", "Decisions by detection source", "source", report.by_source,
                      "serving: checked when submitted; scan: found by the platform's own scans (own "
                      "initiative)."),
        _automation_table(report),
        _time_table(report),
        _time_histogram_table(report),
        _appeals_table(report),
        _accuracy_table(report),
    ]


def _csv_header(table: Table) -> list[str]:
    header = []
    for i, column in enumerate(table.columns):
        header.append(column)
        if any(isinstance(row[i], Proportion) for row in table.rows):
            header += [f"{column}_ci_low", f"{column}_ci_high"]
    return header


def _csv_cells(table: Table, row: tuple[Any, ...]) -> list[Any]:
    """Raw values (floats at full precision, so the file's numbers are report.json's); None as empty."""
    cells: list[Any] = []
    for i, value in enumerate(row):
        if isinstance(value, Proportion):
            cells += [value.value, value.ci_low, value.ci_high]
        elif any(isinstance(other[i], Proportion) for other in table.rows):
            cells += [value, None, None]
        else:
            cells.append(value)
    return ["" if cell is None else cell for cell in cells]


def write_csv(table: Table, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_csv_header(table))
        writer.writerows(_csv_cells(table, row) for row in table.rows)

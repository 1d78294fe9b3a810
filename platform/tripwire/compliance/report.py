"""DSA Art. 15 transparency reports, counted from the decision log's cases (:func:`tripwire.compliance.cases.cases`).

:func:`build_report` turns the cases of one period into a :class:`TransparencyReport` of plain figures;
:func:`write_report` writes it as a self-contained ``index.html`` (inline CSS, plots as PNG ``data:`` URIs,
no script, nothing fetched), one CSV per table and ``report.json``.

What is counted, per decision made in the period ``[start, end)``:

* its *category*: the top reason's (reasons are strictest first), ``none`` for an allowed decision;
* its *effective action* (:attr:`Case.action`): the reviewers' for a review-band decision they resolved,
  else the automated one; ``review`` while it still waits for people. *Enforced*: restrict or block;
* its *means*: fully automated (the model and policy decided), decided by people (the model flagged for
  review, reviewers decided) or still awaiting review;
* time to action (enforced decisions only): detection to the enforcement (the reviewers' resolution for
  people's decisions);
* appeals filed and decided, upheld or overturned; an overturned appeal reverses the enforcement;
* accuracy indicators of the automated means, from reviewers' outcomes, overall and per language: the
  overturn rate of appeals and the precision of the model's flags, each with a Wilson 95% interval.

The totals that must reconcile (decisions, enforced decisions, statements of reasons issued) head the page
in ``<div id="totals">``. Every string that came from the log is HTML-escaped.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from tripwire.compliance.cases import Case, day_start, in_period, utc_date
from tripwire.compliance.cases import cases as cases_of_period
from tripwire.compliance.logs import LogSet
from tripwire.compliance.records import RESTRICTIVE, SOURCES
from tripwire.compliance.statements import exported_puids
from tripwire.evaluation.metrics import ACTION_NAMES
from tripwire.reporting.figures import figure as _figure, img as _img, png as _png, style_axes as _style
from tripwire.reporting.html import CSS as _CSS, escape as _e, head_row as _head_row, shorten as _short

logger = logging.getLogger(__name__)

KIND = "transparency_report"
SCHEMA_VERSION = 1
Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval
NO_CATEGORY = "none"  # an allowed decision acted on no category
UNSPECIFIED = "unspecified"  # a restricting decision logged without reasons, or without a market
UNKNOWN_LANGUAGE = "unknown"
UNKNOWN_CONTENT_TYPE = "unknown"
# The accuracy table's overall row. Logged languages are lower-cased (records.decision_body), so this
# upper-case label can never be a language's.
ALL_LANGUAGES = "ALL"

FULLY_AUTOMATED, BY_PEOPLE, AWAITING_REVIEW = "fully automated", "decided by people", "awaiting review"
MEANS = (FULLY_AUTOMATED, BY_PEOPLE, AWAITING_REVIEW)
ALL_ENFORCED = "all"
TIME_SCOPES = (ALL_ENFORCED, FULLY_AUTOMATED, BY_PEOPLE)  # awaiting review is never enforced

# Time-to-action histogram buckets: (label, upper bound in seconds, exclusive). Bounds a reader thinks in.
TIME_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 1 s", 1.0), ("1-10 s", 10.0), ("10 s-1 min", 60.0), ("1-10 min", 600.0), ("10 min-1 h", 3600.0),
    ("1-6 h", 21600.0), ("6-24 h", 86400.0), ("1-7 d", 604800.0), ("≥ 7 d", math.inf))

ACTION_COLOURS = {"allow": "#8fb996", "review": "#e6b84c", "restrict": "#e07b39", "block": "#b83227"}
OTHER_COLOUR = "#9e9e9e"
PLOT_MAX_CATEGORIES = 25  # a taller bar chart stops being readable; the table keeps every category
PLOT_MAX_LANGUAGES = 30


# --- figures ---------------------------------------------------------------------------------------------

def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a binomial proportion (95% by default); None for no trials.

    Wilson rather than the normal approximation: it stays inside [0, 1] and keeps its coverage for the
    small counts a language or a month of appeals often has.
    """
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} must be between 0 and trials {trials}")
    p = successes / trials
    z2 = z * z
    denominator = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    # The ends are exact at 0 and n; the arithmetic would leave a rounding error there.
    low = 0.0 if successes == 0 else max(0.0, centre - margin)
    high = 1.0 if successes == trials else min(1.0, centre + margin)
    return low, high


@dataclass(frozen=True)
class Proportion:
    """``count`` of ``of`` with its Wilson 95% interval (all None when ``of`` is 0)."""

    count: int
    of: int
    value: float | None
    ci_low: float | None
    ci_high: float | None


def proportion(count: int, of: int) -> Proportion:
    interval = wilson_interval(count, of)
    if interval is None:
        return Proportion(count, of, None, None, None)
    return Proportion(count, of, count / of, interval[0], interval[1])


@dataclass(frozen=True)
class TimeToAction:
    """Detection to enforcement over enforced decisions: median and p90 (linear interpolation) in seconds,
    and the count per :data:`TIME_BUCKETS` bucket."""

    cases: int
    median_s: float | None
    p90_s: float | None
    histogram: list[int]


@dataclass(frozen=True)
class Appeals:
    filed: int
    decided: int
    upheld: int
    overturned: int
    enforcements_reversed: int


@dataclass(frozen=True)
class Accuracy:
    """Indicators of the automated means' accuracy, measured from reviewers' outcomes.

    ``overturn_rate``: appeals overturned of appeals decided (the possible error rate people caught).
    ``precision``: reviews that confirmed a category the model flagged, of reviews of flagged decisions.
    """

    overturn_rate: Proportion
    precision: Proportion


@dataclass
class TransparencyReport:
    """The figures of one period; the counting rules are the module's docstring."""

    period_start: float
    period_end: float
    first_day: str
    last_day: str
    decisions: int
    enforced: int
    statements_issued: int | None
    by_category: dict[str, dict[str, int]]  # category -> effective action -> decisions
    by_action: dict[str, int]
    by_content_type: dict[str, int]  # a decision counts once per modality it had
    by_market: dict[str, int]
    by_language: dict[str, int]
    by_source: dict[str, int]
    automation: dict[str, dict[str, int]]  # means -> {"decisions": n, "enforced": m}
    time_to_action: dict[str, TimeToAction]  # TIME_SCOPES -> figures
    appeals: Appeals
    accuracy: Accuracy
    accuracy_by_language: dict[str, Accuracy]

    @property
    def statements_reconcile(self) -> bool | None:
        """Whether one statement of reasons was issued per enforced decision; None when not given."""
        return None if self.statements_issued is None else self.statements_issued == self.enforced

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, "schema_version": SCHEMA_VERSION, **dataclasses.asdict(self),
                "statements_reconcile": self.statements_reconcile}


# --- counting --------------------------------------------------------------------------------------------

def category_of(case: Case) -> str:
    """The top reason's category (reasons are strictest first); ``none`` for an allowed decision."""
    if case.decision["action"] == "allow":
        return NO_CATEGORY
    reasons = case.decision.get("reasons") or []
    return str(reasons[0]["category"]) if reasons else UNSPECIFIED


def means_of(case: Case) -> str:
    if case.human_decided:
        return BY_PEOPLE
    return AWAITING_REVIEW if case.decision["action"] == "review" else FULLY_AUTOMATED


def language_of(case: Case) -> str:
    return str(case.decision.get("language") or UNKNOWN_LANGUAGE)


def market_of(case: Case) -> str:
    return str(case.decision.get("market") or UNSPECIFIED)


def content_types_of(case: Case) -> list[str]:
    # A set: a modality logged twice must not count the decision twice in it.
    types = sorted({str(t) for t in case.decision.get("content_types") or []})
    return types or [UNKNOWN_CONTENT_TYPE]


def percentiles(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Median and p90 (numpy's default linear interpolation); None for no values."""
    if not values:
        return None, None
    median, p90 = np.percentile(np.asarray(values, dtype=float), [50, 90])
    return float(median), float(p90)


def bucket_counts(values: Iterable[float]) -> list[int]:
    counts = [0] * len(TIME_BUCKETS)
    for value in values:
        counts[next(i for i, (_, upper) in enumerate(TIME_BUCKETS) if value < upper)] += 1
    return counts


def time_to_action(values: Sequence[float]) -> TimeToAction:
    median, p90 = percentiles(values)
    return TimeToAction(len(values), median, p90, bucket_counts(values))


class _Tally:
    """Running counts over the period's cases (one pass; durations of enforced cases are kept for medians)."""

    def __init__(self) -> None:
        self.decisions = 0
        self.categories: dict[str, Counter] = {}
        self.actions: Counter = Counter()
        self.content_types: Counter = Counter()
        self.markets: Counter = Counter()
        self.languages: Counter = Counter()
        self.sources: Counter = Counter()
        self.means: dict[str, Counter] = {m: Counter() for m in MEANS}
        self.durations: dict[str, list[float]] = {scope: [] for scope in TIME_SCOPES}
        self.appeals: Counter = Counter()
        self.appeals_decided: Counter = Counter()  # language -> appeals decided
        self.appeals_overturned: Counter = Counter()
        self.reviews_of_flags: Counter = Counter()  # language -> reviews of decisions the model flagged
        self.reviews_confirmed: Counter = Counter()
        self.bad_durations = 0

    def add(self, case: Case) -> None:
        self.decisions += 1
        action, language, means = case.action, language_of(case), means_of(case)
        self.categories.setdefault(category_of(case), Counter())[action] += 1
        self.actions[action] += 1
        self.content_types.update(content_types_of(case))
        self.markets[market_of(case)] += 1
        self.languages[language] += 1
        self.sources[str(case.decision.get("source") or UNSPECIFIED)] += 1
        self.means[means]["decisions"] += 1
        if case.enforced:
            self.means[means]["enforced"] += 1
            self._add_duration(case, means)
        self._add_appeal(case, language)
        self._add_review(case, language)

    def _add_duration(self, case: Case, means: str) -> None:
        seconds = case.time_to_action_s
        if not math.isfinite(seconds) or seconds < 0:
            # A resolution logged without its time (decided_at 0) would drag every figure; leave it out.
            self.bad_durations += 1
            return
        self.durations[ALL_ENFORCED].append(seconds)
        self.durations[means].append(seconds)

    def _add_appeal(self, case: Case, language: str) -> None:
        if case.appeal is not None:
            self.appeals["filed"] += 1
        outcome = case.appeal_outcome
        if outcome is None:
            return
        overturned = outcome.get("outcome") == "overturned"
        self.appeals["decided"] += 1
        self.appeals["overturned" if overturned else "upheld"] += 1
        self.appeals["reversed"] += int(case.reversed)
        self.appeals_decided[language] += 1
        self.appeals_overturned[language] += int(overturned)

    def _add_review(self, case: Case, language: str) -> None:
        confirmed = (case.review or {}).get("confirmed")
        if confirmed is None:  # not reviewed, or the model had flagged nothing (a sampled allowed item)
            return
        self.reviews_of_flags[language] += 1
        self.reviews_confirmed[language] += int(bool(confirmed))

    def accuracy(self, language: str | None = None) -> Accuracy:
        """Per language, or pooled over every language for None."""
        def count(counter: Counter) -> int:
            return counter[language] if language is not None else sum(counter.values())

        return Accuracy(proportion(count(self.appeals_overturned), count(self.appeals_decided)),
                        proportion(count(self.reviews_confirmed), count(self.reviews_of_flags)))


def _by_count(counter: Mapping[str, int]) -> dict[str, int]:
    """Largest first, then by name: the order a reader scans a table in."""
    return {key: int(counter[key]) for key in sorted(counter, key=lambda k: (-counter[k], k))}


def _actions(counter: Mapping[str, int]) -> dict[str, int]:
    """Every policy action (zeros too, so tables and plots always have the same columns), then any other."""
    extra = sorted(a for a in counter if a not in ACTION_NAMES)
    return {a: int(counter.get(a, 0)) for a in (*ACTION_NAMES, *extra)}


def _languages(tally: _Tally) -> list[str]:
    """Languages by name, ``unknown`` last."""
    return sorted(tally.languages, key=lambda lang: (lang == UNKNOWN_LANGUAGE, lang))


def last_day(start: float, end: float) -> str:
    """The last UTC day of ``[start, end)``: the day before ``end`` when it falls on midnight (as
    :func:`tripwire.compliance.cases.period` makes it), else ``end``'s day."""
    day = utc_date(end)
    if day_start(day) == end and end > start:
        return utc_date(day_start(day) - 86400.0)
    return day


def _report(tally: _Tally, start: float, end: float, statements_issued: int | None) -> TransparencyReport:
    totals = Counter({c: sum(actions.values()) for c, actions in tally.categories.items()})
    by_action = _actions(tally.actions)
    return TransparencyReport(
        period_start=float(start), period_end=float(end), first_day=utc_date(start),
        last_day=last_day(start, end),
        decisions=tally.decisions,
        enforced=sum(n for a, n in tally.actions.items() if a in RESTRICTIVE),
        statements_issued=statements_issued,
        by_category={c: {a: tally.categories[c].get(a, 0) for a in by_action} for c in _by_count(totals)},
        by_action=by_action,
        by_content_type=_by_count(tally.content_types),
        by_market=_by_count(tally.markets),
        by_language={lang: tally.languages[lang] for lang in _languages(tally)},
        by_source={s: int(tally.sources.get(s, 0)) for s in (*SOURCES, *sorted(set(tally.sources) - set(SOURCES)))},
        automation={m: {"decisions": tally.means[m]["decisions"], "enforced": tally.means[m]["enforced"]}
                    for m in MEANS},
        time_to_action={scope: time_to_action(tally.durations[scope]) for scope in TIME_SCOPES},
        appeals=Appeals(tally.appeals["filed"], tally.appeals["decided"], tally.appeals["upheld"],
                        tally.appeals["overturned"], tally.appeals["reversed"]),
        accuracy=tally.accuracy(),
        accuracy_by_language={lang: tally.accuracy(lang) for lang in _languages(tally)},
    )


def build_report(cases: Iterable[Case], start: float, end: float,
                 statements_issued: int | None = None) -> TransparencyReport:
    """The figures of the decisions made in ``[start, end)`` (Unix seconds) among ``cases``.

    ``cases`` is normally :func:`tripwire.compliance.cases.cases` over the log for the same period; a case
    from outside the period is left out (and logged), so the totals always describe the period.
    ``statements_issued``: the statements of reasons sent for the period, to reconcile with the enforced
    decisions.
    """
    if end <= start:
        raise ValueError(f"the period's end {end} is not after its start {start}")
    if statements_issued is not None and statements_issued < 0:
        raise ValueError(f"statements_issued must not be negative, got {statements_issued}")
    tally, outside = _Tally(), 0
    for case in cases:
        if not in_period(case, start, end):
            outside += 1
            continue
        tally.add(case)
    if outside:
        logger.warning("left out %d case(s) decided outside [%s, %s)", outside, start, end)
    if tally.bad_durations:
        logger.warning("left %d enforced case(s) with a negative or unknown time to action out of the time "
                       "figures", tally.bad_durations)
    report = _report(tally, start, end, statements_issued)
    logger.info("transparency report %s to %s: %d decisions, %d enforced, %d appeals", report.first_day,
                report.last_day, report.decisions, report.enforced, report.appeals.filed)
    return report


def report_from_log(log_url: str, start: float, end: float, scan_logs: Sequence[str] = ()) -> TransparencyReport:
    """The report of ``[start, end)`` from the decision log at ``log_url`` (with scans' Parquet ``scan_logs``),
    its statements issued counted from the export ledger in the same database (what ``compliance sor``
    recorded for the period's enforced decisions)."""
    logs = LogSet([log_url, *scan_logs])
    try:
        period_cases = list(cases_of_period(logs.records(), start, end))
    finally:
        logs.close()
    issued = exported_puids(log_url, [c.puid for c in period_cases if c.enforced])
    return build_report(period_cases, start, end, statements_issued=len(issued))


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


# --- the page --------------------------------------------------------------------------------------------

_EXTRA_CSS = """
#totals { display: flex; flex-wrap: wrap; gap: .6em 2.6em; align-items: flex-end; padding: .8em 1.2em;
  border: 2px solid #1f5fa8; border-radius: 6px; background: #eef3fa; margin: .6em 0 1em; }
#totals .total b { display: block; font-size: 1.7em; line-height: 1.15; }
#totals .total span { color: #444; }
#totals .check { flex-basis: 100%; margin: 0; font-weight: 600; }
.reconciled { color: #1b4d1e; } .unreconciled { color: #7a1111; } .unchecked { color: #555; }
.period { color: #444; margin: 0 0 .4em; }
.empty { color: #555; font-style: italic; }
p.note { max-width: 62em; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(14em, 1fr)); gap: 0 1.8em;
  align-items: start; }
.tables h2 { font-size: 1.1em; margin-top: 1.4em; }
"""

# The one-column count tables are short: they sit side by side instead of one under the other.
_SIDE_BY_SIDE = ("decisions_by_action", "decisions_by_content_type", "decisions_by_market", "decisions_by_language",
                 "decisions_by_source")


def _page_start(title: str) -> list[str]:
    return ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>", f"<style>{_CSS}{_EXTRA_CSS}</style></head><body>"]


def _count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _reconciliation(report: TransparencyReport) -> str:
    if report.statements_reconcile is None:
        return '<p class="check unchecked">Statements of reasons issued: not given, so not reconciled.</p>'
    if report.statements_reconcile:
        return ('<p class="check reconciled">Reconciled: one statement of reasons per enforced decision.</p>')
    difference = (report.statements_issued or 0) - report.enforced
    return (f'<p class="check unreconciled">Does not reconcile: {_e(f"{difference:+,}")} statement(s) of reasons '
            "against the enforced decisions.</p>")


def _totals(report: TransparencyReport) -> list[str]:
    figures = [(report.decisions, "decisions logged in the period"),
               (report.enforced, "enforced (restrict or block)"),
               (report.statements_issued, "statements of reasons issued")]
    out = ['<div id="totals" role="status">']
    out += [f'<div class="total"><b>{_e(_count(value))}</b><span>{_e(label)}</span></div>' for value, label in figures]
    out.append(_reconciliation(report))
    out.append("</div>")
    return out


def _duration(seconds: float) -> str:
    """Seconds in the unit a reader takes in at a glance."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, Proportion):
        if value.value is None:
            return "n/a"
        return (f"{100 * value.value:.1f}% <span class=\"ci\">[{100 * value.ci_low:.1f}%, "
                f"{100 * value.ci_high:.1f}%]</span>")
    if isinstance(value, bool) or isinstance(value, str):
        return _e(value)
    if isinstance(value, int):
        return _e(f"{value:,}")
    if isinstance(value, float):
        return _e(_duration(value) if column.endswith("_s") else f"{value:.3g}")
    return _e(value)


def _column_label(column: str) -> str:
    return column.replace("_", " ").removesuffix(" s")


def _html_table(table: Table) -> list[str]:
    out = [f"<h2>{_e(table.title)}</h2>"]
    if table.note:
        out.append(f'<p class="note">{_e(table.note)}</p>')
    if not table.rows:
        out.append('<p class="empty">No decisions in this period.</p>')
        return out
    out.append("<table>" + _head_row([_column_label(c) for c in table.columns]))
    for row in table.rows:
        out.append("<tr>" + "".join(f"<td>{_cell(c, v)}</td>" for c, v in zip(table.columns, row)) + "</tr>")
    out.append("</table>")
    return out


# --- plots -----------------------------------------------------------------------------------------------

def _readable(ax, title: str, xlabel: str, ylabel: str) -> None:
    """eval_report's axes style, with larger text: these plots are shown at their pixel size and their tick
    labels (categories, languages) are what a reader looks for."""
    _style(ax, title, xlabel, ylabel)
    ax.title.set_fontsize(11)
    ax.xaxis.label.set_fontsize(9.5)
    ax.yaxis.label.set_fontsize(9.5)
    ax.tick_params(labelsize=9)


def _charted_categories(report: TransparencyReport) -> list[str]:
    """The categories the chart shows: those the model acted on. Allowed content (``none``) outnumbers them
    by far and would squash every other bar; the table keeps it."""
    return [c for c in report.by_category if c != NO_CATEGORY][:PLOT_MAX_CATEGORIES]


def _encode(fig) -> str:
    """The figure as base64 PNG. Figures here are built on their own Agg canvas, never registered with
    pyplot, so there is nothing to ``plt.close``; clearing drops their artists as soon as they are saved."""
    try:
        return _png(fig)
    finally:
        fig.clear()


def _category_png(report: TransparencyReport) -> str:
    categories = _charted_categories(report)[::-1]  # barh draws bottom-up: the largest goes on top
    fig = _figure(11.0, 1.4 + 0.36 * len(categories))
    ax = fig.subplots()
    _readable(ax, "decisions by category and effective action", "decisions", "")
    ax.grid(axis="y", visible=False)
    left = [0] * len(categories)
    for action in report.by_action:
        counts = [report.by_category[c].get(action, 0) for c in categories]
        if not any(counts):
            continue
        ax.barh(range(len(categories)), counts, left=left, height=0.65, label=action,
                color=ACTION_COLOURS.get(action, OTHER_COLOUR))
        left = [a + b for a, b in zip(left, counts)]
    ax.set_yticks(range(len(categories)), [_short(c) for c in categories], parse_math=False)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside, never on, a bar
    return _encode(fig)


def _time_png(report: TransparencyReport) -> str:
    fig = _figure(11.0, 3.4)
    ax = fig.subplots()
    _readable(ax, "time from detection to action (enforced decisions)", "time to action",
              "share of the means' enforced")
    ax.grid(axis="x", visible=False)
    positions = np.arange(len(TIME_BUCKETS))
    width = 0.38
    for offset, scope, colour in ((-width / 2, FULLY_AUTOMATED, "#1f5fa8"), (width / 2, BY_PEOPLE, "#c0392b")):
        figures = report.time_to_action[scope]
        shares = [n / figures.cases for n in figures.histogram] if figures.cases else [0.0] * len(TIME_BUCKETS)
        median = "" if figures.median_s is None else f", median {_duration(figures.median_s)}"
        ax.bar(positions + offset, shares, width=width, color=colour, label=f"{scope} (n={figures.cases}{median})")
    ax.set_xticks(positions, [label for label, _ in TIME_BUCKETS])
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=9, loc="upper right", framealpha=0.85)
    return _encode(fig)


def _plot_rates(ax, title: str, labels: Sequence[str], rates: Sequence[Proportion]) -> None:
    _readable(ax, title, "language", "")
    ax.set_ylim(-0.06, 1.1)  # room for a dot at 0 or 1 and its n label
    ax.set_xlim(-0.6, len(labels) - 0.4)
    for x, rate in enumerate(rates):
        if rate.value is None:
            ax.annotate("n/a", (x, 0.5), ha="center", va="center", fontsize=8.5, color="#888")
            continue
        colour = "#222" if labels[x] == ALL_LANGUAGES else "#1f5fa8"
        ax.errorbar([x], [rate.value], yerr=[[rate.value - rate.ci_low], [rate.ci_high - rate.value]], fmt="o",
                    color=colour, ecolor=colour, capsize=4, markersize=5, elinewidth=1.1)
        ax.annotate(f"n={rate.of}", (x, rate.ci_high), xytext=(0, 3), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8, color="#555")
    rotate = len(labels) > 8 or any(len(label) > 6 for label in labels)
    ax.set_xticks(range(len(labels)), [_short(label, 16) for label in labels], rotation=30 if rotate else 0,
                  ha="right" if rotate else "center", parse_math=False)


def _accuracy_png(report: TransparencyReport) -> str:
    by_language = report.accuracy_by_language
    # The languages with the most reviews and appeals when there are too many to read side by side; the
    # table keeps every one. Shown in the table's order.
    measured = sorted(by_language, key=lambda lang: -(by_language[lang].precision.of
                                                      + by_language[lang].overturn_rate.of))
    kept = set(measured[:PLOT_MAX_LANGUAGES])
    languages = [lang for lang in by_language if lang in kept]
    labels = [ALL_LANGUAGES, *languages]
    accuracies = [report.accuracy, *(report.accuracy_by_language[lang] for lang in languages)]
    fig = _figure(14.0, 3.8)
    precision_ax, overturn_ax = fig.subplots(1, 2)
    _plot_rates(precision_ax, "precision of the model's flags (reviews)", labels, [a.precision for a in accuracies])
    _plot_rates(overturn_ax, "overturn rate of appeals", labels, [a.overturn_rate for a in accuracies])
    return _encode(fig)


def _has_accuracy(report: TransparencyReport) -> bool:
    return bool(report.accuracy.precision.of or report.accuracy.overturn_rate.of)


_Plot = Callable[[TransparencyReport], str]
# table name -> (is there anything to draw, draw it, alt text, caption): each plot follows its table.
_PLOTS: dict[str, tuple[Callable[[TransparencyReport], bool], _Plot, str, str]] = {
    "decisions_by_category": (lambda r: bool(_charted_categories(r)), _category_png,
                              "stacked bar chart: decisions per category, split by effective action",
                              "Decisions per category the model acted on, stacked by effective action (largest "
                              f"on top); allowed content ({NO_CATEGORY}) is in the table only."),
    "time_to_action_histogram": (lambda r: r.enforced > 0, _time_png,
                                 "bar chart: distribution of time from detection to action, automated vs people",
                                 "Share of each means' enforced decisions per time-to-action bucket."),
    "accuracy": (_has_accuracy, _accuracy_png,
                 "accuracy per language: precision of flags and overturn rate of appeals with 95% intervals",
                 f"Dots: the estimate; bars: the Wilson 95% interval; n: reviews or appeals decided; "
                 f"{ALL_LANGUAGES}: every language pooled."),
}


def _plot_html(table: Table, report: TransparencyReport) -> list[str]:
    if table.name not in _PLOTS:
        return []
    has_data, draw, alt, caption = _PLOTS[table.name]
    if not has_data(report):
        return ['<p class="empty">Nothing to plot: no decisions with these figures in this period.</p>']
    return [_img(draw(report), alt, caption)]


def _title(report: TransparencyReport) -> str:
    return f"Tripwire transparency report: {report.first_day} to {report.last_day}"


def render_html(report: TransparencyReport, tables: Sequence[Table] | None = None) -> str:
    """The self-contained page: totals first, then each table with its plot."""
    tables = list(tables if tables is not None else report_tables(report))
    out = _page_start(_title(report))
    out.append(f"<h1>{_e(_title(report))}</h1>")
    out.append(f'<p class="period">Decisions made from {_e(report.first_day)} to {_e(report.last_day)} '
               "(UTC, both days included); DSA Art. 15 figures counted from the decision log.</p>")
    out += _totals(report)
    if report.decisions == 0:
        out.append('<p class="empty" id="no-decisions">No decisions in this period.</p>')
    side_by_side = [t for t in tables if t.name in _SIDE_BY_SIDE]
    for table in tables:
        if table.name in _SIDE_BY_SIDE:
            if table is side_by_side[0]:
                out.append('<div class="tables">')
                for short in side_by_side:
                    out += ["<section>", *_html_table(short), "</section>"]
                out.append("</div>")
            continue
        out += _html_table(table) + _plot_html(table, report)
    out.append("</body></html>")
    return "\n".join(out)


def write_report(report: TransparencyReport, out_dir: str | Path) -> Path:
    """Writes ``index.html``, one CSV per table and ``report.json`` into ``out_dir`` (created); returns the
    page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = report_tables(report)
    for table in tables:
        write_csv(table, out / f"{table.name}.csv")
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)
                                     + "\n", encoding="utf-8")
    page = out / "index.html"
    page.write_text(render_html(report, tables), encoding="utf-8")
    logger.info("wrote the transparency report of %s to %s (%d tables)", report.first_day, out, len(tables))
    return page

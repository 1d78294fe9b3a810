"""DSA Art. 15 transparency reports, counted from the decision log's cases (:func:`tripwire.compliance.cases.cases`).

:func:`build_report` turns the cases of one period into a :class:`TransparencyReport` of plain figures;
:func:`tripwire.compliance.report_page.write_report` writes it as a self-contained ``index.html`` (inline CSS,
plots as PNG ``data:`` URIs, no script, nothing fetched), one CSV per table (:mod:`tripwire.compliance.report_tables`)
and ``report.json``.

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
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from tripwire.compliance.cases import Case, day_start, in_period, utc_date
from tripwire.compliance.cases import cases as cases_of_period
from tripwire.compliance.logs import LogSet
from tripwire.compliance.records import RESTRICTIVE, SOURCES
from tripwire.compliance.statement_export import exported_puids
from tripwire.policy import ACTION_NAMES

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

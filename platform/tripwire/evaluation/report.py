"""Self-contained HTML pages of evaluation reports: one model on a golden set, or candidate vs baseline.

:func:`render_evaluation_html` renders an evaluation report (``kind: "evaluation"``) and
:func:`render_comparison_html` a comparison report (``kind: "comparison"``); both report shapes are
documented with the evaluation job (``pipelines/evaluate.py``). A page is one HTML string with inline CSS
and its plots as base64 PNG ``data:`` URIs: no script, font, stylesheet or image is fetched from anywhere,
so the file can be archived, mailed or opened offline. Every piece of text from the report (category,
slice and set names, versions, paths) is HTML-escaped.

The gate's verdict, when the report carries one, is the first element of the page's body
(``<div id="verdict">``); an evaluation page then opens with its headline (``<div id="headline">``: macro
F1 at the policy, the weakest category, the review load against the review capacity, the slices measured
and the gate) before any metadata. Numbers are written as ``value [lo, hi]`` (the interval, which
contains the value), ``value [not estimable]`` where every resample gave the same value and the metric
is no proportion, and null values as ``n/a``.
Plots are drawn on a :class:`matplotlib.figure.Figure` with its own Agg canvas, so
rendering never touches pyplot's global state or the process-wide backend.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any, Callable, Mapping, Sequence

from tripwire.evaluation.comparison import LOWER_IS_BETTER
from tripwire.evaluation.metrics import CATEGORY_METRICS, MICRO_METRICS
from tripwire.policy import ACTION_NAMES
from tripwire.reporting.figures import (figure as _figure, img as _img, no_data as _no_data, png as _png, style_axes as
                                        _style)
from tripwire.reporting.html import (escape as _e, head_row as _head_row, meta_table as _meta_table, page_start as
                                     _page_start, shorten as _short)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
METRICS = CATEGORY_METRICS
ACTIONS = ACTION_NAMES
SLICE_METRICS = ("precision", "recall", "f1", "pr_auc", "recall_at_precision", "ece")
DELTA_CHART_METRIC = "pr_auc"
CATEGORY_FIGSIZE = (10.0, 2.8)
SHA_PREFIX = 12

_LABELS = {"precision": "precision", "recall": "recall", "f1": "F1", "fpr": "FPR", "roc_auc": "ROC-AUC",
           "pr_auc": "PR-AUC", "recall_at_precision": "recall@P", "ece": "ECE", "catch_rate": "catch rate",
           "class_macro_f1": "2-class macro-F1"}


# --- text -----------------------------------------------------------------------------------------------

def _note_row(lead: str, columns: int, scope: Mapping[str, Any], note: str) -> str:
    """A slice row with its item count and a note in place of numbers."""
    return (f'<tr>{lead}<td>{_e(scope.get("items", "n/a"))}</td><td colspan="{columns - 2}" class="note">'
            f"{_e(note)}</td></tr>")


def _too_small_row(lead: str, columns: int, scope: Mapping[str, Any]) -> str:
    return f'<tr class="too-small">{lead}<td colspan="{columns - 1}" class="note">{_too_small(scope)}</td></tr>'


def _too_small(scope: Mapping[str, Any]) -> str:
    """A slice reported without numbers: too few items, or (``empty``) no item has a value for it."""
    if scope.get("empty"):
        return f"empty: {_e(scope['empty'])}"
    return f"too small ({_e(scope.get('items', 'n/a'))} items)"

def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _num(value: Any, digits: int = 3, signed: bool = False) -> str:
    """A number as text: ``n/a`` for null (or NaN), integers as they are, floats to ``digits`` places."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:+d}" if signed else str(value)
    number = _finite(value)
    if number is None:
        return "n/a"
    if round(number, digits) == 0:
        number = 0.0  # no "-0.000"
    return f"{number:+.{digits}f}" if signed else f"{number:.{digits}f}"


def _pct(value: Any) -> str:
    number = _finite(value)
    return "n/a" if number is None else f"{100 * number:.1f}%"


def _ci_pair(ci: Any) -> tuple[Any, Any]:
    if isinstance(ci, Sequence) and not isinstance(ci, str) and len(ci) == 2:
        return ci[0], ci[1]
    return None, None


def _with_ci(estimate: Mapping[str, Any] | None, fmt: Callable[[Any], str] = _num) -> str:
    """``value [lo, hi]`` as HTML; ``n/a`` for a null value; ``[not estimable]`` for a degenerate
    bootstrap; the value alone when the report has no interval at all (bootstrap replicates 0)."""
    if not isinstance(estimate, Mapping) or _finite(estimate.get("value")) is None:
        return "n/a"
    lo, hi = _ci_pair(estimate.get("ci"))
    text = _e(fmt(estimate["value"]))
    if estimate.get("method") == "not estimable":
        return (f'{text} <span class="ci" title="every bootstrap resample gave the same value">'
                "[not estimable]</span>")
    if lo is None and hi is None:
        return text
    return f'{text} <span class="ci">[{_e(fmt(lo))}, {_e(fmt(hi))}]</span>'


def _metric_label(metric: str, target_precision: Any) -> str:
    label = _LABELS.get(metric, metric)
    if metric == "recall_at_precision" and _finite(target_precision) is not None:
        label = f"recall@P≥{_num(target_precision, 2)}"
    return label


def _golden_title(golden: Mapping[str, Any]) -> str:
    return f"{golden.get('name', '?')}@{golden.get('version', '?')}"


def _check(report: Mapping[str, Any], kind: str) -> None:
    if not isinstance(report, Mapping) or report.get("kind") != kind:
        got = report.get("kind") if isinstance(report, Mapping) else type(report).__name__
        raise ValueError(f"expected a report of kind {kind!r}, got {got!r}")
    if report.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"unsupported {kind} report schema_version {report.get('schema_version')!r} "
                         f"(this renderer reads {SCHEMA_VERSION})")


# --- page pieces -----------------------------------------------------------------------------------------

def _verdict(gate: Mapping[str, Any] | None) -> list[str]:
    """The gate's verdict block: PASS (green) or FAIL (red) with the failing bars and where they failed."""
    if gate is None:
        return ['<div id="verdict" class="verdict nogate" role="status">NO GATE: this report was not '
                "checked against release bars</div>"]
    bars = list(gate.get("bars") or [])
    failing = [bar for bar in bars if not bar.get("passed")]
    passed = bool(gate.get("passed"))
    word = "PASS" if passed else "FAIL"
    if passed:
        summary = f"all {len(bars)} release bar(s) met"
    else:
        summary = f"{len(failing)} of {len(bars)} release bar(s) failed"
    out = [f'<div id="verdict" class="verdict {"pass" if passed else "fail"}" role="status">'
           f'<span class="word">{word}</span>: {_e(summary)}']
    if failing:
        out.append("<ul>")
        for bar in failing:
            failures = list(bar.get("failures") or [])
            out.append(f"<li><b>{_e(bar.get('name', '?'))}</b>")
            if failures:
                out.append("<ul>")
                for failure in failures:
                    reason = f": {_e(failure['reason'])}" if failure.get("reason") else ""
                    out.append(f"<li><code>{_e(failure.get('where', '?'))}</code>: "
                               f"{_e(_num(failure.get('value'), 4))} (limit {_e(_num(failure.get('limit'), 4))})"
                               f"{reason}</li>")
                out.append("</ul>")
            out.append("</li>")
        out.append("</ul>")
    out.append("</div>")
    return out


def _sha(golden: Mapping[str, Any]) -> str:
    sha = str(golden.get("sha256") or "")
    if not sha:
        return "n/a"
    return f'<code title="{_e(sha)}">{_e(sha[:SHA_PREFIX])}</code>'


def _bootstrap_text(bootstrap: Mapping[str, Any] | None) -> str:
    bootstrap = bootstrap or {}
    confidence = _finite(bootstrap.get("confidence"))
    level = "n/a" if confidence is None else f"{100 * confidence:g}%"
    return (f"{bootstrap.get('replicates', 'n/a')} replicates, {level} intervals, "
            f"seed {bootstrap.get('seed', 'n/a')}")


def _golden_rows(golden: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [("golden set", f"<b>{_e(_golden_title(golden))}</b>"), ("sha256", _sha(golden)),
            ("items in set", _e(golden.get("items", "n/a"))), ("source", _e(golden.get("source") or "n/a")),
            ("licence", _e(golden.get("licence") or "n/a")),
            ("label provenance", _e(golden.get("label_provenance") or "n/a"))]


def _category_order(scope: Mapping[str, Any]) -> list[str]:
    categories = list((scope.get("categories") or {}).keys())
    return categories + [c for c in scope.get("unlabelled_categories") or [] if c not in categories]


def _is_unlabelled(scope: Mapping[str, Any], category: str) -> bool:
    return category in (scope.get("unlabelled_categories") or []) or category not in (scope.get("categories") or {})


# --- figures ---------------------------------------------------------------------------------------------


def _points(xs: Any, ys: Any, extra: Any = None) -> list[tuple]:
    """Pairs (or triples) of finite numbers from parallel lists, skipping nulls."""
    xs, ys = list(xs or []), list(ys or [])
    extras = list(extra) if extra is not None else [1] * len(xs)
    out = []
    for x, y, z in zip(xs, ys, extras):
        fx, fy, fz = _finite(x), _finite(y), _finite(z)
        if fx is not None and fy is not None and fz is not None:
            out.append((fx, fy, fz))
    return out


def _plot_pr(ax, pr: Mapping[str, Any], target_precision: Any) -> None:
    _style(ax, "precision-recall", "recall", "precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.03)
    points = sorted(_points(pr.get("recall"), pr.get("precision")))
    if not points:
        _no_data(ax, "no curve")
        return
    ax.plot([p[0] for p in points], [p[1] for p in points], color="#1f5fa8", linewidth=1.5, label="model")
    target = _finite(target_precision)
    if target is not None:
        ax.axhline(target, color="#c0392b", linestyle=":", linewidth=1.1, label=f"target P={target:g}")
    ax.legend(fontsize=7.5, loc="best", framealpha=0.85)


def _plot_reliability(ax, reliability: Mapping[str, Any]) -> None:
    _style(ax, "reliability", "mean score in bin", "positive rate in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.03)
    ax.plot([0, 1], [0, 1], color="#888", linestyle="--", linewidth=1, label="perfect calibration")
    points = _points(reliability.get("mean_score"), reliability.get("positive_rate"),
                     reliability.get("count") if reliability.get("count") is not None else None)
    points = [p for p in points if p[2] > 0] if reliability.get("count") is not None else points
    if not points:
        _no_data(ax, "no bins")
        return
    points.sort()
    largest = max(p[2] for p in points) or 1
    ax.plot([p[0] for p in points], [p[1] for p in points], color="#1f5fa8", linewidth=1.2)
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=[10 + 50 * p[2] / largest for p in points],
               color="#1f5fa8", zorder=3, label="bins (area: items)")
    ax.legend(fontsize=7.5, loc="upper left", framealpha=0.85)


def _plot_histogram(ax, histogram: Mapping[str, Any], threshold: Any, threshold_name: str) -> None:
    _style(ax, "score by label", "score", "share of class")
    ax.set_xlim(0, 1)
    edges = [_finite(e) for e in histogram.get("edges") or []]
    positives = [_finite(c) or 0.0 for c in histogram.get("positives") or []]
    negatives = [_finite(c) or 0.0 for c in histogram.get("negatives") or []]
    if (len(edges) < 2 or None in edges or len(positives) != len(edges) - 1
            or len(negatives) != len(edges) - 1):
        _no_data(ax, "no histogram")
        return
    tallest = 0.0
    for counts, name, colour, fill in ((negatives, "negatives", "#4a7ab8", True),
                                       (positives, "positives", "#c0392b", False)):
        total = sum(counts)
        if total > 0:
            shares = [c / total for c in counts]
            tallest = max(tallest, *shares)
            kwargs = {"fill": True, "alpha": 0.35} if fill else {"linewidth": 1.6}
            ax.stairs(shares, edges, color=colour, label=f"{name} (n={int(total)})", **kwargs)
    ax.set_ylim(0, (tallest or 1.0) * 1.6)  # headroom: the legend sits above the bars, not on them
    cut = _finite(threshold)
    if cut is not None:
        ax.axvline(cut, color="#333", linestyle=":", linewidth=1.1, label=f"{threshold_name} ≥ {cut:.2f}")
    ax.legend(fontsize=7.5, loc="upper left", framealpha=0.85)


def _category_png(category: str, curves: Mapping[str, Any], target_precision: Any, threshold: Any,
                  threshold_name: str) -> str:
    """One category's PR curve, reliability diagram and score histogram by label, side by side."""
    # Fixed margins, not a layout engine: every label here is a fixed string, and constrained layout would
    # cost a second draw of each figure (most of a page's render time is matplotlib laying out text).
    fig = _figure(*CATEGORY_FIGSIZE, layout=None)
    fig.subplots_adjust(left=0.055, right=0.99, bottom=0.16, top=0.8, wspace=0.26)
    pr_ax, reliability_ax, histogram_ax = fig.subplots(1, 3)
    _plot_pr(pr_ax, curves.get("pr") or {}, target_precision)
    _plot_reliability(reliability_ax, curves.get("reliability") or {})
    _plot_histogram(histogram_ax, curves.get("histogram") or {}, threshold, threshold_name)
    fig.suptitle(_short(category, 60), fontsize=10, fontweight="bold", parse_math=False)
    return _png(fig)


def _delta_png(set_title: str, categories: Mapping[str, Any], metric: str) -> str:
    """Per-category deltas (candidate minus baseline) of one metric, with the interval as error bars and
    each delta written at the end of its bar."""
    names = list(categories)
    fig = _figure(min(10.0, 3.5 + 1.1 * max(len(names), 1)), 3.0)
    ax = fig.subplots()
    label = _LABELS.get(metric, metric)
    ax.set_title(f"{_short(set_title, 50)}: Δ {label} (candidate − baseline)", fontsize=9.5, parse_math=False)
    ax.set_ylabel(f"Δ {label}", fontsize=8.5)
    ax.tick_params(labelsize=8)
    ax.grid(axis="y", alpha=0.25, linewidth=0.6)
    ax.axhline(0, color="#333", linewidth=0.8)
    if not names:
        _no_data(ax, "no categories")
        return _png(fig)
    heights, lower, upper, colours = [], [], [], []
    for name in names:
        row = (categories[name] or {}).get(metric) or {}
        delta = _finite(row.get("delta"))
        lo, hi = (_finite(v) for v in _ci_pair(row.get("ci")))
        heights.append(delta)
        lower.append(max(0.0, delta - lo) if delta is not None and lo is not None else 0.0)
        upper.append(max(0.0, hi - delta) if delta is not None and hi is not None else 0.0)
        colours.append("#c62828" if row.get("regression") else "#2e7d32" if (delta or 0) >= 0 else "#9e9e9e")
    positions = list(range(len(names)))
    ax.bar(positions, [h or 0.0 for h in heights], yerr=[lower, upper], capsize=4, color=colours, width=0.6,
           error_kw={"elinewidth": 1, "ecolor": "#222"})
    for x, (delta, down, up) in enumerate(zip(heights, lower, upper)):
        if delta is None:
            text, y, offset = "n/a", 0.0, 3
        else:
            text = f"{delta:+.3f}"
            y, offset = (delta + up, 3) if delta >= 0 else (delta - down, -3)
        ax.annotate(text, (x, y), xytext=(0, offset), textcoords="offset points", ha="center",
                    va="bottom" if offset > 0 else "top", fontsize=7.5, color="#333")
    long_names = any(len(str(n)) > 10 for n in names)
    ax.set_xticks(positions, [_short(n, 22) for n in names], rotation=20 if long_names else 0,
                  ha="right" if long_names else "center", parse_math=False)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.margins(y=0.25)
    return _png(fig)


# --- evaluation page -------------------------------------------------------------------------------------

def _quarantine_text(report: Mapping[str, Any]) -> str:
    reasons = report.get("quarantine_reasons") or {}
    text = _e(report.get("quarantined", "n/a"))
    if reasons:
        text += " (" + ", ".join(f"{_e(reason)}: {_e(count)}" for reason, count in reasons.items()) + ")"
    return text


def _evaluation_header(report: Mapping[str, Any]) -> list[str]:
    golden = report.get("golden") or {}
    wall = _finite(report.get("wall_s"))
    rows = _golden_rows(golden) + [
        ("items scored / quarantined", f"{_e(report.get('scored', 'n/a'))} / {_quarantine_text(report)}"),
        ("checkpoint", f"<code>{_e(report.get('checkpoint') or 'n/a')}</code>"),
        ("model version", _e(report.get("model_version") or "n/a")),
        ("policy version", _e(report.get("policy_version") or "n/a")),
        ("positive action", f"{_e(report.get('positive_action') or 'n/a')} (or stronger)"),
        ("target precision", _e(_num(report.get("target_precision"), 2))),
        ("bootstrap", _e(_bootstrap_text(report.get("bootstrap")))),
        ("review capacity", _e(_capacity_text(report.get("review_capacity")))),
        ("slice minimums", _e(_minimums_text(report.get("slice_minimums")))),
        ("wall time", "n/a" if wall is None else _e(f"{wall:.1f} s")),
    ]
    return _meta_table(rows)


def _capacity_text(capacity: Any) -> str:
    return "no limit" if _finite(capacity) is None else f"{_pct(capacity)} of items"


def _minimums_text(minimums: Any) -> str:
    if not isinstance(minimums, Mapping):
        return "n/a"
    return (f"{minimums.get('items', 'n/a')} items; per category {minimums.get('positives', 'n/a')} positives "
            f"and {minimums.get('negatives', 'n/a')} negatives")


def _review_load(overall: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The share of items sent to review (the report's ``review_load``, else the review decision rate)."""
    load = overall.get("review_load") or {}
    return load.get("overall") or (overall.get("actions") or {}).get("review")


def _weakest(overall: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """The measured category with the lowest F1 at the policy, and those whose F1 is undefined."""
    scored, undefined = [], []
    for category, entry in (overall.get("categories") or {}).items():
        if not isinstance(entry, Mapping) or "metrics" not in entry:
            continue
        f1 = _finite(((entry.get("metrics") or {}).get("f1") or {}).get("value"))
        (undefined.append(category) if f1 is None else scored.append((f1, category)))
    return (min(scored)[1] if scored else None), undefined


def _headline(report: Mapping[str, Any]) -> list[str]:
    """What a reader came for, before any metadata: macro F1 at the policy, the weakest category, the
    review load against the capacity, how many slices could be measured, and the gate's verdict."""
    overall = report.get("overall") or {}
    action = _e(report.get("positive_action") or "restrict")
    measured = [c for c, e in (overall.get("categories") or {}).items() if isinstance(e, Mapping) and "metrics" in e]
    items = [f"Macro F1 at the policy ({action} or stronger): <b>{_with_ci((overall.get('macro') or {}).get('f1'))}"
             f"</b> over {len(measured)} labelled categor{'y' if len(measured) == 1 else 'ies'}"]
    weakest, undefined = _weakest(overall)
    if weakest is not None:
        metrics = overall["categories"][weakest]["metrics"]
        items.append(f"Weakest category: <b>{_e(weakest)}</b>: F1 {_with_ci(metrics.get('f1'))}, recall "
                     f"{_with_ci(metrics.get('recall'))}, precision {_with_ci(metrics.get('precision'))}")
    if undefined:
        items.append(f"F1 undefined (no positives and nothing flagged) for {_e(', '.join(undefined))}")
    load, capacity = _review_load(overall), _finite(report.get("review_capacity"))
    text = f"Review load: <b>{_with_ci(load, _pct)}</b> of items go to review"
    if capacity is not None:
        value = _finite((load or {}).get("value"))
        over = value is not None and value > capacity + 1e-12
        verdict = '<span class="over">over capacity</span>' if over else "within capacity"
        text += f" ({verdict}: {_e(_pct(capacity))})"
    items.append(text)
    slices = report.get("slices") or {}
    if slices:
        small = sum(1 for s in slices.values() if (s or {}).get("too_small"))
        cells = sum(1 for s in slices.values() if not (s or {}).get("too_small")
                    for e in ((s or {}).get("categories") or {}).values()
                    if isinstance(e, Mapping) and e.get("too_small"))
        items.append(f"Slices: {len(slices) - small} measured, {small} too small; {cells} slice×category cell(s) "
                     "too small in positives or negatives")
    gate = report.get("gate")
    if gate is None:
        items.append("Gate: none (not checked against release bars)")
    else:
        bars = list(gate.get("bars") or [])
        failed = sum(1 for b in bars if not b.get("passed"))
        items.append(f"Gate: <b>{'PASS' if gate.get('passed') else 'FAIL'}</b> ({len(bars) - failed} of {len(bars)} "
                     "release bar(s) met)")
    return ['<div id="headline" role="doc-abstract"><ul>'] + [f"<li>{item}</li>" for item in items] + ["</ul></div>"]


def _overall_table(overall: Mapping[str, Any], target_precision: Any) -> list[str]:
    heads = ["category", "labelled", "positives"] + [_metric_label(m, target_precision) for m in METRICS]
    out = ["<table>" + _head_row(heads)]
    categories = overall.get("categories") or {}
    for category in _category_order(overall):
        if _is_unlabelled(overall, category):
            out.append(f'<tr><td class="name">{_e(category)}</td>'
                       f'<td colspan="{len(heads) - 1}" class="note">not labelled by this set</td></tr>')
            continue
        entry = categories[category] or {}
        if entry.get("too_small"):
            out.append(f'<tr class="too-small"><td class="name">{_e(category)}</td><td>{_e(entry.get("labelled"))}'
                       f'</td><td>{_e(entry.get("positives"))}</td><td colspan="{len(METRICS)}" class="note">'
                       f'too small: {_e(entry["too_small"])}</td></tr>')
            continue
        metrics = entry.get("metrics") or {}
        cells = [_e(category), _e(entry.get("labelled", "n/a")), _e(entry.get("positives", "n/a"))]
        cells += [_with_ci(metrics.get(m)) for m in METRICS]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    for name, summary, metrics in (("macro", overall.get("macro") or {}, METRICS),
                                   ("micro", overall.get("micro") or {}, MICRO_METRICS)):
        cells = [name, "", ""] + [_with_ci(summary.get(m)) if m in metrics else "—" for m in METRICS]
        out.append('<tr class="summary">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return out


def _actions_table(actions: Mapping[str, Any]) -> list[str]:
    names = [a for a in ACTIONS if a in actions] + [a for a in actions if a not in ACTIONS]
    out = ["<table><tr><th>action</th><th>share of items</th></tr>"]
    out += [f"<tr><td>{_e(a)}</td><td>{_with_ci(actions[a], _pct)}</td></tr>" for a in names]
    out.append("</table>")
    return out


def _review_load_table(overall: Mapping[str, Any], capacity: Any) -> list[str]:
    load = overall.get("review_load") or {}
    out = [f"<p>Share of items the policy sends to people: overall, the items whose decision is review; per "
           f"category, the items whose action for that category is review (an item can be in several). Review "
           f"capacity: {_e(_capacity_text(capacity))}.</p>", "<table><tr><th>scope</th><th>share of items</th></tr>"]
    out.append(f'<tr class="summary"><td>overall</td><td>{_with_ci(_review_load(overall), _pct)}</td></tr>')
    for category, estimate in (load.get("categories") or {}).items():
        out.append(f'<tr><td class="name">{_e(category)}</td><td>{_with_ci(estimate, _pct)}</td></tr>')
    out.append("</table>")
    return out


def _confusion_table(overall: Mapping[str, Any], positive_action: str) -> list[str]:
    heads = ["category", "TP", "FP", "FN", "TN"] + [f"{a} threshold" for a in ACTIONS[1:]]
    out = [f"<p>Predicted positive: the policy's action for the category is <b>{_e(positive_action)}</b> or "
           "stronger.</p>", "<table>" + _head_row(heads)]
    for category, entry in (overall.get("categories") or {}).items():
        if (entry or {}).get("too_small"):
            continue
        confusion = (entry or {}).get("confusion") or {}
        thresholds = (entry or {}).get("thresholds") or {}
        cells = [category] + [confusion.get(k, "n/a") for k in ("tp", "fp", "fn", "tn")]
        cells += [_num(thresholds.get(a)) for a in ACTIONS[1:]]
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return out


def _plots(report: Mapping[str, Any]) -> list[str]:
    overall = report.get("overall") or {}
    curves = report.get("curves") or {}
    action = str(report.get("positive_action") or "restrict")
    out = []
    for category in _category_order(overall):
        if category not in curves:
            note = "not labelled by this set" if _is_unlabelled(overall, category) else "no curves in the report"
            out.append(f'<p class="note">{_e(category)}: {_e(note)}</p>')
            continue
        thresholds = ((overall.get("categories") or {}).get(category) or {}).get("thresholds") or {}
        png = _category_png(category, curves[category] or {}, report.get("target_precision"),
                            thresholds.get(action), action)
        out.append(_img(png, f"{category}: precision-recall curve, reliability diagram and score histogram"))
    return out


def _slice_tables(report: Mapping[str, Any]) -> list[str]:
    slices = report.get("slices") or {}
    if not slices:
        return ["<p>No slices in this report.</p>"]
    target = report.get("target_precision")
    heads = ["slice", "items", "labelled", "positives"] + [_metric_label(m, target) for m in SLICE_METRICS]
    out = []
    overall = report.get("overall") or {}
    for category in _category_order(overall):
        out.append(f"<h3>{_e(category)}</h3>")
        if _is_unlabelled(overall, category):
            out.append('<p class="note">not labelled by this set</p>')
            continue
        out.append("<table>" + _head_row(heads))
        for name, scope in slices.items():
            scope = scope or {}
            lead = f'<td class="name">{_e(name)}</td>'
            if scope.get("too_small"):
                out.append(_too_small_row(lead, len(heads), scope))
                continue
            if _is_unlabelled(scope, category):
                out.append(_note_row(lead, len(heads), scope, "not labelled by this set"))
                continue
            entry = scope["categories"][category] or {}
            counts = [_e(scope.get("items", "n/a")), _e(entry.get("labelled", "n/a")),
                      _e(entry.get("positives", "n/a"))]
            if entry.get("too_small"):
                out.append(f'<tr class="too-small">{lead}' + "".join(f"<td>{c}</td>" for c in counts)
                           + f'<td colspan="{len(SLICE_METRICS)}" class="note">too small: {_e(entry["too_small"])}'
                           "</td></tr>")
                continue
            metrics = entry.get("metrics") or {}
            cells = counts + [_with_ci(metrics.get(m)) for m in SLICE_METRICS]
            out.append(f"<tr>{lead}" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        out.append("</table>")
    return out


def render_evaluation_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML page (inline CSS, PNG plots as ``data:`` URIs) of an evaluation report.

    Raises:
        ValueError: the report is not ``kind: "evaluation"`` of schema version 1.
    """
    _check(report, "evaluation")
    golden = report.get("golden") or {}
    overall = report.get("overall") or {}
    title = f"Tripwire evaluation: {_golden_title(golden)}"
    out = _page_start(title) + _verdict(report.get("gate"))
    out.append(f"<h1>{_e(title)}</h1>")
    out += _headline(report)
    out.append("<h2>Set, model and settings</h2>")
    out += _evaluation_header(report)
    out.append(f"<h2>Overall ({_e(overall.get('items', 'n/a'))} items)</h2>")
    out.append("<p>Each cell: the estimate and its 95% interval, which contains it; n/a where the metric is "
               "undefined (for example precision with no predicted positives). Intervals are the bootstrap's "
               "percentiles; ECE, whose plug-in resampling biases upward, is reported bias-corrected with the "
               "basic bootstrap interval (as is any figure outside its own percentile interval); where every "
               "resample agrees, a proportion gets Wilson's interval and anything else reads "
               "[not estimable]. Macro: mean over labelled categories; micro: pooled confusion counts.</p>")
    out += _overall_table(overall, report.get("target_precision"))
    out.append("<h2>Decision rates</h2>")
    out += _actions_table(overall.get("actions") or {})
    out.append("<h2>Review load</h2>")
    out += _review_load_table(overall, report.get("review_capacity"))
    out.append("<h2>Confusion and thresholds</h2>")
    out += _confusion_table(overall, str(report.get("positive_action") or "restrict"))
    out.append("<h2>Curves</h2>")
    action = _e(report.get("positive_action") or "restrict")
    out.append("<p>Per category: the precision-recall curve (dotted: the target precision); the reliability "
               "diagram, mean score against positive rate per score bin (dashed: perfect calibration; marker "
               "area: items in the bin); score histograms of positives and negatives, each as a share of its "
               f"class (dotted: the {action} threshold).</p>")
    out += _plots(report)
    out.append("<h2>Slices</h2>")
    out += _slice_tables(report)
    out.append("</body></html>")
    page = "\n".join(out)
    logger.info("rendered the evaluation page of %s: %d bytes", _golden_title(golden), len(page))
    return page


# --- comparison page -------------------------------------------------------------------------------------

def _metric_names(rows: Mapping[str, Any]) -> list[str]:
    names = [m for m in METRICS if m in rows]
    return names + [m for m in rows if m not in METRICS]


def _delta_cells(row: Mapping[str, Any]) -> tuple[str, str, str]:
    lo, hi = _ci_pair(row.get("ci"))
    delta = _e(_num(row.get("delta"), signed=True))
    if _finite(row.get("delta")) is not None and (lo is not None or hi is not None):
        delta += f' <span class="ci">[{_e(_num(lo, signed=True))}, {_e(_num(hi, signed=True))}]</span>'
    return _e(_num(row.get("baseline"))), _e(_num(row.get("candidate"))), delta


def _comparison_rows(label: str, rows: Mapping[str, Any], target: Any) -> list[str]:
    """Rows (metric, baseline, candidate, delta [CI]) of one category or of the macro average."""
    names = _metric_names(rows)
    if not names:
        return [f'<tr><td class="name">{_e(label)}</td><td colspan="4" class="note">not labelled by this set'
                "</td></tr>"]
    out = []
    for i, metric in enumerate(names):
        row = rows[metric] or {}
        lead = f'<td class="name group" rowspan="{len(names)}">{_e(label)}</td>' if i == 0 else ""
        klass = ' class="regression"' if row.get("regression") else ""
        direction = " (lower is better)" if metric in LOWER_IS_BETTER else ""
        cells = _delta_cells(row)
        out.append(f'<tr{klass}>{lead}<td class="name">{_e(_metric_label(metric, target) + direction)}</td>'
                   + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return out


def _comparison_table(entry: Mapping[str, Any], target: Any) -> list[str]:
    out = ["<table>" + _head_row(["category", "metric", "baseline", "candidate", "Δ [interval]"], names=2)]
    for category, rows in (entry.get("categories") or {}).items():
        out += _comparison_rows(category, rows or {}, target)
    if entry.get("macro"):
        out += _comparison_rows("macro", entry["macro"], target)
    out.append("</table>")
    return out


def _slice_matrix(slices: Mapping[str, Any], target: Any) -> list[str]:
    if not slices:
        return ["<p>No slices in this set.</p>"]
    metrics: list[str] = []
    for scope in slices.values():
        for rows in ((scope or {}).get("categories") or {}).values():
            metrics += [m for m in _metric_names(rows or {}) if m not in metrics]
    metrics = [m for m in METRICS if m in metrics] + [m for m in metrics if m not in METRICS]
    heads = ["slice", "items", "category"] + [_metric_label(m, target) for m in metrics]
    out = ["<p>Each cell: baseline → candidate, then Δ and its interval.</p>",
           '<table class="matrix">' + _head_row(heads, names=3)]
    for name, scope in slices.items():
        scope = scope or {}
        lead = f'<td class="name">{_e(name)}</td>'
        if scope.get("too_small"):
            out.append(_too_small_row(lead, len(heads), scope))
            continue
        categories = scope.get("categories") or {}
        small = scope.get("too_small_categories") or {}
        if not categories and not small:
            out.append(_note_row(lead, len(heads), scope, "no labelled categories"))
            continue
        if not categories:
            out.append(_note_row(lead, len(heads), scope, "every category too small: " +
                                 "; ".join(f"{c}: {why}" for c, why in small.items())))
            continue
        for i, (category, rows) in enumerate(categories.items()):
            cells = []
            if i == 0:
                cells.append(f'<td class="name" rowspan="{len(categories)}">{_e(name)}</td>'
                             f'<td rowspan="{len(categories)}">{_e(scope.get("items", "n/a"))}</td>')
            cells.append(f'<td class="name">{_e(category)}</td>')
            rows = rows or {}
            if not rows:
                cells.append(f'<td colspan="{len(metrics)}" class="note">not labelled by this set</td>')
            for metric in metrics if rows else ():
                if metric not in rows:
                    cells.append("<td>—</td>")
                    continue
                baseline, candidate, delta = _delta_cells(rows[metric] or {})
                klass = ' class="regression"' if (rows[metric] or {}).get("regression") else ""
                cells.append(f'<td{klass}><span class="bc">{baseline} → {candidate}</span><br>{delta}</td>')
            out.append("<tr>" + "".join(cells) + "</tr>")
        for category, why in small.items():
            out.append(f'<tr class="too-small"><td class="name">{_e(name)}</td><td>{_e(scope.get("items", "n/a"))}'
                       f'</td><td class="name">{_e(category)}</td><td colspan="{len(metrics)}" class="note">too small: '
                       f"{_e(why)}</td></tr>")
    out.append("</table>")
    return out


def _count_regressions(report: Mapping[str, Any]) -> int:
    def count(categories: Mapping[str, Any]) -> int:
        return sum(bool((row or {}).get("regression")) for rows in categories.values() for row in (rows or {}).values())

    total = 0
    for entry in (report.get("sets") or {}).values():
        total += count(entry.get("categories") or {}) + count({"macro": entry.get("macro") or {}})
        for scope in (entry.get("slices") or {}).values():
            total += count((scope or {}).get("categories") or {})
    return total


def render_comparison_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML page of a candidate-vs-baseline comparison report: per golden set a delta
    chart of PR-AUC and tables of baseline, candidate and delta per category, macro and slice, with the
    rows the comparison flagged as regressions highlighted.

    Raises:
        ValueError: the report is not ``kind: "comparison"`` of schema version 1.
    """
    _check(report, "comparison")
    baseline, candidate = report.get("baseline") or {}, report.get("candidate") or {}
    target = report.get("target_precision")
    title = (f"Tripwire comparison: {candidate.get('model_version') or 'candidate'} vs "
             f"{baseline.get('model_version') or 'baseline'}")
    out = _page_start(title) + _verdict(report.get("gate"))
    out.append(f"<h1>{_e(title)}</h1>")
    out.append("<table class=\"meta\"><tr><th></th><th>baseline</th><th>candidate</th></tr>")
    for key, label in (("checkpoint", "checkpoint"), ("model_version", "model version"),
                       ("policy_version", "policy version")):
        out.append(f"<tr><th>{_e(label)}</th><td><code>{_e(baseline.get(key) or 'n/a')}</code></td>"
                   f"<td><code>{_e(candidate.get(key) or 'n/a')}</code></td></tr>")
    out.append("</table>")
    out.append(f"<p>Bootstrap: {_e(_bootstrap_text(report.get('bootstrap')))} (paired: both models on the same "
               f"resamples). Target precision {_e(_num(target, 2))}. Δ is candidate minus baseline; "
               f"highlighted: {_e(_count_regressions(report))} regression(s) flagged by the comparison.</p>")
    sets = report.get("sets") or {}
    if not sets:
        out.append("<p>No golden sets in this report.</p>")
    for set_name, entry in sets.items():
        entry = entry or {}
        golden = entry.get("golden") or {"name": set_name}
        set_title = _golden_title(golden)
        out.append(f"<h2>{_e(set_title)}</h2>")
        out.append(f"<p>sha256 {_sha(golden)}; {_e(entry.get('items', 'n/a'))} items compared.</p>")
        png = _delta_png(set_title, entry.get("categories") or {}, DELTA_CHART_METRIC)
        out.append(_img(png, f"{set_title}: per-category delta of {_LABELS[DELTA_CHART_METRIC]} with intervals",
                        f"Δ {_LABELS[DELTA_CHART_METRIC]} per category with its interval (red: flagged "
                        "regression; n/a: undefined for a model)."))
        out += _comparison_table(entry, target)
        out.append(f"<h3>Slices of {_e(set_title)}</h3>")
        out += _slice_matrix(entry.get("slices") or {}, target)
    out.append("</body></html>")
    page = "\n".join(out)
    logger.info("rendered the comparison page of %d set(s): %d bytes", len(sets), len(page))
    return page


def write_report(out: str, report: dict[str, Any]) -> tuple[str, str]:
    """``metrics.json`` and ``report.html`` under ``out``; returns their paths."""
    os.makedirs(out, exist_ok=True)
    metrics_path, html_path = os.path.join(out, "metrics.json"), os.path.join(out, "report.html")
    with open(metrics_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1, allow_nan=False)
    render = render_comparison_html if report["kind"] == "comparison" else render_evaluation_html
    with open(html_path, "w", encoding="utf-8") as handle:
        handle.write(render(report))
    return metrics_path, html_path

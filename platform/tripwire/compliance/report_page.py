"""The transparency report as a page: ``index.html`` with its plots, the CSV tables and ``report.json``.

The totals that must reconcile (decisions, enforced decisions, statements of reasons issued) head the page
in ``<div id="totals">``. Every string that came from the log is HTML-escaped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tripwire.compliance.report_tables import Table, report_tables, write_csv
from tripwire.compliance.report import (ACTION_COLOURS, ALL_LANGUAGES, BY_PEOPLE, FULLY_AUTOMATED, NO_CATEGORY,
                                        OTHER_COLOUR, PLOT_MAX_CATEGORIES, PLOT_MAX_LANGUAGES, TIME_BUCKETS, Proportion,
                                        TransparencyReport)
from tripwire.reporting.figures import figure as _figure, img as _img, png as _png, style_axes as _style
from tripwire.reporting.html import CSS as _CSS, escape as _e, head_row as _head_row, shorten as _short

logger = logging.getLogger(__name__)


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
    """The reports' axes style (:func:`tripwire.reporting.figures.style_axes`) with larger text: these plots are
    shown at their pixel size, and their tick labels (categories, languages) are what a reader looks for."""
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

"""Drift between two windows of moderation results: score PSI per category, decision rates, modality mix.

A *window* is a list of result rows (a scan's results, or results the HTTP API served; see
:mod:`tripwire.monitoring.windows`). :func:`compare_windows` compares a reference window with a current one
and checks the differences against :class:`MonitorBars`:

* **Scores**: the Population Stability Index of each category's scores (:func:`psi`), with bins at the
  reference window's quantiles. Bands (:func:`psi_band`): below 0.1 stable, 0.1 to 0.25 moderate, 0.25
  and above major.
* **Decisions**: the share of each action (allow / review / restrict / block) in each window, and the
  change (current minus reference, as a fraction: 0.05 is 5 percentage points).
* **Modality mix**: the share of each modality combination (``"text"``, ``"image+text"``: sorted names
  joined by ``+``) in each window, and the change.

Both distributions also get their total variation distance (half the sum of the absolute changes).
The report is plain JSON-ready data with stable keys; :func:`render_monitor_html` turns it into a
self-contained HTML page. Memory is O(items x categories) floats: one array of scores per category and
window.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from tripwire.common.config import ConfigError, to_dict
from tripwire.policy import ACTION_NAMES

logger = logging.getLogger(__name__)

ACTIONS = ACTION_NAMES  # mildest first; other actions seen are listed after these
PSI_EPSILON = 1e-4  # the share given to an empty bin, so PSI stays finite
STABLE_BELOW, MAJOR_FROM = 0.1, 0.25
HISTOGRAM_BINS = 20  # fixed bins over [0, 1] for the report's histograms (scores are calibrated to [0, 1])
_ROUND = 6  # decimals kept in the report
_TOLERANCE = 1e-9  # a change this close to its bar does not exceed it (float noise in count ratios)


@dataclass(frozen=True)
class MonitorBars:
    """How much drift a current window may show before the monitor raises an alarm.

    Attributes:
        max_psi: the highest PSI a category's scores may reach (0.25 is where the "major" band starts).
        max_action_rate_change: the largest change of an action's rate, as a fraction (0.05: 5 points).
        max_modality_share_change: the largest change of a modality combination's share, as a fraction.
        min_window_items: the fewest items a window may have; a smaller window is an error, not a pass.
    """

    max_psi: float = 0.25
    max_action_rate_change: float = 0.05
    max_modality_share_change: float = 0.10
    min_window_items: int = 100

    def __post_init__(self):
        if not (math.isfinite(self.max_psi) and self.max_psi > 0):
            raise ConfigError(f"max_psi: must be a positive number, got {self.max_psi}")
        for name in ("max_action_rate_change", "max_modality_share_change"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"{name}: must be a fraction in (0, 1] (0.05 is 5 points), got {value}")
        if self.min_window_items < 1:
            raise ConfigError(f"min_window_items: must be at least 1, got {self.min_window_items}")


def psi_band(value: float) -> str:
    """``"stable"`` below 0.1, ``"moderate"`` from 0.1 to below 0.25, ``"major"`` from 0.25."""
    if value < STABLE_BELOW:
        return "stable"
    return "moderate" if value < MAJOR_FROM else "major"


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """The inner bin edges: the reference's quantiles at 1/bins .. (bins-1)/bins, duplicates dropped.

    The outer bins are open-ended, so values of the other window beyond the reference's range still count.
    """
    return np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # Bin i holds edges[i-1] <= x < edges[i]; bin 0 everything below edges[0], the last everything above.
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return np.maximum(counts / len(values), PSI_EPSILON)


def _scores_array(scores: Any, label: str) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{label}: no scores")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{label}: scores must be finite numbers")
    return array


def psi(reference_scores: Sequence[float] | np.ndarray, current_scores: Sequence[float] | np.ndarray,
        bins: int = 10) -> float:
    """The Population Stability Index of one category's scores: sum over bins of (c - r) * ln(c / r).

    Args:
        reference_scores: the reference window's scores; its quantiles make the bins.
        current_scores: the current window's scores.
        bins: quantile bins (fewer when the reference has ties at its quantiles).

    Returns:
        PSI (0 for identical distributions); an empty bin counts as a share of :data:`PSI_EPSILON`.
    """
    if bins < 2:
        raise ValueError(f"bins: must be at least 2, got {bins}")
    reference = _scores_array(reference_scores, "reference_scores")
    current = _scores_array(current_scores, "current_scores")
    edges = quantile_edges(reference, bins)
    r, c = _bin_shares(reference, edges), _bin_shares(current, edges)
    return float(np.sum((c - r) * np.log(c / r)))


def row_action(row: Mapping[str, Any]) -> str | None:
    """A row's action: ``row["action"]`` (scan result rows) or ``row["decision"]["action"]`` (API results)."""
    if isinstance(row.get("action"), str):
        return row["action"]
    decision = row.get("decision")
    if isinstance(decision, Mapping) and isinstance(decision.get("action"), str):
        return decision["action"]
    return None


def modality_mix(modalities: Sequence[str] | None) -> str:
    """A row's modality combination: sorted names joined by ``+`` (``"image+text"``); ``"none"`` if empty."""
    names = sorted(set(modalities or ()))
    return "+".join(names) if names else "none"


def _shares(counts: Counter, n: int, order: Sequence[str]) -> dict[str, float]:
    return {key: counts.get(key, 0) / n for key in order}


def _distribution_change(reference: Counter, current: Counter, n_ref: int, n_cur: int,
                         order: Sequence[str]) -> tuple[dict[str, dict[str, float]], float]:
    r, c = _shares(reference, n_ref, order), _shares(current, n_cur, order)
    table = {key: {"reference": round(r[key], _ROUND), "current": round(c[key], _ROUND),
                   "change": round(c[key] - r[key], _ROUND), "change_pp": round(100 * (c[key] - r[key]), 4)}
             for key in order}
    total_variation = 0.5 * sum(abs(c[key] - r[key]) for key in order)
    return table, round(total_variation, _ROUND)


def _check_size(label: str, rows: Sequence, bars: MonitorBars) -> None:
    if len(rows) < bars.min_window_items:
        raise ConfigError(f"{label} window: {len(rows)} items, fewer than min_window_items "
                          f"({bars.min_window_items}); drift on so few items says nothing")


def _category_scores(rows: Sequence[Mapping[str, Any]], categories: Sequence[str], label: str) -> dict[str, np.ndarray]:
    values: dict[str, list[float]] = {c: [] for c in categories}
    for i, row in enumerate(rows):
        scores = row.get("scores")
        if not isinstance(scores, Mapping):
            raise ConfigError(f"{label} window: row {i} has no 'scores' mapping")
        for category in categories:
            score = scores.get(category)
            if score is not None:
                values[category].append(score)
    arrays = {}
    for category, scores in values.items():
        if not scores:
            raise ConfigError(f"{label} window: no scores for category {category!r} (were the windows scored "
                              f"against different taxonomies? then take a new reference window)")
        arrays[category] = np.asarray(scores, dtype=np.float64)
        if not np.all(np.isfinite(arrays[category])):
            raise ConfigError(f"{label} window: category {category!r} has scores that are not finite numbers")
    return arrays


def _actions(rows: Sequence[Mapping[str, Any]], label: str) -> Counter:
    counts: Counter = Counter()
    for i, row in enumerate(rows):
        action = row_action(row)
        if action is None:
            raise ConfigError(f"{label} window: row {i} has no action (neither 'action' nor 'decision.action')")
        counts[action] += 1
    return counts


def _histogram(values: np.ndarray) -> list[float]:
    counts, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return [round(float(x), _ROUND) for x in counts / len(values)]


def _share_alarms(kind: str, reference: Counter, current: Counter, n_ref: int, n_cur: int, order: Sequence[str],
                  bar: float) -> list[dict[str, Any]]:
    """An alarm per value whose share changed by more than ``bar`` between the windows."""
    alarms = []
    for name in order:
        change = current.get(name, 0) / n_cur - reference.get(name, 0) / n_ref
        if abs(change) > bar + _TOLERANCE:
            alarms.append({"kind": kind, "name": name, "value": round(change, _ROUND), "bar": bar})
    return alarms


def compare_windows(reference_rows: Sequence[Mapping[str, Any]], current_rows: Sequence[Mapping[str, Any]],
                    categories: Sequence[str], bars: MonitorBars | None = None, *,
                    reference_source: str | None = None, current_source: str | None = None,
                    bins: int = 10) -> dict[str, Any]:
    """Compares the current window with the reference and checks the changes against ``bars``.

    Args:
        reference_rows, current_rows: result rows, each with ``scores`` (category -> float), an action
            (``action``, or ``decision.action`` as the API returns it) and ``modalities`` (names).
        categories: the categories to compare, in report order.
        bars: the alarm bars (default: :class:`MonitorBars`'s defaults).
        reference_source, current_source: where each window came from, for the report.
        bins: PSI quantile bins.

    Returns:
        JSON-ready: ``reference`` and ``current`` (``items``, ``source``), ``bars``, ``categories``
        (category -> ``psi``, ``band``, ``reference_mean``, ``current_mean``, ``histogram``), ``actions``
        and ``modalities`` (``shares``: name -> ``reference``, ``current``, ``change``, ``change_pp``; and
        ``total_variation``), ``alarms`` (``kind``, ``name``, ``value``, ``bar``) and ``ok`` (no alarms).
        A change exceeds its bar when its absolute value is greater than the bar; a PSI when it is greater.

    Raises:
        ConfigError: a window smaller than ``bars.min_window_items`` (naming its size), a row without
            scores or action, or a category with no scores in a window.
    """
    bars = bars or MonitorBars()
    if not categories:
        raise ConfigError("categories: none to compare (the windows' rows have no scores)")
    _check_size("reference", reference_rows, bars)
    _check_size("current", current_rows, bars)
    n_ref, n_cur = len(reference_rows), len(current_rows)
    ref_scores = _category_scores(reference_rows, categories, "reference")
    cur_scores = _category_scores(current_rows, categories, "current")

    alarms: list[dict[str, Any]] = []
    category_report = {}
    for category in categories:
        value = psi(ref_scores[category], cur_scores[category], bins)
        category_report[category] = {
            "psi": round(value, _ROUND), "band": psi_band(value),
            "reference_mean": round(float(ref_scores[category].mean()), _ROUND),
            "current_mean": round(float(cur_scores[category].mean()), _ROUND),
            "histogram": {"edges": [round(float(e), _ROUND) for e in np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)],
                          "reference": _histogram(ref_scores[category]),
                          "current": _histogram(cur_scores[category])}}
        if value > bars.max_psi + _TOLERANCE:
            alarms.append({"kind": "psi", "name": category, "value": round(value, _ROUND), "bar": bars.max_psi})

    ref_actions, cur_actions = _actions(reference_rows, "reference"), _actions(current_rows, "current")
    action_order = list(ACTIONS) + sorted((set(ref_actions) | set(cur_actions)) - set(ACTIONS))
    action_table, action_tv = _distribution_change(ref_actions, cur_actions, n_ref, n_cur, action_order)
    alarms += _share_alarms("action_rate", ref_actions, cur_actions, n_ref, n_cur, action_order,
                            bars.max_action_rate_change)

    ref_mix = Counter(modality_mix(row.get("modalities")) for row in reference_rows)
    cur_mix = Counter(modality_mix(row.get("modalities")) for row in current_rows)
    mix_order = sorted(set(ref_mix) | set(cur_mix))
    mix_table, mix_tv = _distribution_change(ref_mix, cur_mix, n_ref, n_cur, mix_order)
    alarms += _share_alarms("modality_share", ref_mix, cur_mix, n_ref, n_cur, mix_order,
                            bars.max_modality_share_change)

    if alarms:
        logger.info("drift: %d alarm(s): %s", len(alarms), ", ".join(f"{a['kind']} {a['name']}" for a in alarms))
    return {
        "reference": {"items": n_ref, "source": reference_source},
        "current": {"items": n_cur, "source": current_source},
        "bars": to_dict(bars),
        "categories": category_report,
        "actions": {"shares": action_table, "total_variation": action_tv},
        "modalities": {"shares": mix_table, "total_variation": mix_tv},
        "alarms": alarms,
        "ok": not alarms,
    }


# --- HTML ---------------------------------------------------------------------------------------------

_BAND_COLOURS = {"stable": "#d8f0d8", "moderate": "#fbe7b5", "major": "#f6c4c4"}
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.verdict { padding: .8em 1em; border-radius: 6px; font-weight: 600; }
.ok { background: #d8f0d8; } .alarm { background: #f6c4c4; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.over { font-weight: 700; color: #a00; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plots figure { margin: 0; } figcaption { font-size: .9em; text-align: center; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _histogram_png(category: str, histogram: Mapping[str, Any]) -> str:
    """The two windows' score histograms of one category, as a base64 PNG (Agg canvas: no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    edges = np.asarray(histogram["edges"])
    fig = Figure(figsize=(4.0, 2.4), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.stairs(histogram["reference"], edges, label="reference", color="#4a7ab8", fill=True, alpha=0.35)
    ax.stairs(histogram["current"], edges, label="current", color="#c0392b", linewidth=1.6)
    ax.set_title(category, fontsize=10)
    ax.set_xlabel("score", fontsize=8)
    ax.set_ylabel("share of items", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _share_table(title: str, section: Mapping[str, Any], bar: float, flagged: set[str]) -> list[str]:
    out = [f"<h2>{_e(title)}</h2>", "<table><tr><th>name</th><th>reference</th><th>current</th><th>change</th></tr>"]
    for name, row in section["shares"].items():
        over = ' class="over"' if name in flagged else ""
        change = f"{row['change_pp']:+.1f} pp"
        out.append(f"<tr><td>{_e(name)}</td><td>{_e(_pct(row['reference']))}</td><td>{_e(_pct(row['current']))}</td>"
                   f"<td{over}>{_e(change)}</td></tr>")
    out.append(f"</table><p>Total variation distance: {_e(section['total_variation'])}; bar: "
               f"{_e(round(100 * bar, 2))} points per row.</p>")
    return out


def render_monitor_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML page (inline CSS, PNGs as data: URIs) of a :func:`compare_windows` report."""
    bars, alarms = report["bars"], report["alarms"]
    verdict = "OK" if report["ok"] else "ALARM"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>Tripwire drift monitor</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>Tripwire drift monitor</h1>",
           f'<div class="verdict {"ok" if report["ok"] else "alarm"}">{_e(verdict)}: '
           f"{_e(len(alarms))} alarm(s)</div>"]
    if alarms:
        out.append("<ul>")
        for alarm in alarms:
            out.append(f"<li>{_e(alarm['kind'])} <b>{_e(alarm['name'])}</b>: {_e(alarm['value'])} "
                       f"(bar {_e(alarm['bar'])})</li>")
        out.append("</ul>")
    out.append("<table><tr><th>window</th><th>items</th><th>source</th></tr>")
    for window in ("reference", "current"):
        source = report[window]["source"] or ""
        out.append(f"<tr><td>{_e(window)}</td><td>{_e(report[window]['items'])}</td><td>{_e(source)}</td></tr>")
    out.append("</table>")

    out.append(f"<h2>Score stability (PSI; bar {_e(bars['max_psi'])})</h2>")
    out.append("<table><tr><th>category</th><th>PSI</th><th>band</th><th>reference mean</th><th>current mean</th></tr>")
    for category, row in report["categories"].items():
        colour = _BAND_COLOURS.get(row["band"], "#fff")
        cells = [category, f"{row['psi']:.4f}", row["band"], f"{row['reference_mean']:.4f}",
                 f"{row['current_mean']:.4f}"]
        out.append(f'<tr style="background:{colour}">' + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out.append("</table><p>Bands: below 0.1 stable, 0.1 to 0.25 moderate, 0.25 and above major.</p>")

    flagged_actions = {a["name"] for a in alarms if a["kind"] == "action_rate"}
    flagged_mixes = {a["name"] for a in alarms if a["kind"] == "modality_share"}
    out += _share_table("Decision rates", report["actions"], bars["max_action_rate_change"], flagged_actions)
    out += _share_table("Modality mix", report["modalities"], bars["max_modality_share_change"], flagged_mixes)

    out.append('<h2>Score histograms</h2><div class="plots">')
    for category, row in report["categories"].items():
        png = _histogram_png(category, row["histogram"])
        caption = f"{category}: PSI {row['psi']:.3f} ({row['band']})"
        out.append(f'<figure><img alt="{_e(category)} score histogram" src="data:image/png;base64,{png}">'
                   f"<figcaption>{_e(caption)}</figcaption></figure>")
    out.append("</div></body></html>")
    return "\n".join(out)

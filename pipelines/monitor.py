"""Online drift monitoring: compare a current window of moderation results with a reference window.

    tripwire monitor --reference runs/scan/last-month --current results/today.jsonl --out runs/monitor/today \\
                     [--bars pipelines/configs/monitor.yaml]

(``tripwire`` is :mod:`entrypoints.cli`; from cron or a RayJob use ``python -m entrypoints.cli monitor ...``.)

Each window is a scan output folder or a JSONL file of results the HTTP API served (any fsspec URI; see
:mod:`tripwire.monitoring.windows`). The comparison (:mod:`tripwire.monitoring.drift`): per-category score PSI,
decision rates and the modality mix, checked against the bars. Writes ``<out>/monitor.json`` (the report)
and ``<out>/monitor.html`` (the same, with score histograms). The command exits 1 when a bar is exceeded,
so whatever runs it can alarm on the status. No Ray: the windows are read with pyarrow and fsspec.
"""

from __future__ import annotations

import json
from typing import Any

import fsspec

from tripwire.common.config import load_yaml
from tripwire.monitoring.drift import MonitorBars, compare_windows, render_monitor_html
from tripwire.monitoring.windows import read_window

REPORT_JSON, REPORT_HTML = "monitor.json", "monitor.html"


def window_categories(reference: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[str]:
    """The union of the windows' score keys, in the order they first appear (reference window first)."""
    seen: dict[str, None] = {}
    for row in (*reference, *current):
        for category in row["scores"]:
            seen.setdefault(category, None)
    return list(seen)


def write_report(out: str, report: dict[str, Any]) -> tuple[str, str]:
    """Writes ``monitor.json`` and ``monitor.html`` under ``out`` (any fsspec URI); returns their paths."""
    fs, path = fsspec.core.url_to_fs(out)
    fs.makedirs(path, exist_ok=True)
    base = out.rstrip("/")
    with fs.open(f"{path}/{REPORT_JSON}", "w") as handle:
        handle.write(json.dumps(report, indent=2))
    with fs.open(f"{path}/{REPORT_HTML}", "w") as handle:
        handle.write(render_monitor_html(report))
    return f"{base}/{REPORT_JSON}", f"{base}/{REPORT_HTML}"


def run(reference: str, current: str, out: str, bars_path: str | None = None) -> dict[str, Any]:
    """Reads both windows, compares them, writes the report under ``out`` and returns it.

    Args:
        reference: the reference window (a scan output folder or a JSONL file of served results).
        current: the window to check.
        out: the folder for ``monitor.json`` and ``monitor.html``.
        bars_path: a :class:`~tripwire.monitoring.drift.MonitorBars` YAML (default: the dataclass defaults, which
            ``pipelines/configs/monitor.yaml`` spells out).

    Raises:
        ConfigError: a bad bars file, a missing or malformed window, or a window under
            ``min_window_items`` items.
    """
    bars = load_yaml(MonitorBars, bars_path) if bars_path else MonitorBars()
    reference_rows, current_rows = read_window(reference), read_window(current)
    categories = window_categories(reference_rows, current_rows)
    report = compare_windows(reference_rows, current_rows, categories, bars,
                             reference_source=reference, current_source=current)
    json_path, html_path = write_report(out, report)
    print(f"drift monitor: {'OK' if report['ok'] else 'ALARM'}: {report['reference']['items']} reference items, "
          f"{report['current']['items']} current items, {len(report['alarms'])} alarm(s)", flush=True)
    for alarm in report["alarms"]:
        print(f"  {alarm['kind']} {alarm['name']}: {alarm['value']} (bar {alarm['bar']})", flush=True)
    print(f"report: {json_path}", flush=True)
    print(f"page:   {html_path}", flush=True)
    return report

"""HTML for the reports: one stylesheet, escaping, page and table scaffolding."""

from __future__ import annotations

import html
from typing import Any, Sequence

MAX_PLOT_LABEL = 28

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.2em 1.6em; color: #222; font-size: 14px; }
h1 { font-size: 1.4em; margin: .8em 0 .4em; } h2 { font-size: 1.2em; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin: 1.2em 0 .3em; }
.verdict { padding: .7em 1em; border-radius: 6px; font-weight: 600; border: 2px solid; }
.verdict ul { margin: .4em 0 0; font-weight: 400; }
.pass { background: #d8f0d8; border-color: #2e7d32; color: #1b4d1e; }
.fail { background: #f9d3d3; border-color: #c62828; color: #7a1111; }
.nogate { background: #eee; border-color: #999; color: #444; }
#headline { margin: .6em 0 1em; padding: .5em 1em; border-left: 4px solid #1f5fa8; background: #f4f7fc; }
#headline ul { margin: .2em 0; padding-left: 1.2em; } #headline li { margin: .15em 0; }
.over { color: #a31515; font-weight: 600; }
table { border-collapse: collapse; margin: .4em 0 .8em; font-size: .93em; }
th, td { border: 1px solid #ccc; padding: .2em .45em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; }
th:first-child, td:first-child, td.name, th.name { text-align: left; }
table.meta th { text-align: left; font-weight: 600; }
table.meta td { text-align: left; }
tr.summary td { background: #f7f7fb; font-weight: 600; }
.ci { color: #666; font-size: .85em; white-space: nowrap; }
.note { color: #555; font-style: italic; text-align: left; }
td.regression, tr.regression td:not(.group) { background: #f9d3d3; color: #7a1111; font-weight: 600; }
td.name { max-width: 16em; overflow-wrap: anywhere; }
.bc { color: #555; font-size: .88em; white-space: nowrap; }
table.matrix { font-size: .8em; } table.matrix td { padding: .15em .35em; }
figure { margin: .6em 0 1em; } figcaption { font-size: .88em; color: #555; }
img { max-width: 100%; height: auto; display: block; }
code { font-size: .92em; }
"""


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def shorten(text: Any, limit: int = MAX_PLOT_LABEL) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def page_start(title: str) -> list[str]:
    return ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>", f"<style>{CSS}</style></head><body>"]


def head_row(heads: Sequence[str], names: int = 1) -> str:
    """A table's header row; the first ``names`` columns hold names (left-aligned), the rest numbers."""
    return "<tr>" + "".join(f'<th class="name">{escape(h)}</th>' if i < names else f"<th>{escape(h)}</th>"
                            for i, h in enumerate(heads)) + "</tr>"


def meta_table(rows: Sequence[tuple[str, str]]) -> list[str]:
    """Two-column table of (label, already-escaped HTML value)."""
    out = ['<table class="meta">']
    out += [f"<tr><th>{escape(label)}</th><td>{value}</td></tr>" for label, value in rows]
    out.append("</table>")
    return out

"""The evaluation and comparison HTML pages (tripwire.evaluation.report), parsed back with html.parser.

The reports come from tests/report_fixtures.py: synthetic but self-consistent numbers, with the awkward
cases on purpose (null metrics, a too-small slice, an unlabelled category, ``<script>`` names, a failing
gate). The parser checks that every end tag closes the innermost open element, and keeps each table
row's cell texts and each element's text by id and class, so the tests read the page as a browser would
lay it out (tests/integration/test_report_browser.py opens the same pages in Chromium).
"""

from __future__ import annotations

from tripwire.evaluation.metrics import CATEGORY_METRICS
import base64
import io
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from PIL import Image

import report_fixtures as fx
from helpers import REPO
from tripwire.evaluation.report import CATEGORY_FIGSIZE, render_comparison_html, render_evaluation_html
from tripwire.reporting.figures import FIGURE_DPI

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
LABELLED = list(fx.CATEGORIES)


class Page(HTMLParser):
    """A parsed page: nesting errors, tag counts, images, the body's first element, the text of every
    element that has an id or a class, and each table row's cell texts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[list] = []  # [tag, attrs, text parts, cells (rows only)]
        self.errors: list[str] = []
        self.tags: dict[str, int] = {}
        self.images: list[dict] = []
        self.urls: list[str] = []
        self.doctype = False
        self.body_first: tuple[str, dict] | None = None
        self.elements: list[tuple[str, dict, str]] = []
        self.rows: list[tuple[dict, list[str]]] = []

    def handle_decl(self, decl):
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if self.stack and self.stack[-1][0] == "body" and self.body_first is None:
            self.body_first = (tag, attrs)
        self.urls += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "img":
            self.images.append(attrs)
        if tag == "br":  # a line break separates words, as in a browser
            self.handle_data(" ")
        if tag not in VOID:
            self.stack.append([tag, attrs, [], []])

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.errors.append(f"<{tag}/> is not a void element")
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append(f"</{tag}> closes a void element")
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1][0] if self.stack else None}>")
            return
        _, attrs, parts, cells = self.stack.pop()
        text = " ".join("".join(parts).split())
        if "id" in attrs or "class" in attrs:
            self.elements.append((tag, attrs, text))
        if tag in ("td", "th"):
            row = next((entry for entry in reversed(self.stack) if entry[0] == "tr"), None)
            if row is not None:
                row[3].append(text)
        if tag == "tr":
            self.rows.append((attrs, cells))

    def handle_data(self, data):
        for entry in self.stack:
            entry[2].append(data)

    def by_id(self, element_id: str) -> list[tuple[str, dict, str]]:
        return [e for e in self.elements if e[1].get("id") == element_id]

    def by_class(self, name: str) -> list[tuple[str, dict, str]]:
        return [e for e in self.elements if name in e[1].get("class", "").split()]

    def rows_starting(self, first: str) -> list[tuple[dict, list[str]]]:
        return [(attrs, cells) for attrs, cells in self.rows if cells and cells[0] == first]


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    return parsed


def cell(estimate: dict) -> str:
    lo, hi = estimate["ci"]
    return f"{estimate['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def signed(value: float) -> str:
    return f"{value:+.3f}"


@pytest.fixture(scope="module")
def evaluation():
    report = fx.evaluation_report(gate="fail")
    page = render_evaluation_html(report)
    return report, page, parse(page)


@pytest.fixture(scope="module")
def comparison():
    report = fx.comparison_report(gate="fail")
    page = render_comparison_html(report)
    return report, page, parse(page)


@pytest.fixture(params=["evaluation", "comparison"])
def rendered(request):
    return request.getfixturevalue(request.param)


# --- both pages ------------------------------------------------------------------------------------------

def test_the_page_is_well_formed(rendered):
    _, page, parsed = rendered
    assert parsed.errors == []
    assert [entry[0] for entry in parsed.stack] == [], "elements left open at the end of the page"
    assert parsed.doctype
    assert parsed.tags["html"] == parsed.tags["head"] == parsed.tags["body"] == parsed.tags["title"] == 1
    assert '<meta charset="utf-8">' in page


def test_every_image_is_an_embedded_png(rendered):
    report, _, parsed = rendered
    expected = len(report["curves"]) if report["kind"] == "evaluation" else len(report["sets"])
    assert len(parsed.images) == expected
    for image in parsed.images:
        assert image["alt"].strip(), "an image without alt text"
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix), image["src"][:40]
        data = base64.b64decode(image["src"][len(prefix):], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as png:
            png.verify()


def test_nothing_is_fetched_and_nothing_runs(rendered):
    _, page, parsed = rendered
    assert parsed.tags.get("script", 0) == parsed.tags.get("link", 0) == parsed.tags.get("iframe", 0) == 0
    assert "<script" not in page.lower()
    fetched = [url[:40] for url in parsed.urls if not url.startswith("data:")]
    assert fetched == [], fetched
    assert "url(" not in page, "the inline CSS must not load anything"


def test_script_names_are_escaped_text(rendered):
    report, page, parsed = rendered
    escaped = "&lt;script&gt;alert(&#x27;tripwire&#x27;)&lt;/script&gt;"
    assert fx.EVIL not in page
    assert escaped in page
    # The parser decodes the entities again: the names are there as text, in a category row and a slice row.
    assert parsed.rows_starting(fx.EVIL), "no row for the <script> category"
    assert parsed.rows_starting(fx.EVIL_SLICE), "no row for the <script> slice"
    if report["kind"] == "evaluation":
        assert any(image["alt"].startswith(fx.EVIL) for image in parsed.images)


@pytest.mark.parametrize("gate, word, klass", [("fail", "FAIL", "fail"), ("pass", "PASS", "pass"),
                                               (None, "NO GATE", "nogate")])
@pytest.mark.parametrize("kind", ["evaluation", "comparison"])
def test_the_verdict_is_the_first_thing_in_the_body(kind, gate, word, klass):
    if kind == "evaluation":
        report = fx.evaluation_report(gate=gate, items=150)
        report["curves"] = {}  # no plots: the verdict is what is under test
        page = render_evaluation_html(report)
    else:
        report = fx.comparison_report(gate=gate)
        for entry in report["sets"].values():
            entry["slices"] = {}
        page = render_comparison_html(report)
    parsed = parse(page)
    tag, attrs = parsed.body_first
    assert tag == "div" and attrs.get("id") == "verdict", parsed.body_first
    assert klass in attrs["class"].split()
    ((_, _, text),) = parsed.by_id("verdict")
    assert text.startswith(word), text
    if gate == "fail":
        assert "2 of 3 release bar(s) failed" in text
        assert "min_recall" in text and "min_pr_auc" in text
        assert "max_ece" not in text, "a bar that passed is listed as failing"
        assert "hate.recall: 0.7120 (limit 0.8000)" in text
        assert f"slice {fx.EVIL_SLICE}: {fx.EVIL}.recall" in text
    if gate == "pass":
        assert text == "PASS: all 2 release bar(s) met"


def test_a_report_of_another_kind_or_schema_is_refused():
    evaluation, comparison = fx.evaluation_report(items=60), fx.comparison_report()
    with pytest.raises(ValueError, match="kind 'evaluation'"):
        render_evaluation_html(comparison)
    with pytest.raises(ValueError, match="kind 'comparison'"):
        render_comparison_html(evaluation)
    evaluation["schema_version"] = 2
    with pytest.raises(ValueError, match="schema_version 2"):
        render_evaluation_html(evaluation)


# --- evaluation page -------------------------------------------------------------------------------------

def _body_order(page: str) -> list[str]:
    """The ids / first words of the page's top-level blocks, in order (verdict, title, headline, ...)."""
    marks = {"verdict": page.find('id="verdict"'), "h1": page.find("<h1>"), "headline": page.find('id="headline"'),
             "metadata": page.find('<table class="meta">'), "overall": page.find("<h2>Overall")}
    assert all(v >= 0 for v in marks.values()), marks
    return sorted(marks, key=marks.get)


def test_the_page_opens_with_a_headline_before_the_metadata(evaluation):
    report, page, parsed = evaluation
    assert _body_order(page) == ["verdict", "h1", "headline", "metadata", "overall"]
    ((_, _, text),) = parsed.by_id("headline")
    overall = report["overall"]
    macro = overall["macro"]["f1"]
    assert f"Macro F1 at the policy (restrict or stronger): {cell(macro)} over 4 labelled categories" in text
    scored = {c: e["metrics"]["f1"]["value"] for c, e in overall["categories"].items()
              if e["metrics"]["f1"]["value"] is not None}
    weakest = min(scored, key=scored.get)
    assert f"Weakest category: {weakest}: F1 {cell(overall['categories'][weakest]['metrics']['f1'])}" in text
    assert f"F1 undefined (no positives and nothing flagged) for {fx.EVIL}" in text
    review = overall["review_load"]["overall"]
    lo, hi = review["ci"]
    share = f"{100 * review['value']:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%]"
    verdict = "over capacity" if review["value"] > fx.REVIEW_CAPACITY else "within capacity"
    assert f"Review load: {share} of items go to review ({verdict}: 5.0%)" in text
    assert "Slices: 4 measured, 1 too small; 3 slice×category cell(s) too small in positives or negatives" in text
    assert "Gate: FAIL (1 of 3 release bar(s) met)" in text


def test_the_headline_says_when_the_review_load_is_within_capacity_and_there_is_no_gate():
    report = fx.evaluation_report(gate=None, items=150)
    report["curves"] = {}
    report["overall"]["review_load"]["overall"] = {"value": 0.031, "ci": [0.02, 0.045], "method": "percentile"}
    ((_, _, text),) = parse(render_evaluation_html(report)).by_id("headline")
    assert "Review load: 3.1% [2.0%, 4.5%] of items go to review (within capacity: 5.0%)" in text
    assert "Gate: none" in text
    report["overall"]["review_load"]["overall"]["value"] = 0.3
    page = render_evaluation_html(report)
    assert '<span class="over">over capacity</span>' in page


def test_review_load_per_category_is_a_table_with_intervals(evaluation):
    report, _, parsed = evaluation
    load = report["overall"]["review_load"]
    ((_, overall_row),) = [r for r in parsed.rows_starting("overall") if len(r[1]) == 2]
    lo, hi = load["overall"]["ci"]
    assert overall_row[1] == f"{100 * load['overall']['value']:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%]"
    for category, estimate in load["categories"].items():
        rows = [cells for _, cells in parsed.rows_starting(category) if len(cells) == 2]
        lo, hi = estimate["ci"]
        assert rows == [[category, f"{100 * estimate['value']:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%]"]]


def test_a_slice_category_short_of_positives_is_too_small_not_numbers(evaluation):
    report, _, parsed = evaluation
    scope = report["slices"][fx.EVIL_SLICE]
    small = {c: e for c, e in scope["categories"].items() if e.get("too_small")}
    assert small  # the fixture's smallest slice has categories with 3 and 9 positives
    rows = parsed.rows_starting(fx.EVIL_SLICE)
    texts = [cells for attrs, cells in rows if attrs.get("class") == "too-small"]
    assert sorted(map(tuple, texts)) == sorted(
        (fx.EVIL_SLICE, str(scope["items"]), str(e["labelled"]), str(e["positives"]), f"too small: {e['too_small']}")
        for e in small.values())
    assert not any("1.000 [1.000, 1.000]" in " ".join(cells) for cells in texts)


def test_a_degenerate_interval_reads_not_estimable():
    report = fx.evaluation_report(gate=None, items=150)
    report["curves"] = {}
    report["overall"]["categories"]["hate"]["metrics"]["roc_auc"] = {"value": 1.0, "ci": [None, None],
                                                                     "method": "not estimable"}
    parsed = parse(render_evaluation_html(report))
    ((_, cells),) = [r for r in parsed.rows_starting("hate") if len(r[1]) == 3 + len(CATEGORY_METRICS)]
    assert cells[3 + list(CATEGORY_METRICS).index("roc_auc")] == "1.000 [not estimable]"


def test_a_gate_failure_on_an_undefined_delta_says_why():
    report = fx.comparison_report(gate=None)
    for entry in report["sets"].values():
        entry["slices"] = {}
    report["gate"] = {"passed": False, "bars": [{"name": "precision holds", "passed": False, "failures": [
        {"where": "core/hate", "value": None, "limit": -0.01,
         "reason": "undefined: precision is undefined for the candidate (baseline 0.8)"}]}]}
    ((_, _, text),) = parse(render_comparison_html(report)).by_id("verdict")
    assert "core/hate: n/a (limit -0.0100): undefined: precision is undefined for the candidate (baseline 0.8)" in text


def test_comparison_slices_name_their_too_small_categories(comparison):
    report, _, parsed = comparison
    scope = report["sets"]["core"]["slices"][fx.EVIL_SLICE]
    assert scope["too_small_categories"]
    rows = [cells for attrs, cells in parsed.rows_starting(fx.EVIL_SLICE) if attrs.get("class") == "too-small"]
    expected = [[fx.EVIL_SLICE, str(scope["items"]), category, f"too small: {why}"]
                for category, why in scope["too_small_categories"].items()]
    assert all(row in rows for row in expected)


def test_the_header_names_the_set_model_and_settings(evaluation):
    report, _, parsed = evaluation
    header = {cells[0]: cells[1] for _, cells in parsed.rows if len(cells) == 2}
    assert header["golden set"] == "core@3"
    assert header["sha256"] == report["golden"]["sha256"][:12]
    assert header["items scored / quarantined"] == "600 / 3 (decode_error: 2, bad_label: 1)"
    assert header["model version"] == report["model_version"]
    assert header["policy version"] == report["policy_version"]
    assert header["positive action"].startswith("restrict")
    assert header["bootstrap"] == "1000 replicates, 95% intervals, seed 0"
    assert header["review capacity"] == "5.0% of items"
    assert header["slice minimums"] == "30 items; per category 10 positives and 10 negatives"
    assert parsed.tags["h1"] == 1


def test_the_overall_table_shows_values_intervals_and_nulls(evaluation):
    report, _, parsed = evaluation
    overall = report["overall"]
    metrics = list(CATEGORY_METRICS)
    for category in LABELLED:
        entry = overall["categories"][category]
        ((_, cells),) = [r for r in parsed.rows_starting(category) if len(r[1]) == 3 + len(metrics)]
        assert cells[1:3] == [str(entry["labelled"]), str(entry["positives"])]
        for metric, text in zip(metrics, cells[3:]):
            estimate = entry["metrics"][metric]
            assert text == ("n/a" if estimate["value"] is None else cell(estimate)), (category, metric)
    evil = overall["categories"][fx.EVIL]["metrics"]
    assert evil["precision"]["value"] is None and evil["f1"]["value"] is None  # the fixture's nulls
    ((_, macro),) = parsed.rows_starting("macro")
    assert macro[3] == cell(overall["macro"]["precision"])
    ((_, micro),) = parsed.rows_starting("micro")
    assert micro[3:6] == [cell(overall["micro"][m]) for m in ("precision", "recall", "f1")]
    assert micro[6:] == ["—"] * (len(CATEGORY_METRICS) - 3)
    headers = next(cells for _, cells in parsed.rows if cells[:2] == ["category", "labelled"])
    assert "recall@P≥0.90" in headers


def test_an_unlabelled_category_is_named_not_scored(evaluation):
    _, _, parsed = evaluation
    rows = parsed.rows_starting(fx.UNLABELLED)
    assert rows and all(cells == [fx.UNLABELLED, "not labelled by this set"] for _, cells in rows)
    notes = [text for _, _, text in parsed.by_class("note")]
    assert f"{fx.UNLABELLED}: not labelled by this set" in notes
    assert not any(image["alt"].startswith(fx.UNLABELLED) for image in parsed.images)


def test_decision_rates_are_percentages_with_intervals(evaluation):
    report, _, parsed = evaluation
    for action in fx.ACTIONS:
        estimate = report["overall"]["actions"][action]
        lo, hi = estimate["ci"]
        ((_, cells),) = parsed.rows_starting(action)
        assert cells[1] == f"{100 * estimate['value']:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%]"


def test_too_small_slices_are_named_not_scored(evaluation):
    report, _, parsed = evaluation
    rows = parsed.rows_starting(fx.TOO_SMALL_SLICE)
    assert len(rows) == len(LABELLED)  # one per labelled category's slice table
    for attrs, cells in rows:
        assert cells == [fx.TOO_SMALL_SLICE, f"too small ({fx.TOO_SMALL_ITEMS} items)"]
        assert attrs.get("class") == "too-small"


def test_slice_rows_carry_the_slice_numbers(evaluation):
    report, _, parsed = evaluation
    scope = report["slices"]["language=en"]
    rows = parsed.rows_starting("language=en")
    assert len(rows) == len(LABELLED)  # a row per labelled category; the unlabelled one has a note only
    hate = scope["categories"]["hate"]
    assert [str(scope["items"]), str(hate["labelled"]), str(hate["positives"]),
            cell(hate["metrics"]["precision"])] == rows[0][1][1:5]


def test_the_plots_are_one_modest_figure_per_category(evaluation):
    report, page, parsed = evaluation
    assert [image["alt"].split(":")[0] for image in parsed.images] == list(report["curves"])
    width, height = (round(FIGURE_DPI * size) for size in CATEGORY_FIGSIZE)
    for image in parsed.images:
        with Image.open(io.BytesIO(base64.b64decode(image["src"].split(",", 1)[1]))) as png:
            assert abs(png.width - width) <= 2 and abs(png.height - height) <= 2, png.size
    assert len(page) < 150_000 * len(parsed.images), "the page should stay small"


def test_an_interval_missing_shows_the_value_alone():
    report = fx.evaluation_report(gate=None, items=120)
    report["curves"] = {}
    hate = report["overall"]["categories"]["hate"]["metrics"]["precision"]
    hate["ci"] = [None, None]
    parsed = parse(render_evaluation_html(report))
    ((_, cells),) = [r for r in parsed.rows_starting("hate") if len(r[1]) == 3 + len(CATEGORY_METRICS)]
    assert cells[3] == f"{hate['value']:.3f}"


def test_degenerate_curves_still_render():
    report = fx.evaluation_report(gate=None, items=80)
    report["curves"]["hate"] = {"pr": {"precision": [], "recall": []},
                                "reliability": {"mean_score": [None] * 10, "positive_rate": [None] * 10,
                                                "count": [0] * 10},
                                "histogram": {"edges": [0.0, 1.0], "positives": [1, 2], "negatives": []}}
    report["curves"] = {"hate": report["curves"]["hate"], "violence": {}}
    parsed = parse(render_evaluation_html(report))
    assert len(parsed.images) == len(report["curves"]) and parsed.errors == []
    assert "self_harm: no curves in the report" in [text for _, _, text in parsed.by_class("note")]


def test_rendering_leaves_pyplot_alone():
    code = ("import sys; sys.path.insert(0, 'tests'); import report_fixtures as fx; "
            "from tripwire.evaluation.report import render_evaluation_html, render_comparison_html; "
            "e = fx.evaluation_report(items=60); e['curves'] = {'hate': e['curves']['hate']}; "
            "render_evaluation_html(e); "
            "r = fx.comparison_report(); [e.update(slices={}) for e in r['sets'].values()]; "
            "render_comparison_html(r); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# --- comparison page -------------------------------------------------------------------------------------

COMPARISON_LABELS = {"precision": "precision", "recall": "recall", "f1": "F1", "fpr": "FPR (lower is better)",
                     "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "recall_at_precision": "recall@P≥0.90",
                     "ece": "ECE (lower is better)", "catch_rate": "catch rate", "class_macro_f1": "2-class macro-F1"}
LONG_FORM_HEAD = ["category", "metric", "baseline", "candidate", "Δ [interval]"]


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _delta(row: dict) -> str:
    if row["delta"] is None:
        return "n/a"
    return f"{signed(row['delta'])} [{signed(row['ci'][0])}, {signed(row['ci'][1])}]"


def long_form(parsed: Page, which: int) -> dict[tuple[str, str], tuple[dict, list[str]]]:
    """The ``which``-th set's category table: (category, metric label) -> (row attributes, [baseline,
    candidate, delta]); the category cell spans its metric rows, so rows without it inherit it."""
    heads = [i for i, (_, cells) in enumerate(parsed.rows) if cells == LONG_FORM_HEAD]
    out, category = {}, None
    for attrs, cells in parsed.rows[heads[which] + 1:]:
        if len(cells) not in (4, 5):
            break
        if len(cells) == 5:
            category, cells = cells[0], cells[1:]
        out[(category, cells[0])] = (attrs, cells[1:])
    return out


def test_each_category_and_metric_has_baseline_candidate_delta(comparison):
    report, _, parsed = comparison
    for which, entry in enumerate(report["sets"].values()):
        table = long_form(parsed, which)
        expected = {**{(c, COMPARISON_LABELS[m]): row for c, rows in entry["categories"].items()
                       for m, row in rows.items()},
                    **{("macro", COMPARISON_LABELS[m]): row for m, row in entry["macro"].items()}}
        assert set(table) == set(expected)
        for key, row in expected.items():
            attrs, cells = table[key]
            assert cells == [_fmt(row["baseline"]), _fmt(row["candidate"]), _delta(row)], key
            assert (attrs.get("class") == "regression") == row["regression"], key
    evil = report["sets"]["core"]["categories"][fx.EVIL]["precision"]
    assert evil["delta"] is None and long_form(parsed, 0)[(fx.EVIL, "precision")][1] == ["n/a"] * 3


def test_regressions_are_highlighted_and_counted(comparison):
    report, page, parsed = comparison
    flagged = fx.regressions(report)
    assert flagged > 0
    # Long-form rows and slice cells: one highlighted element per flagged metric, nothing else.
    assert len(parsed.by_class("regression")) == flagged
    assert f"highlighted: {flagged} regression(s)" in page


def test_each_set_has_its_section_chart_and_slices(comparison):
    report, _, parsed = comparison
    titles = [f"{e['golden']['name']}@{e['golden']['version']}" for e in report["sets"].values()]
    assert [image["alt"].split(":")[0] for image in parsed.images] == titles
    too_small = parsed.rows_starting(fx.TOO_SMALL_SLICE)
    assert len(too_small) == len(report["sets"])
    assert all(cells == [fx.TOO_SMALL_SLICE, f"too small ({fx.TOO_SMALL_ITEMS} items)"] for _, cells in too_small)
    # A slice's first row: slice, items, category, then a cell per metric (baseline -> candidate, delta).
    scope = report["sets"]["core"]["slices"]["language=en"]
    first = [c for _, c in parsed.rows if c[:3] == ["language=en", str(scope["items"]), "hate"]]
    assert first, "no slice row"
    row = scope["categories"]["hate"]["precision"]
    assert first[0][3] == f"{_fmt(row['baseline'])} → {_fmt(row['candidate'])} {_delta(row)}"


def test_a_delta_that_rounds_to_zero_has_no_minus_sign():
    report = fx.comparison_report(gate=None)
    entry = report["sets"]["core"]
    entry["slices"] = {}
    entry["categories"]["hate"]["recall"].update(delta=-0.0001, ci=[-0.0004, 0.0002], regression=False)
    report["sets"] = {"core": entry}
    parsed = parse(render_comparison_html(report))
    assert long_form(parsed, 0)[("hate", "recall")][1][2] == "+0.000 [+0.000, +0.000]"

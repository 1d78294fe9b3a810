"""The human-review web app in a real browser: headless Debian Chromium driven by Playwright.

The real app (``tripwire.review.app.create_app``) runs under uvicorn in a background thread over real
HTTP, on a SQLite store in a temporary folder with the bundled taxonomy. Reviewers sign in through the
login form and work the queue with the keyboard only; what they submit is then read back from the store
itself. Every page must log no console error, run no injected script and fetch nothing from another
origin. Full-page screenshots land in ``test-artifacts/`` at the repository root, for a person to look
at. No Ray is started.

The tests share one server and run in file order: ``ana`` reviews two items, ``ben`` is refused a
restrict without a rationale, retries a submission, and escalates one item, then the admin sees the
figures and adjudicates the escalated item.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import browser as shared

pytestmark = [pytest.mark.integration, pytest.mark.browser]

VIEWPORT = {"width": 1280, "height": 900}
# How long a page may take to show a state: generous, since CI runs the browser beside the app on 2 cores.
WAIT_MS = 30_000
UNTRUSTED = 'Meet at the <b>square</b> <img src=x onerror="alert(1)"> <script>alert(2)</script> tonight'

shared.require_browser()  # skips the module where Debian chromium (make browser) or playwright is missing
browser, artifacts = shared.browser, shared.artifacts  # the module-scoped fixtures (tests/browser.py)
pytest.importorskip("uvicorn", reason="uvicorn is not installed (the review app's server)")

from bench.reviewers import review_app_server  # noqa: E402
from helpers import result_json  # noqa: E402
from tripwire.policy import Taxonomy  # noqa: E402
from tripwire.review.config import ReviewConfig  # noqa: E402
from tripwire.review.store import open_store  # noqa: E402

CATEGORIES = Taxonomy.load().names


def _media(root: Path) -> None:
    from PIL import Image, ImageDraw
    import soundfile

    image = Image.new("RGB", (480, 300), (240, 200, 40))
    draw = ImageDraw.Draw(image)
    draw.rectangle((30, 30, 220, 270), fill=(200, 20, 30))
    draw.ellipse((260, 40, 450, 230), fill=(20, 60, 200))
    draw.text((40, 280), "TRIPWIRE TEST IMAGE", fill=(0, 0, 0))
    image.save(root / "photo.png")
    t = np.arange(20 * 8000) / 8000.0  # 20 s: the player starts at the flagged sentence, 12 s in
    soundfile.write(str(root / "clip.wav"), (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)


def _items(root: Path) -> list[dict]:
    def item(item_id, sample, scores, driven_by, priority, **extra):
        return {"item_id": item_id, "source": "serving", "sample": {"id": item_id, **sample}, "base_uri": str(root),
                "result": result_json(item_id, scores, driven_by), "priority": priority, **extra}

    first = item("item-1", {"text": UNTRUSTED, "image": "photo.png", "audio": "clip.wav", "meta": {"market": "DE"}},
                 {"hate": 0.93, "violence": 0.61, "harassment": 0.3}, "image", 0.9)
    # What the speech expert heard, and the long-media window where hate scored highest (its sentence at 12-15.5 s).
    segments = [{"text": "Good morning and welcome.", "start_s": 0.5, "end_s": 2.0, "words": [],
                 "top": {"category": "illicit", "score": 0.01}},
                {"text": UNTRUSTED, "start_s": 12.0, "end_s": 15.5, "words": [], "top": {"category": "hate", "score": 0.93}}]
    first["result"]["evidence"] = {
        "speech": {"language": "en", "duration_s": 20.0, "speech_s": 5.0, "segments": segments, "segments_total": 2},
        "windows": {"window_s": 15.0, "hop_s": 10.0, "count": 2, "duration_s": 20.0, "worst": {"hate": [
            {"start_s": 10.0, "end_s": 20.0, "score": 0.93, "excerpt": UNTRUSTED,
             "span": {"start_s": 12.0, "end_s": 15.5, "score": 0.93}}]}}}
    # Where the nudity expert scored the picture high (across the red block's and the disc's edges, so the blur
    # shows), and the text OCR read in it (the caption).
    second = item("item-2", {"text": "A picture from the beach.", "image": "photo.png"}, {"sexual": 0.72}, "image", 0.8)
    second["result"]["evidence"] = {
        "nudity": {"score": 0.72, "pictures": [{"score": 0.72, "width": 480, "height": 300,
                                                "regions": [{"box": [160, 60, 340, 220], "score": 0.81}]}]},
        "image_text": {"blocks": [{"text": "TRIPWIRE TEST IMAGE", "box": [38, 278, 170, 292], "size": [480, 300],
                                   "top": {"category": "hate", "score": 0.01}}], "blocks_total": 1, "worst": {},
                       "text": "TRIPWIRE TEST IMAGE"}}
    return [
        first,
        second,
        item("item-3", {"text": "Just text, nothing else."}, {"illicit": 0.41}, "text", 0.7),
        # Hidden golden item: claimed as every reviewer's third item (golden_every=3).
        {**item("item-4", {"text": "Two men fighting outside a bar.", "image": "photo.png"}, {"violence": 0.8}, "image", 0.1),
         "source": "golden", "golden_labels": {"violence": 1}},
    ]


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """The review app over real HTTP on a free port; yields ``(base_url, store, tokens)``."""
    root = tmp_path_factory.mktemp("review")
    _media(root)
    store = open_store(f"sqlite:///{root / 'review.db'}", CATEGORIES, required_reviews=2, golden_every=3)
    assert store.enqueue(_items(root)) == 4
    tokens = {name: store.add_reviewer(name, role, 3600.0)
              for name, role in (("ana", "reviewer"), ("ben", "reviewer"), ("boss", "admin"))}
    try:
        with review_app_server(store, ReviewConfig(store=str(root / "review.db"))) as base:
            yield base, store, tokens
    finally:
        store.close()


class Watched:
    """A fresh browser context and page that records console errors, page errors, dialogs and requests."""

    def __init__(self, browser, base: str):
        self.base = base
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.failed: list[str] = []  # "status path" of every answer >= 400 and every request that failed
        self.page.on("console", lambda msg: self.console_errors.append(f"{msg.text} [{msg.location.get('url')}]")
                     if msg.type == "error" else None)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        # A player drops its range request when it seeks (the browser aborts it): not a failure of the app.
        self.page.on("requestfailed", lambda r: None if r.resource_type == "media" and "ABORTED" in (r.failure or "")
                     else self.failed.append(f"failed {r.url} {r.failure}"))

        def on_dialog(dialog):
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)

    def sign_in(self, token: str, landing: str) -> None:
        self.page.goto(self.base + "/login", wait_until="load")
        self.page.fill("#token", token)
        with self.page.expect_navigation(url=self.base + landing):
            self.page.click("button[type=submit]")

    # (Selectors, not wait_for_function: the app's Content-Security-Policy forbids the eval it polls with.)
    def wait_for_item(self, item_id: str) -> None:
        self.wait_for(f'body[data-view=item] #item[data-item-id="{item_id}"]')

    def wait_for(self, selector: str) -> None:
        """Waits for ``selector``; on a timeout, fails with what the page shows instead (its view, item, alert
        banner, notice) and the calls that failed, not just the selector."""
        try:
            self.page.wait_for_selector(selector, timeout=WAIT_MS)
        except Exception as exc:
            shown = self.page.evaluate(
                "() => ({view: document.body.dataset.view, item: (document.getElementById('item') || {}).dataset,"
                " error: (document.getElementById('error') || {}).textContent,"
                " notice: (document.getElementById('notice') || {}).textContent})")
            raise AssertionError(f"{selector} not shown within {WAIT_MS} ms; the page shows {shown}; failed calls "
                                 f"{self.failed}") from exc

    def wait_for_images(self) -> None:
        deadline = time.monotonic() + 15
        while not self.page.evaluate("Array.from(document.images).every(img => img.complete)"):
            assert time.monotonic() < deadline, "the item's images did not load"
            time.sleep(0.05)

    def assert_clean(self, expected_failures: int = 0) -> None:
        """No page error, no dialog (no injected script ran), nothing fetched from another origin, and no
        console error but the ``expected_failures`` "Failed to load resource" lines of calls the test
        made fail on purpose."""
        assert self.page_errors == [] and self.dialogs == [], (self.page_errors, self.dialogs)
        foreign = [url for url in self.requests if not url.startswith(self.base + "/") and not url.startswith("data:")]
        assert foreign == [], f"requests to other origins: {foreign}"
        errors = self.console_errors  # every page names an icon, so Chromium asks for no /favicon.ico
        unexpected = [m for m in errors if "Failed to load resource" not in m]
        assert unexpected == [], self.console_errors
        assert len(self.failed) == expected_failures, self.failed
        assert len(errors) <= expected_failures, (self.console_errors, self.failed)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser, app_server):
    opened: list[Watched] = []

    def open_page() -> Watched:
        opened.append(Watched(browser, app_server[0]))
        return opened[-1]

    yield open_page
    for w in opened:
        w.close()


def _banner(page) -> str:
    page.wait_for_selector("#error[role=alert]:not([hidden])", timeout=10_000)
    return page.inner_text("#error")


def _player_at(page, seconds: float) -> None:
    """Waits (5 s at most) for the item's player to stand at ``seconds`` (the page's CSP allows no eval'd waits)."""
    deadline = time.monotonic() + 5
    while (at := page.eval_on_selector("#item-media audio", "e => e.currentTime")) != seconds:
        assert time.monotonic() < deadline, f"the player is at {at}s, not {seconds}s"
        time.sleep(0.05)


def _filter(page, selector: str, settled: str | None = None) -> str:
    """The element's computed CSS filter; with ``settled``, once it contains that (the reveal is animated)."""
    deadline = time.monotonic() + 5
    while True:
        value = page.eval_on_selector(selector, "e => getComputedStyle(e).filter")
        if settled is None or settled in value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_signed_out_pages_redirect_and_the_api_answers_401(watched, app_server):
    base, _, _ = app_server
    w = watched()
    w.page.goto(base + "/", wait_until="load")
    assert w.page.url == base + "/login"
    assert w.page.is_visible("form input#token")
    me = w.context.request.get(base + "/api/me")
    assert me.status == 401 and me.json()["error"]["code"] == "unauthenticated", me.text()
    for path in ("/admin", "/static/review.js"):
        answer = w.context.request.get(base + path, max_redirects=0)
        assert answer.status == 303 and answer.headers["location"] == "/login", (path, answer.status)
    w.assert_clean()


def test_a_reviewer_reviews_two_items_with_the_keyboard(watched, app_server, artifacts):
    base, store, tokens = app_server
    w = watched()
    page = w.page
    w.sign_in(tokens["ana"], "/")
    w.wait_for_item("item-1")
    w.wait_for_images()
    assert page.inner_text("#me-name") == "ana"
    assert page.is_hidden("#admin-link")
    # The item's header names what it has and nothing it lacks (not an appeal: no "null" where one would be).
    meta = page.inner_text("#item-meta")
    assert "Model decision" in meta and "Appeal" not in meta and "null" not in meta, meta

    # The untrusted text is shown as text: no markup, no script.
    assert page.inner_text("#item-text") == UNTRUSTED
    assert page.eval_on_selector("#item-text", "e => e.children.length") == 0
    # Scores: one bar per category, sorted, with the policy's reason and the driving modality.
    rows = page.eval_on_selector_all("#scores tr", "rows => rows.map(r => r.dataset.category)")
    assert rows[:2] == ["hate", "violence"] and sorted(rows) == sorted(CATEGORIES)
    assert "block" in page.inner_text("#scores tr[data-category=hate]")
    assert "driven by image" in page.inner_text("#scores tr[data-category=hate]")
    meta = page.inner_text("#item-meta")
    assert "core@7" in meta and "DE" in meta and "2026" in meta

    # Wellbeing: the image is decoded, blurred and greyed until revealed (R or a click); audio is muted.
    image = page.eval_on_selector("#item-media img", "e => ({w: e.naturalWidth, h: e.naturalHeight})")
    assert image["w"] == 480 and image["h"] == 300, image
    assert "blur" in _filter(page, "#item-media img") and "grayscale" in _filter(page, "#item-media img")
    assert page.eval_on_selector("#item-media audio", "e => e.muted && e.controls")
    # What was heard, with times: the player starts at the flagged sentence (still muted); a time moves it.
    assert page.inner_text("#flagged-at") == "0:12–0:15 hate"
    assert page.eval_on_selector_all("#transcript li", "items => items.map(i => i.innerText)") == [
        "0:00–0:02 Good morning and welcome.", f"0:12–0:15 {UNTRUSTED}"]
    assert page.eval_on_selector("#transcript li:last-child span", "e => e.children.length") == 0  # text, not markup
    _player_at(page, 12.0)
    page.click("#transcript li:first-child button.seek")
    _player_at(page, 0.5)
    assert page.eval_on_selector("#item-media audio", "e => e.muted")
    page.click("#flagged-at button.seek")
    _player_at(page, 12.0)
    page.screenshot(path=str(artifacts / "review-queue.png"), full_page=True)
    page.keyboard.press("r")
    assert _filter(page, "#item-media img", settled="none") == "none"
    page.keyboard.press("r")
    assert "blur(28px)" in _filter(page, "#item-media img", settled="blur(28px)")
    page.click("#item-media img")
    assert _filter(page, "#item-media img", settled="none") == "none"
    page.keyboard.press("r")
    page.locator("body").focus()

    # Item 1: hate (1) + violence (5), block (B), a rationale (T, typing), Ctrl+Enter from the text box.
    for key in ("1", "5", "b", "t"):
        page.keyboard.press(key)
    assert page.eval_on_selector("#clause", "e => e.value") == "hate"  # the first labelled category
    assert "required" in page.inner_text("#rationale-hint")
    page.keyboard.type("Targets a group and threatens violence.")
    page.keyboard.press("Control+Enter")
    w.wait_for_item("item-2")
    assert "blur" in _filter(page, "#item-media img"), "a new item starts blurred again"
    # The rationale submitted with Ctrl+Enter does not keep the focus: the next keys are shortcuts again.
    assert page.evaluate("() => document.activeElement.id") != "rationale"

    # Item 2: the nudity expert's region stays blurred when the picture is revealed; the text read is outlined.
    page.keyboard.press("r")
    assert _filter(page, "#item-media img", settled="none") == "none"
    region = page.eval_on_selector("#item-media .region.nudity", "e => ({blur: getComputedStyle(e).backdropFilter, "
                                   "left: e.style.left, width: e.style.width, title: e.title})")
    assert "blur" in region["blur"] and region["left"] == "33.3333%" and region["width"] == "37.5%", region
    assert page.get_attribute("#item-media .region.text", "title") == "read: TRIPWIRE TEST IMAGE"
    page.screenshot(path=str(artifacts / "review-picture-regions.png"), full_page=True)
    page.keyboard.press("r")
    # Item 2: sexual (4), restrict (S), a rationale, Esc out of the text box, Enter.
    for key in ("4", "s", "t"):
        page.keyboard.press(key)
    page.keyboard.type("Explicit image.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    # The third claim is the hidden golden item, shown like any other.
    w.wait_for_item("item-4")
    assert "golden" not in page.inner_text("body").lower()

    reviews = [r for r in store.reviews() if r["reviewer"] == "ana"]
    assert [(r["item_id"], r["action"], r["policy_clause"]) for r in reviews] == [
        ("item-1", "block", "hate"), ("item-2", "restrict", "sexual")]
    assert reviews[0]["labels"] == {c: int(c in ("hate", "violence")) for c in CATEGORIES}
    assert reviews[1]["labels"] == {c: int(c == "sexual") for c in CATEGORIES}
    assert reviews[0]["rationale"] == "Targets a group and threatens violence."
    assert reviews[1]["rationale"] == "Explicit image."
    assert all(r["kind"] == "review" and r["time_spent_ms"] > 0 for r in reviews), reviews
    assert len({r["idempotency_key"] for r in reviews}) == 2
    assert {i.item_id: i.status for i in store.items()}["item-1"] == "pending"  # one of two reviews
    w.assert_clean()


def test_restrict_without_a_rationale_is_refused_and_a_retry_keeps_its_key(watched, app_server, artifacts):
    base, store, tokens = app_server
    w = watched()
    page = w.page
    posted: list[dict] = []
    page.on("request", lambda r: posted.append(json.loads(r.post_data)) if r.url.endswith("/api/reviews") else None)
    w.sign_in(tokens["ben"], "/")
    w.wait_for_item("item-1")

    # The UI refuses before sending anything.
    page.keyboard.press("2")
    page.keyboard.press("s")
    page.keyboard.press("Enter")
    assert "rationale is required for restrict" in _banner(page)
    assert posted == [] and [r for r in store.reviews() if r["reviewer"] == "ben"] == []

    # The server refuses too (the rationale stripped on the way): its message is shown, the form is kept.
    def strip_rationale(route):
        body = json.loads(route.request.post_data)
        body["rationale"] = ""
        route.continue_(post_data=json.dumps(body))

    page.route("**/api/reviews", strip_rationale)
    page.keyboard.press("t")
    page.keyboard.type("Insults aimed at a person.")
    page.keyboard.press("Escape")
    page.evaluate("document.getElementById('error').hidden = true")
    page.keyboard.press("Enter")
    assert "rationale: required for restrict" in _banner(page)
    page.screenshot(path=str(artifacts / "review-error.png"), full_page=True)
    page.unroute("**/api/reviews")
    assert page.get_attribute("#item", "data-item-id") == "item-1"
    assert page.get_attribute("#actions [data-action=restrict]", "aria-pressed") == "true"
    assert page.input_value("#rationale") == "Insults aimed at a person."
    assert [r for r in store.reviews() if r["reviewer"] == "ben"] == []

    # A submission lost on the network is retried with the same idempotency key, and lands once.
    page.route("**/api/reviews", lambda route: route.abort())
    page.evaluate("document.getElementById('error').hidden = true")  # else the last error's banner would answer
    page.keyboard.press("Enter")
    assert "Network error" in _banner(page)
    page.unroute("**/api/reviews")
    page.keyboard.press("Enter")
    w.wait_for_item("item-2")
    assert len(posted) == 3
    assert posted[0]["idempotency_key"] != posted[1]["idempotency_key"], "a refused submission's key is not reused"
    assert posted[1]["idempotency_key"] == posted[2]["idempotency_key"], "the retry must keep its key"
    ben = [r for r in store.reviews() if r["reviewer"] == "ben"]
    assert [(r["item_id"], r["action"], r["idempotency_key"]) for r in ben] == [
        ("item-1", "restrict", posted[2]["idempotency_key"])]
    assert ben[0]["labels"] == {c: int(c == "harassment") for c in CATEGORIES}

    # Escalate (E) with the rationale as the note: the item goes to adjudication.
    page.keyboard.press("t")
    page.keyboard.type("Unclear context.")
    page.keyboard.press("Escape")
    page.keyboard.press("e")
    w.wait_for_item("item-4")
    escalated = store.item("item-2")
    assert escalated.status == "adjudication" and "Unclear context." in escalated.escalation
    # The 422 and the aborted call each log one "Failed to load resource" line.
    w.assert_clean(expected_failures=2)


def test_the_admin_page_and_adjudication(watched, app_server, artifacts):
    base, store, tokens = app_server
    reviewer = watched()
    reviewer.sign_in(tokens["ana"], "/")
    forbidden = reviewer.context.request.get(base + "/admin")
    assert forbidden.status == 403
    stats = reviewer.context.request.get(base + "/api/admin/stats")
    assert stats.status == 403 and stats.json()["error"]["code"] == "forbidden"

    w = watched()
    page = w.page
    w.sign_in(tokens["boss"], "/admin")
    w.wait_for("body[data-loaded=true]")
    cards = dict(zip(page.eval_on_selector_all("#cards .k", "es => es.map(e => e.textContent)"),
                     page.eval_on_selector_all("#cards .v", "es => es.map(e => e.textContent)")))
    # item-1: ana's block and ben's restrict disagree; item-2: ben escalated it.
    assert cards["Reviews total"] == str(len(store.reviews())) and cards["Adjudication"] == "2", cards
    categories = page.eval_on_selector_all("#categories tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert categories == CATEGORIES
    reviewers = page.eval_on_selector_all("#reviewers tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert {r["reviewer"] for r in store.reviews()} <= set(reviewers), reviewers
    adjudication = page.inner_text("#adjudication")
    assert "item-2" in adjudication and "escalated by ben" in adjudication
    assert "item-1" in adjudication and "2 reviews disagree" in adjudication
    page.screenshot(path=str(artifacts / "review-admin.png"), full_page=True)

    # Adjudication mode: each item with its prior reviews (highest priority first); the admin's review resolves it.
    with page.expect_navigation(url=base + "/?queue=adjudication"):
        page.click("#adjudication a")
    w.wait_for_item("item-1")
    assert page.is_visible("#prior-panel")
    prior = page.inner_text("#prior-reviews")
    assert "ana" in prior and "block" in prior and "ben" in prior and "restrict" in prior, prior
    assert "2 reviews disagree" in page.inner_text("#escalation")
    page.screenshot(path=str(artifacts / "review-adjudication.png"), full_page=True)
    for key in ("1", "5", "b", "t"):
        page.keyboard.press(key)
    page.keyboard.type("Upheld: hate with a threat.")
    page.keyboard.press("Control+Enter")
    w.wait_for_item("item-2")
    prior = page.inner_text("#prior-reviews")
    assert "ana" in prior and "restrict" in prior and "Explicit image." in prior, prior
    assert "Unclear context." in page.inner_text("#escalation")
    for key in ("4", "s", "t"):
        page.keyboard.press(key)
    page.keyboard.type("Upheld: explicit.")
    page.keyboard.press("Control+Enter")
    w.wait_for("body[data-view=empty]")
    assert page.inner_text("#empty-title") == "Adjudication queue empty"
    for item_id, action in (("item-1", "block"), ("item-2", "restrict")):
        resolved = store.item(item_id)
        assert resolved.status == "resolved" and resolved.resolved_by == "adjudication", resolved
        assert resolved.resolved_action == action
    assert store.item("item-1").resolved_labels == {c: int(c in ("hate", "violence")) for c in CATEGORIES}
    w.assert_clean()
    reviewer.assert_clean()


def test_an_appeal_shows_the_users_statement_as_text(watched, app_server, artifacts):
    """An appeal comes first in the queue and shows the user's statement next to the contested decision, as
    text (it is untrusted input)."""
    base, store, tokens = app_server
    statement = '<b onmouseover="alert(1)">I was quoting</b> the news, not attacking anyone'
    store.enqueue([{"item_id": "appeal-srv-1", "source": "appeal", "priority": 10.0, "required_reviews": 1,
                    "sample": {"id": "post-9", "text": "A quoted headline.", "meta": {"appeal": statement}},
                    "result": result_json("post-9", {"hate": 0.95}, "text")}])
    w = watched()
    page = w.page
    w.sign_in(store.add_reviewer("cy", "reviewer", 3600.0), "/")
    w.wait_for_item("appeal-srv-1")
    assert page.inner_text("#item-meta .appeal") == f"Appeal {statement}"
    assert page.eval_on_selector("#item-meta .appeal b", "e => e.children.length") == 0
    page.screenshot(path=str(artifacts / "review-appeal.png"), full_page=True)
    w.assert_clean()


def test_one_long_word_does_not_widen_the_adjudication_page(watched, app_server, artifacts):
    """Rationales, appeal statements and item text of one 5,000-character word (the most a rationale may be)
    wrap: the adjudication page stays as wide as the window."""
    base, store, tokens = app_server
    word = "x" * 5000
    store.enqueue([{"item_id": "long-1", "source": "scan", "priority": 50.0, "required_reviews": 2,
                    "sample": {"id": "long-1", "text": word, "meta": {"appeal": word}},
                    "result": result_json("long-1", {"hate": 0.6}, "text")}])
    for name, action in (("dee", "restrict"), ("eve", "block")):  # they disagree: adjudication
        who = store.authenticate(store.add_reviewer(name, "reviewer", 3600.0))
        store.submit(who, store.check_submission({"item_id": "long-1", "labels": {"hate": 1}, "action": action,
                                                  "policy_clause": "hate", "rationale": word,
                                                  "idempotency_key": f"long-{name}"}))
    assert store.item("long-1").status == "adjudication"
    w = watched()
    page = w.page
    w.sign_in(tokens["boss"], "/admin")
    w.wait_for("body[data-loaded=true]")
    page.goto(base + "/?queue=adjudication", wait_until="load")
    w.wait_for_item("long-1")
    assert word in page.inner_text("#prior-reviews")
    scroll, window = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    page.screenshot(path=str(artifacts / "review-long-words.png"), full_page=True)
    assert scroll <= window, f"the page is {scroll} px wide in a {window} px window"
    w.assert_clean()

"""The reviewer web app: sign-in, the queue one item at a time, reviews, and the admin view (FastAPI).

``create_app(store, config)`` returns a plain FastAPI app: ``tripwire review-ui`` serves it with uvicorn
and ``deployments/review_app.py`` mounts the same app as a Ray Serve application. The pages are static
files (``static/``) that call the JSON API below; see CONTRACT.md for every route.

Every page and API call needs a token: ``Authorization: Bearer <token>`` or the HttpOnly cookie the
sign-in form sets (a server-side session, which signing out ends). Pages without one redirect to
``/login``; API calls answer 401 JSON. Admin pages and calls answer 403 to reviewers. Errors are
``{"error": {"code", "message"}}`` with a 4xx status. Request bodies over ``max_body_bytes`` are refused
(413) before they are read, media files over ``max_media_bytes`` before they are opened.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import mimetypes
import re
import statistics
import time
from importlib import resources
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tripwire.compliance.appeals import AppealError, file_appeal
from tripwire.compliance.outcomes import log_outcome
from tripwire.compliance.decision_log import DecisionLog
from tripwire.data.media import MediaError
from tripwire.review.agreement import category_agreement, golden_accuracy, reviewer_agreement
from tripwire.review.config import ReviewConfig
from tripwire.review.store import ACTIONS, ReviewError, Reviewer, ReviewStore
from tripwire.data.sample import read_media

logger = logging.getLogger(__name__)

COOKIE = "tripwire_review"  # carries a sign-in session token, never the reviewer's own token
STATS_WINDOW_S = 30 * 86400.0  # the admin page's agreement and throughput cover this much history
STATIC_FILES = ("review.html", "admin.html", "dom.js", "review.js", "admin.js", "review.css")
SECURITY_HEADERS = {
    # Same-origin only: no script, style, image or media from elsewhere; item text is never markup.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# Magic numbers of the formats Tripwire decodes: media sent inline (data: URIs) carry no trustworthy type.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
               (b"fLaC", "audio/flac"), (b"OggS", "audio/ogg"), (b"\x1aE\xdf\xa3", "video/webm"), (b"ID3", "audio/mpeg"))


def ranged_response(data: bytes, media_type: str, range_header: str | None) -> Response:
    """The media, or the one byte range a player asked for (``Range: bytes=a-b``, ``a-``, ``-n``): a player seeks
    (to a flagged sentence minutes in) only where the server answers ranges. Anything else gets the whole file."""
    headers = {"Cache-Control": "private, max-age=300", "Accept-Ranges": "bytes"}
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (range_header or "").strip())
    if match is None or not any(match.groups()) or not data:
        return Response(data, media_type=media_type, headers=headers)
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last), len(data) - 1) if last else len(data) - 1
    else:
        start, end = max(0, len(data) - int(last)), len(data) - 1
    if start >= len(data) or start > end:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
    return Response(data[start:end + 1], status_code=206, media_type=media_type,
                    headers={**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"})


def sniff_media_type(data: bytes) -> str | None:
    """The content type of image, audio or video bytes from their first bytes (None when unknown)."""
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] in (b"WAVE", b"WEBP"):
        return "audio/wav" if data[8:12] == b"WAVE" else "image/webp"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is refused with a 413 JSON error, from its declared
    Content-Length before a byte of it is read, or, without one (chunked), as soon as what has arrived passes
    the limit. The app behind it never holds more than ``limit`` bytes of a body."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = {value.strip() for name, value in scope["headers"] if name.lower() == b"content-length"}
        if declared:
            length = int(next(iter(declared))) if len(declared) == 1 and next(iter(declared)).isdigit() else None
            if length is None:
                await self.refuse(send, 400, "invalid_request", "Content-Length: not one non-negative integer")
                return
            if length > self.limit:
                await self.refuse(send, 413, "body_too_large",
                                  f"the request body is {length} bytes; the limit is {self.limit} bytes")
                return
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.limit:
                    await self.refuse(send, 413, "body_too_large", f"the request body is over the limit of {self.limit} bytes")
                    return
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        pending = iter(messages)

        async def replay() -> dict:
            return next(pending, None) or await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def refuse(send: Callable, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   *((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def read_media_capped(modality: str, ref: Any, base_uri: str | None, limit: int, label: str | None = None) -> bytes:
    """The bytes of an item's media reference (:func:`tripwire.data.sample.read_media`, which never holds more than
    ``limit``); a 413 ReviewError when they are over it. ``label`` names the media in the error (default: the
    modality)."""
    try:
        return read_media(modality, ref, base_uri, limit)
    except MediaError as exc:
        if exc.reason != "too_large":
            raise
        size = f"about {exc.size}" if isinstance(ref, str) and ref.startswith("data:") and exc.size else exc.size
        raise ReviewError(413, "media_too_large",
                          f"{label or modality} is {size or f'over {limit}'} bytes (limit {limit})") from exc


def _root(request: Request) -> str:
    """Where the app is mounted ("" standalone; the route prefix under Ray Serve)."""
    return request.scope.get("root_path", "").rstrip("/")


def _route(request: Request) -> str:
    path = request.url.path
    root = _root(request)
    return path[len(root):] if root and path.startswith(root) else path


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _static(name: str) -> bytes:
    return resources.files("tripwire.review").joinpath("static", name).read_bytes()


def _login_page(message: str = "") -> HTMLResponse:
    notice = f'<p role="alert" class="error">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tripwire review: sign in</title><link rel="icon" href="data:,">
<style>body{{font:16px system-ui,sans-serif;background:#f4f5f7;color:#1b1f24;display:flex;justify-content:center;padding-top:12vh}}
form{{background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 1px 4px #0002;width:22rem}}
h1{{font-size:1.3rem;margin:0 0 1rem}}input{{width:100%;padding:.55rem;font:inherit;box-sizing:border-box;margin:.4rem 0 1rem}}
button{{padding:.55rem 1.2rem;font:inherit;background:#1f5fbf;color:#fff;border:0;border-radius:4px}}
.error{{color:#a40000;font-weight:600}}</style></head><body>
<form method="post" action="login"><h1>Tripwire review</h1>{notice}
<label for="token">Reviewer token</label><input id="token" name="token" type="password" autocomplete="off" autofocus required>
<button type="submit">Sign in</button></form></body></html>""", status_code=401 if message else 200)


def create_app(store: ReviewStore, config: ReviewConfig | None = None, log: DecisionLog | None = None) -> FastAPI:
    """The review app over ``store`` (the caller owns the store and closes it). With the decision ``log``,
    the review that resolves an item logs its outcome, and ``POST /api/appeals`` files appeals."""
    config = config or ReviewConfig()
    app = FastAPI(title="Tripwire review", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.store = store

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    # Outermost: a body over the limit is refused before any other middleware or route reads it.
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)

    @app.exception_handler(ReviewError)
    async def review_error(request: Request, exc: ReviewError) -> Response:
        page = not _route(request).startswith("/api/")
        if exc.status == 401 and page:
            return RedirectResponse(f"{_root(request)}/login", status_code=303)
        if exc.status == 403 and page:
            return HTMLResponse(f"<!doctype html><title>Forbidden</title><h1>403: {html.escape(exc.message)}</h1>"
                                f'<p><a href="{_root(request)}/">Back to the queue</a></p>', status_code=403)
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return _error(422, "invalid_request", "body: not valid JSON")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return _error(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "not_found" if exc.status_code == 404 else "invalid_request", str(exc.detail))

    def reviewer(request: Request) -> Reviewer:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return store.authenticate(header[7:].strip())
        return store.authenticate(request.cookies.get(COOKIE), sessions_only=True)

    def admin(who: Reviewer = Depends(reviewer)) -> Reviewer:
        if not who.is_admin:
            raise ReviewError(403, "forbidden", f"{who.name} is a reviewer; this needs an admin")
        return who

    # -- pages ------------------------------------------------------------------------------------
    @app.get("/login", include_in_schema=False)
    def login_page() -> HTMLResponse:
        return _login_page()

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        token = (parse_qs((await request.body()).decode("utf-8", "replace")).get("token") or [""])[0].strip()
        try:  # the reviewer's token opens a session; the cookie carries the session's own token
            session, who = await asyncio.to_thread(store.open_session, token)  # database work: off the event loop
        except ReviewError as exc:
            return _login_page(exc.message)
        response = RedirectResponse(f"{_root(request)}{'/admin' if who.is_admin else '/'}", status_code=303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict", max_age=int(max(1, who.expires_at - time.time())))
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        """Ends the session server-side (its token answers 401 from now on) and clears the cookie."""
        header = request.headers.get("authorization", "")
        for token in {request.cookies.get(COOKIE), header[7:].strip() if header.lower().startswith("bearer ") else None}:
            store.end_session(token)  # a reviewer's own token is no session: `tripwire queue revoke` ends it
        response = RedirectResponse(f"{_root(request)}/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", include_in_schema=False)
    def queue_page(who: Reviewer = Depends(reviewer)) -> Response:
        return Response(_static("review.html"), media_type="text/html")

    @app.get("/admin", include_in_schema=False)
    def admin_page(who: Reviewer = Depends(admin)) -> Response:
        return Response(_static("admin.html"), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str, who: Reviewer = Depends(reviewer)) -> Response:
        if name not in STATIC_FILES:
            raise ReviewError(404, "not_found", f"no static file {name!r}")
        return Response(_static(name), media_type=mimetypes.guess_type(name)[0] or "application/octet-stream")

    # -- API --------------------------------------------------------------------------------------
    @app.get("/api/me")
    def me(who: Reviewer = Depends(reviewer)) -> dict[str, Any]:
        return {"name": who.name, "role": who.role, "expires_at": who.expires_at}

    @app.get("/api/taxonomy")
    def taxonomy(who: Reviewer = Depends(reviewer)) -> dict[str, Any]:
        return {"categories": store.categories, "actions": list(ACTIONS), "clauses": store.clauses,
                "rationale_required_for": ["restrict", "block"]}

    @app.post("/api/claim")
    def claim(body: dict[str, Any] = Body(default_factory=dict), who: Reviewer = Depends(reviewer)) -> dict[str, Any]:
        got = store.claim(who, body.get("queue") or "review", body.get("category") or None,
                          body.get("policy") or None, (body.get("market") or "").upper() or None)
        return {"item": got[0], "claim": got[1]} if got else {"item": None, "claim": None}

    @app.get("/api/items/{item_id:path}/media/{modality}")
    def media(item_id: str, modality: str, request: Request, who: Reviewer = Depends(reviewer)) -> Response:
        item = store.item(item_id)
        ref = item.sample.get(modality) if modality in ("image", "audio", "video") else None
        if not ref:
            raise ReviewError(404, "unknown_media", f"item {item_id!r} has no {modality}")
        try:
            data = read_media_capped(modality, ref, item.item.base_uri, config.max_media_bytes, f"{modality} of {item_id!r}")
        except MediaError as exc:
            raise ReviewError(404, "unknown_media", f"{modality} of {item_id!r}: {exc}") from exc
        kind = sniff_media_type(data) or (mimetypes.guess_type(ref)[0] if isinstance(ref, str) else None)
        return ranged_response(data, kind or "application/octet-stream", request.headers.get("range"))

    @app.post("/api/reviews", status_code=201)
    def submit(body: dict[str, Any] = Body(...), who: Reviewer = Depends(reviewer)) -> Response:
        submission = store.check_submission(body)
        outcome = store.submit(who, submission)
        if log is not None and outcome["item_status"] == "resolved":
            try:
                log_outcome(store, log, submission.item_id)
            except Exception:  # the review is stored; tripwire compliance sync appends what is missing
                logger.exception("decision log: the outcome of %s was not logged", submission.item_id)
        return JSONResponse(outcome, status_code=200 if outcome["duplicate"] else 201)

    @app.post("/api/items/{item_id:path}/skip")
    def skip(item_id: str, who: Reviewer = Depends(reviewer)) -> dict[str, Any]:
        store.skip(who, item_id)
        return {"ok": True}

    @app.post("/api/items/{item_id:path}/escalate")
    def escalate(item_id: str, body: dict[str, Any] = Body(default_factory=dict),
                 who: Reviewer = Depends(reviewer)) -> dict[str, Any]:
        store.escalate(who, item_id, str(body.get("note") or ""))
        return {"ok": True}

    @app.get("/api/admin/stats")
    def stats(who: Reviewer = Depends(admin)) -> dict[str, Any]:
        return admin_stats(store)

    @app.post("/api/admin/reviewers", status_code=201)
    def add_reviewer(body: dict[str, Any] = Body(...), who: Reviewer = Depends(admin)) -> dict[str, Any]:
        ttl_days = body.get("ttl_days", config.token_ttl_days)
        if not isinstance(ttl_days, (int, float)) or ttl_days <= 0:
            raise ReviewError(422, "invalid_request", "ttl_days: must be a positive number")
        token = store.add_reviewer(str(body.get("name") or ""), str(body.get("role") or "reviewer"), ttl_days * 86400.0)
        return {"name": body["name"], "role": body.get("role") or "reviewer", "token": token,
                "expires_at": store.authenticate(token).expires_at}

    @app.post("/api/admin/items", status_code=201)
    def add_items(body: dict[str, Any] = Body(...), who: Reviewer = Depends(admin)) -> dict[str, Any]:
        items = body.get("items")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ReviewError(422, "invalid_request", "items: must be a list of item objects")
        return {"enqueued": store.enqueue(items)}

    @app.post("/api/appeals", status_code=201)
    def appeal(body: dict[str, Any] = Body(...), who: Reviewer = Depends(admin)) -> Response:
        """A user's appeal of a decision (filed by the product's service account, an admin)."""
        if log is None:
            raise ReviewError(404, "no_decision_log", "appeals need the decision log (review config: decision_log)")
        sample = body.get("sample")
        if sample is not None and not isinstance(sample, dict):
            raise ReviewError(422, "invalid_request", "sample: must be a manifest row object")
        try:
            filed = file_appeal(store, log, str(body.get("puid") or ""), str(body.get("statement") or ""), sample)
        except AppealError as exc:
            raise ReviewError(exc.status, exc.code or ("invalid_appeal" if exc.status == 422 else
                              ("unknown_decision" if exc.status == 404 else "not_appealable")), str(exc)) from None
        return JSONResponse(filed, status_code=200 if filed["duplicate"] else 201)

    return app


def admin_stats(store: ReviewStore, now: float | None = None, window_s: float = STATS_WINDOW_S) -> dict[str, Any]:
    """The admin page's figures: throughput, queue age, agreement per category and per reviewer.

    Agreement and accuracy cover the reviews of the last ``window_s`` (30 days), so the page's cost is
    bounded by that window's reviews, not by the store's whole history."""
    now = now or time.time()
    reviews = store.reviews(since=now - window_s)
    ordinary = [r for r in reviews if r["kind"] == "review"]
    by_item: dict[str, list[dict[str, int]]] = {}
    for r in ordinary:
        by_item.setdefault(r["item_id"], []).append(r["labels"])
    resolved = store.labels_of("resolved_labels", by_item)
    golden_reviews = [r for r in reviews if r["kind"] == "golden"]
    golden = store.labels_of("golden_labels", {r["item_id"] for r in golden_reviews})
    ages = store.pending_ages(now)
    per_reviewer = reviewer_agreement(ordinary, resolved, store.categories)
    for name, figures in golden_accuracy(golden_reviews, golden, store.categories).items():
        per_reviewer.setdefault(name, {"reviews": 0, "agreement": None, "items_compared": 0}).update(
            {"golden_reviews": figures["golden_reviews"], "golden_accuracy": figures["accuracy"],
             "golden_label_accuracy": figures["label_accuracy"]})
    spent = [r["time_spent_ms"] for r in ordinary if r["time_spent_ms"]]
    return {
        "window_days": round(window_s / 86400, 1),
        "throughput": {"reviews_total": len(reviews),
                       "reviews_last_hour": sum(r["decided_at"] >= now - 3600 for r in reviews),
                       "reviews_per_hour_24h": round(sum(r["decided_at"] >= now - 86400 for r in reviews) / 24, 2),
                       "median_time_spent_s": round(statistics.median(spent) / 1000, 1) if spent else None},
        "queue": {**store.counts(), "oldest_pending_age_s": round(max(ages), 1) if ages else None,
                  "median_pending_age_s": round(statistics.median(ages), 1) if ages else None},
        "categories": category_agreement(by_item, store.categories),
        "reviewers": per_reviewer,
        "adjudication": [{"item_id": i["item_id"], "reason": i["escalation"], "reviews": i["reviews_done"]}
                         for i in store.adjudication_queue()],
    }

"""The reviewer app's HTTP logic in-process (FastAPI's TestClient; the browser test drives it over real HTTP).

No page or API call works without a token; a reviewer cannot reach admin pages or calls; every refusal is
a 4xx JSON body naming the problem; media is served with its sniffed type.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import socket
import tracemalloc
from importlib import resources

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from helpers import result_json
from tripwire.policy import Taxonomy
from tripwire.review.app import create_app, sniff_media_type
from tripwire.review.config import ReviewConfig
from tripwire.review.store import open_store

CATEGORIES = Taxonomy.load().names


@pytest.fixture
def app(tmp_path):
    png = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png, format="PNG")
    (tmp_path / "img.png").write_bytes(png.getvalue())
    store = open_store(str(tmp_path / "review.db"), CATEGORIES, required_reviews=1, golden_every=0)
    scores = {c: 0.1 for c in CATEGORIES}
    store.enqueue([{"item_id": "a/1", "source": "scan", "sample": {"id": "a/1", "text": "hi", "image": "img.png"},
                    "base_uri": str(tmp_path), "result": result_json("a/1", scores)}])
    tokens = {"reviewer": store.add_reviewer("rita"), "admin": store.add_reviewer("adam", "admin"),
              "expired": store.add_reviewer("old", ttl_s=1e-6)}
    client = TestClient(create_app(store), follow_redirects=False)
    yield client, tokens, store
    store.close()


def auth(token):
    return {"Authorization": f"Bearer {token}"}


ROUTES = [("GET", "/api/me"), ("GET", "/api/taxonomy"), ("POST", "/api/claim"), ("GET", "/api/items/a%2F1/media/image"),
          ("POST", "/api/reviews"), ("POST", "/api/items/a%2F1/skip"), ("POST", "/api/items/a%2F1/escalate"),
          ("GET", "/api/admin/stats"), ("POST", "/api/admin/reviewers"), ("POST", "/api/admin/items")]
PAGES = ["/", "/admin", "/static/review.js", "/static/review.css"]


@pytest.mark.parametrize("method, path", ROUTES)
@pytest.mark.parametrize("token, code", [(None, "unauthenticated"), ("wrong", "unauthenticated"),
                                         ("expired", "token_expired")])
def test_no_api_call_works_without_a_valid_token(app, method, path, token, code):
    client, tokens, _ = app
    headers = auth(tokens.get(token, token)) if token else {}
    answer = client.request(method, path, headers=headers, json={})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == code


@pytest.mark.parametrize("path", PAGES)
def test_no_page_works_without_a_token(app, path):
    client, _, _ = app
    answer = client.get(path)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"


@pytest.mark.parametrize("method, path", [r for r in ROUTES if "/admin/" in r[1]] + [("GET", "/admin")])
def test_a_reviewer_cannot_reach_admin_pages_or_calls(app, method, path):
    client, tokens, _ = app
    answer = client.request(method, path, headers=auth(tokens["reviewer"]), json={})
    assert answer.status_code == 403
    if path.startswith("/api/"):
        assert answer.json()["error"]["code"] == "forbidden"


def test_sign_in_sets_an_http_only_cookie_that_opens_the_pages(app):
    client, tokens, _ = app
    refused = client.post("/login", data={"token": "nope"})
    assert refused.status_code == 401 and "not valid" in refused.text
    signed = client.post("/login", data={"token": tokens["reviewer"]})
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    assert "httponly" in signed.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200 and client.get("/api/me").json()["name"] == "rita"
    assert client.post("/logout").status_code == 303 and client.get("/").status_code == 303


def test_signing_out_ends_the_session_on_the_server(app):
    client, tokens, _ = app
    client.post("/login", data={"token": tokens["reviewer"]})
    session = client.cookies.get("tripwire_review")
    assert session and session != tokens["reviewer"]  # the cookie carries a session, not the reviewer's token
    assert client.get("/api/me").status_code == 200
    assert client.post("/logout").status_code == 303
    # The signed-out session's token no longer works, whether replayed as the cookie or as a bearer token.
    client.cookies.set("tripwire_review", session)
    for answer in (client.get("/api/me"), client.get("/api/me", headers=auth(session))):
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthenticated"
    assert client.get("/").status_code == 303
    # The reviewer's own token signs in again; a cookie holding it (not a session) is refused.
    assert client.post("/login", data={"token": tokens["reviewer"]}).status_code == 303
    client.cookies.clear()
    client.cookies.set("tripwire_review", tokens["reviewer"])
    assert client.get("/api/me").status_code == 401


def test_an_idempotency_key_reused_for_another_item_is_refused_naming_both(app):
    client, tokens, store = app
    store.enqueue([{"item_id": "b/2", "source": "scan", "sample": {"id": "b/2", "text": "yo"},
                    "result": result_json("b/2", {c: 0.1 for c in CATEGORIES})}])
    headers = auth(tokens["reviewer"])
    allow = {"item_id": "a/1", "labels": {}, "action": "allow", "time_spent_ms": 5, "idempotency_key": "k-1"}
    created = client.post("/api/reviews", headers=headers, json=allow)
    assert created.status_code == 201 and created.json()["item_id"] == "a/1"
    block = {"item_id": "b/2", "labels": {"hate": 1}, "action": "block", "policy_clause": "hate", "rationale": "threat",
             "time_spent_ms": 5, "idempotency_key": "k-1"}
    refused = client.post("/api/reviews", headers=headers, json=block)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "idempotency_conflict"
    assert "'a/1'" in refused.json()["error"]["message"] and "'b/2'" in refused.json()["error"]["message"]
    assert store.reviews("b/2") == []
    again = client.post("/api/reviews", headers=headers, json=allow)
    assert again.status_code == 200 and again.json() == {**created.json(), "duplicate": True}


def test_request_bodies_and_rationales_are_capped(app):
    client, tokens, store = app
    headers = auth(tokens["reviewer"])
    body = {"item_id": "a/1", "labels": {"hate": 1}, "action": "restrict", "policy_clause": "hate",
            "time_spent_ms": 5, "idempotency_key": "k-big"}
    long = client.post("/api/reviews", headers=headers, json={**body, "rationale": "x" * 1_000_000})
    assert long.status_code == 422 and long.json()["error"]["message"].startswith("rationale: at most 5000 characters")
    huge = client.post("/api/reviews", headers=headers, json={**body, "rationale": "x" * 2_000_000})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"
    assert str(ReviewConfig().max_body_bytes) in huge.json()["error"]["message"]
    assert huge.headers["x-content-type-options"] == "nosniff"
    assert store.reviews() == []
    assert client.post("/api/reviews", headers=headers, json={**body, "rationale": "x" * 5000}).status_code == 201


async def _asgi(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, dict, int]:
    """One POST /api/reviews through the ASGI interface; returns (status, JSON answer, body bytes the app pulled)."""
    pulled, sent = 0, []

    async def receive():
        nonlocal pulled
        if not chunks:
            return {"type": "http.disconnect"}
        chunk = chunks.pop(0)
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/reviews", "raw_path": b"/api/reviews", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


def test_a_body_over_the_limit_is_refused_before_it_is_read(tmp_path):
    store = open_store(str(tmp_path / "review.db"), CATEGORIES)
    limit = 1024 * 1024  # ReviewConfig().max_body_bytes, the default
    app = create_app(store)
    chunk = b"x" * 16 * 1024
    # 20 MB declared: refused from the Content-Length alone, not a byte of the body read.
    status, answer, pulled = asyncio.run(_asgi(app, [(b"content-length", b"20000000")], [chunk] * 1250))
    assert (status, answer["error"]["code"], pulled) == (413, "body_too_large", 0)
    assert "20000000" in answer["error"]["message"] and str(limit) in answer["error"]["message"]
    # No Content-Length (chunked): refused once the body passes the limit; the rest is never pulled.
    status, answer, pulled = asyncio.run(_asgi(app, [], [chunk] * 1250))
    assert (status, answer["error"]["code"]) == (413, "body_too_large") and pulled <= limit + len(chunk)
    # Within the limit the request goes through (here: 401, it carries no token).
    status, answer, _ = asyncio.run(_asgi(app, [(b"content-length", b"2")], [b"{}"]))
    assert (status, answer["error"]["code"]) == (401, "unauthenticated")
    store.close()


def test_the_server_answers_413_without_waiting_for_a_huge_body(tmp_path):
    from bench.reviewers import review_app_server

    store = open_store(str(tmp_path / "review.db"), CATEGORIES)
    with review_app_server(store) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /api/reviews HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 20000000\r\n\r\n" + b"x" * 1000)
            answer = sock.recv(65536).decode()  # times out when the server waits for the 20 MB
    store.close()
    assert answer.startswith("HTTP/1.1 413") and "body_too_large" in answer


def test_media_over_the_limit_is_refused_before_it_is_read(app, tmp_path):
    client, tokens, store = app
    big = tmp_path / "big.png"
    limit = 64 * 1024 * 1024  # ReviewConfig().max_media_bytes, the default
    size = limit + 1024 * 1024
    with open(big, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.truncate(size)  # sparse: nothing to write
    store.enqueue([{"item_id": "c", "source": "scan", "sample": {"id": "c", "image": str(big)}, "result": {}}])
    tracemalloc.start()
    try:
        answer = client.get("/api/items/c/media/image", headers=auth(tokens["reviewer"]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "media_too_large"
    assert f"{size} bytes (limit {limit})" in answer.json()["error"]["message"]
    assert peak < 8 * 1024 * 1024, f"{peak} bytes allocated serving a refused {size}-byte file"
    # Inline media are measured before they are decoded.
    limited = TestClient(create_app(store, ReviewConfig(max_media_bytes=1024 * 1024)))
    inline = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024)).decode()
    store.enqueue([{"item_id": "d", "source": "scan", "sample": {"id": "d", "image": inline}, "result": {}}])
    refused = limited.get("/api/items/d/media/image", headers=auth(tokens["reviewer"]))
    assert refused.status_code == 413 and "limit 1048576" in refused.json()["error"]["message"]
    assert limited.get("/api/items/a%2F1/media/image", headers=auth(tokens["reviewer"])).status_code == 200


def test_long_words_wrap_instead_of_widening_the_page():
    """A rationale, statement or note of one 5,000-character word wraps in the adjudication table, the item's
    metadata, the admin tables and the banners (the browser test measures the page)."""
    css = re.sub(r"/\*.*?\*/", "", resources.files("tripwire.review").joinpath("static", "review.css").read_text(), flags=re.S)
    rules: dict[str, str] = {}
    for block in css.split("}"):
        if "{" in block:
            selectors, body = block.rsplit("{", 1)
            for selector in selectors.split(","):
                rules[selector.strip()] = rules.get(selector.strip(), "") + body
    for selector in (".prior td", ".meta", "table.data td", ".banner", ".escalation", ".item-text"):
        assert "overflow-wrap: anywhere" in rules.get(selector, ""), selector


def test_a_review_through_the_api_and_its_errors(app):
    client, tokens, store = app
    headers = auth(tokens["reviewer"])
    claimed = client.post("/api/claim", headers=headers, json={}).json()
    assert claimed["item"]["item_id"] == "a/1" and claimed["item"]["media"]["image"] == "api/items/a%2F1/media/image"
    image = client.get("/api/items/a%2F1/media/image", headers=headers)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    missing = client.get("/api/items/a%2F1/media/audio", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_media"
    body = {"item_id": "a/1", "labels": {"hate": 1}, "action": "restrict", "policy_clause": "hate",
            "time_spent_ms": 5, "idempotency_key": "k-1"}
    refused = client.post("/api/reviews", headers=headers, json=body)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "rationale_required"
    bad_json = client.post("/api/reviews", headers={**headers, "content-type": "application/json"}, content=b"{")
    assert bad_json.status_code == 422 and bad_json.json()["error"]["message"] == "body: not valid JSON"
    created = client.post("/api/reviews", headers=headers, json={**body, "rationale": "slur"})
    assert created.status_code == 201 and created.json()["item_status"] == "resolved" and created.json()["item_id"] == "a/1"
    again = client.post("/api/reviews", headers=headers, json={**body, "rationale": "slur"})
    assert again.status_code == 200 and again.json()["duplicate"] and again.json()["review_id"] == created.json()["review_id"]
    assert len(store.reviews()) == 1
    assert client.post("/api/claim", headers=headers, json={}).json() == {"item": None, "claim": None}


def test_admins_see_stats_create_reviewers_and_enqueue(app):
    client, tokens, _ = app
    headers = auth(tokens["admin"])
    created = client.post("/api/admin/reviewers", headers=headers, json={"name": "nia", "role": "reviewer", "ttl_days": 1})
    assert created.status_code == 201 and client.get("/api/me", headers=auth(created.json()["token"])).json()["name"] == "nia"
    bad = client.post("/api/admin/reviewers", headers=headers, json={"name": "x y", "role": "reviewer"})
    assert bad.status_code == 422 and "name" in bad.json()["error"]["message"]
    added = client.post("/api/admin/items", headers=headers, json={"items": [{"item_id": "b", "sample": {"text": "t"}}]})
    assert added.json() == {"enqueued": 1}
    for item, named in (({"item_id": "c", "result": {"scores": {}, "decision": {"action": "review"}}}, "result"),
                        ({"item_id": "c", "source": "rumour"}, "source"), ({"sample": {}}, "item_id"),
                        ({"item_id": "c", "priorty": 1}, "priorty")):
        refused = client.post("/api/admin/items", headers=headers, json={"items": [item]})
        assert refused.status_code == 422 and named in refused.json()["error"]["message"], refused.text
    stats = client.get("/api/admin/stats", headers=headers).json()
    assert set(stats) == {"window_days", "throughput", "queue", "categories", "reviewers", "adjudication"}
    assert stats["queue"]["pending"] == 2 and set(stats["categories"]) == set(CATEGORIES)
    assert client.get("/admin", headers=headers).status_code == 200


def test_pages_forbid_other_origins():
    from tripwire.review.app import SECURITY_HEADERS

    assert "default-src 'self'" in SECURITY_HEADERS["Content-Security-Policy"]


@pytest.mark.parametrize("data, kind", [(b"\x89PNG\r\n\x1a\n...", "image/png"), (b"\xff\xd8\xff\xe0", "image/jpeg"),
                                        (b"RIFF\0\0\0\0WAVEfmt ", "audio/wav"), (b"fLaC\0", "audio/flac"),
                                        (b"\0\0\0\x18ftypmp42", "video/mp4"), (b"\x1aE\xdf\xa3", "video/webm"),
                                        (b"hello", None)])
def test_media_types_are_sniffed_from_the_bytes(data, kind):
    assert sniff_media_type(data) == kind


def test_media_is_served_in_the_ranges_a_player_asks_for():
    from tripwire.review.app import ranged_response

    data = bytes(range(100))
    whole = ranged_response(data, "audio/wav", None)
    assert whole.status_code == 200 and whole.body == data and whole.headers["accept-ranges"] == "bytes"
    part = ranged_response(data, "audio/wav", "bytes=10-19")
    assert part.status_code == 206 and part.body == data[10:20] and part.headers["content-range"] == "bytes 10-19/100"
    assert ranged_response(data, "audio/wav", "bytes=90-").body == data[90:]
    assert ranged_response(data, "audio/wav", "bytes=-5").body == data[95:]
    assert ranged_response(data, "audio/wav", "bytes=95-500").headers["content-range"] == "bytes 95-99/100"
    assert ranged_response(data, "audio/wav", "bytes=100-").status_code == 416
    assert ranged_response(data, "audio/wav", "bytes=1-2,5-6").status_code == 200  # several ranges: the whole file

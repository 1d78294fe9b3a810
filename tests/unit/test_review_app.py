"""The reviewer app's HTTP logic in-process (FastAPI's TestClient; the browser test drives it over real HTTP).

No page or API call works without a token; a reviewer cannot reach admin pages or calls; every refusal is
a 4xx JSON body naming the problem; media is served with its sniffed type.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tripwire.policy import Taxonomy
from tripwire.review.app import create_app, sniff_media_type
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
                    "base_uri": str(tmp_path), "result": {"scores": scores, "decision": {"action": "review"}}}])
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
    assert created.status_code == 201 and created.json()["item_status"] == "resolved"
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

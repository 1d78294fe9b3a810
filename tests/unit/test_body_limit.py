"""Request bodies are capped in the ingress before the endpoints read them: a Content-Length over the limit is
refused before a byte is read, a body without one is read only until it passes the limit (a 20 MB body was
read whole before it was refused), and both get a 413 JSON error naming the limit. The limits follow from
the served model's media limits, so any request within them fits."""

from __future__ import annotations

import asyncio
import base64
import json
import random

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from deployments import api as api_module
from deployments.api import MAX_BATCH_ITEMS, BodyLimit, body_limits, set_body_limits
from tripwire.data.media import MediaLimits
from tripwire.serving.openai_compat import MAX_INPUTS

ALL = ("text", "image", "audio", "video")
LIMITS = MediaLimits(max_text_chars=50, max_image_bytes=3000, max_audio_bytes=5000, max_video_bytes=7000)


@pytest.fixture
def limits():
    """This process's limits, restored afterwards (the ingress sets them once per replica)."""
    saved = dict(api_module._BODY_LIMITS)
    yield set_body_limits
    set_body_limits(saved)


def largest_item(limits: MediaLimits, modalities) -> dict:
    """The largest item within ``limits``: text of characters outside the BMP (12 bytes each in ASCII JSON),
    media (random bytes, as compressed media is) of the largest size, as base64 data: URIs."""
    item = {"id": "i" * 256, "request_id": "r" * 256, "text": "\U0001f600" * limits.max_text_chars, "market": "DE",
            "language": "en" * 500, "content_type": "post" * 500}
    for modality in ("image", "audio", "video"):
        if modality in modalities:
            item[modality] = "data:application/octet-stream;base64," + base64.b64encode(
                random.Random(0).randbytes(getattr(limits, f"max_{modality}_bytes"))).decode()
    return item


def size(body: dict, escape_slashes: bool = False) -> int:
    """The body's bytes as JSON: characters outside the BMP as two \\u escapes each (ensure_ascii), and "/"
    as "\\/" where ``escape_slashes`` (PHP's json_encode does, by default)."""
    text = json.dumps(body)
    return len((text.replace("/", "\\/") if escape_slashes else text).encode())


@pytest.mark.parametrize("modalities", [ALL, ("text",), ("text", "image")])
def test_a_request_within_the_media_limits_fits_its_endpoints_limit(modalities):
    limit = body_limits(LIMITS, modalities)
    item = largest_item(LIMITS, modalities)
    assert size(item, escape_slashes=True) <= limit["/v1/moderate"]
    text_only = {k: v for k, v in item.items() if k not in ("image", "audio", "video")}
    batch = {"items": [text_only] * (MAX_BATCH_ITEMS - 1) + [item]}
    assert size(batch, escape_slashes=True) <= limit["/v1/moderate/batch"]
    openai = {"input": ["\U0001f600" * LIMITS.max_text_chars] * MAX_INPUTS, "model": "m" * 1000}
    assert size(openai) <= limit["/v1/moderations"]
    # Not far beyond it either: a modality the model does not serve adds nothing.
    assert limit["/v1/moderate"] < 1.1 * size(item, escape_slashes=True) + 16 * 1024


def test_max_body_lowers_every_limit():
    derived = body_limits(LIMITS, ALL)
    capped = body_limits(LIMITS, ALL, max_body_bytes=10_000)
    assert capped == {path: min(limit, 10_000) for path, limit in derived.items()}
    assert body_limits(MediaLimits(), ALL)["/v1/moderate"] > 64 * 2**20 * 4 / 3  # the default video fits


class Body:
    """An ASGI ``receive`` sending ``chunks`` chunks of ``chunk`` bytes (no Content-Length) and counting reads."""

    def __init__(self, chunks: int, chunk: int = 1000):
        self.left, self.chunk, self.reads = chunks, chunk, 0

    async def __call__(self):
        self.reads += 1
        if self.left == 0:
            await asyncio.sleep(3600)  # the client keeps the connection open; only a disconnect would come
        self.left -= 1
        return {"type": "http.request", "body": b"x" * self.chunk, "more_body": self.left > 0}


def call(app, path: str, receive, headers=()) -> tuple[list[dict], bool]:
    """Runs the middleware around ``app`` for one POST; returns what it sent and whether ``app`` ran."""
    sent, ran = [], []

    async def inner(scope, inner_receive, send):
        ran.append(True)
        await app(scope, inner_receive, send)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "root_path": "", "headers": list(headers),
             "query_string": b""}
    asyncio.run(asyncio.wait_for(BodyLimit(inner)(scope, receive, send), 10))
    return sent, bool(ran)


async def echo(scope, receive, send):
    """An app that reads the whole body and answers its length."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def error_of(sent: list[dict]) -> tuple[int, dict]:
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]


def test_a_body_over_the_limit_is_read_no_further(limits):
    limits({"/v1/moderate": 5500})
    receive = Body(chunks=20_000)  # 20 MB
    sent, ran = call(echo, "/v1/moderate", receive)
    status, error = error_of(sent)
    assert status == 413 and not ran
    assert receive.reads == 6  # the first read past 5,500 bytes; the other 19,994 chunks are never read
    assert (error["field"], error["reason"]) == ("body", "too_large") and "limit of 5500 bytes" in error["message"]


def test_a_declared_content_length_over_the_limit_is_refused_before_reading(limits):
    limits({"/v1/moderations": 5500})
    receive = Body(chunks=20_000)
    sent, ran = call(echo, "/v1/moderations", receive, headers=[(b"content-length", b"20000000")])
    status, error = error_of(sent)
    assert status == 413 and not ran and receive.reads == 0
    assert "20000000 bytes (Content-Length)" in error["message"] and "5500 bytes" in error["message"]


def test_a_body_within_the_limit_reaches_the_endpoint_whole(limits):
    limits({"/v1/moderate/batch": 5500})
    sent, ran = call(echo, "/v1/moderate/batch", Body(chunks=5), headers=[(b"content-length", b"5000")])
    assert ran and sent[0]["status"] == 200 and sent[1]["body"] == b"5000"
    # Other routes are not this middleware's: their bodies pass through unread.
    sent, ran = call(echo, "/v1/other", Body(chunks=20))
    assert ran and sent[1]["body"] == b"20000"


def test_the_api_refuses_an_oversized_body_with_its_json_error(limits):
    """Through the real FastAPI app (its middleware stack), before any route is looked up."""
    limits({"/v1/moderate": 2000, "/v1/moderate/batch": 2000, "/v1/moderations": 2000})
    client = TestClient(api_module.api)
    response = client.post("/v1/moderate", json={"text": "x" * 5000})
    assert response.status_code == 413
    assert response.json()["error"]["reason"] == "too_large" and "2000 bytes" in response.json()["error"]["message"]


def test_the_endpoint_sees_the_body_the_client_sent(limits):
    limits({"/echo": 10_000})
    app = FastAPI()

    @app.post("/echo")
    async def echo_json(request: Request) -> dict:
        return await request.json()

    app.add_middleware(BodyLimit)
    body = {"text": "é" * 100, "n": list(range(100))}
    assert TestClient(app).post("/echo", json=body).json() == body
    assert TestClient(app).post("/echo", json={"text": "x" * 20_000}).status_code == 413

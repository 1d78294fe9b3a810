"""Scripted reviewers: the reviewer app over real HTTP and clients that work its queue.

The loop's integration test and ``bench/bench_loop.py`` use them in place of people: each reviewer claims
the next item over ``POST /api/claim`` and submits the labels a ground-truth oracle gives
(``POST /api/reviews``), as the web app's pages do. The app runs either in a thread (``review_app_server``)
or as the real ``tripwire review-ui`` command in a subprocess (``ReviewUI``, which can also SIGKILL it), and
``make_items`` / ``random_review`` build synthetic queue items and reviews; the review store's reliability test and
``bench/bench_review_store.py`` use those.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import httpx

from tripwire.policy import ACTION_NAMES

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def review_app_server(store, config=None) -> Iterator[str]:
    """The reviewer app over ``store`` on a free local port (uvicorn in a thread); yields its base URL."""
    import uvicorn

    from tripwire.review.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, config), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="review-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the review app did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def write_review_settings(path: str | Path, **settings: Any) -> Path:
    """A review settings YAML (fields of ``tripwire.review.config.ReviewConfig``) at ``path``."""
    import yaml

    from tripwire.review.config import ReviewConfig

    ReviewConfig(**settings)  # a bad field fails here, not in the server's log
    path = Path(path)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


class ReviewUI:
    """``tripwire review-ui --store URL --config SETTINGS`` in a subprocess on a free local port.

    ``start()`` returns its base URL once ``/api/me`` answers 401 (within ``start_timeout_s``; it raises
    with the log's tail otherwise), ``kill()`` sends SIGKILL, ``stop()`` terminates it (SIGKILL after 10 s).
    It can be started again on the same store after either; as a context manager it is started and stopped.
    The server's output goes to ``log`` (appended across starts).
    """

    def __init__(self, store_url: str, settings: str | Path, log: str | Path, start_timeout_s: float = 60.0):
        self.store_url, self.settings, self.log = store_url, Path(settings), Path(log)
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen | None = None
        self.base = ""

    def start(self) -> str:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "entrypoints.cli", "review-ui", "--store", self.store_url, "--port", str(port),
                 "--config", str(self.settings), "--host", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO), env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"review-ui exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/api/me", timeout=2).status_code == 401:
                    return self.base
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"review-ui did not answer within {self.start_timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "ReviewUI":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def make_items(n: int, prefix: str = "item", seed: int = 7) -> list:
    """``n`` scan queue items ``{prefix}-0000``... with complete synthetic moderation results (random scores
    from ``seed``, the bundled policy's decision on them)."""
    from tripwire.moderation.result import ModerationResult
    from tripwire.policy import Policy, Taxonomy
    from tripwire.review.item import QueueItem

    policy, cats, rng = Policy.load(), Taxonomy.load().names, random.Random(seed)
    width = max(4, len(str(n - 1)))
    items = []
    for i in range(n):
        item_id = f"{prefix}-{i:0{width}d}"
        scores = {c: round(rng.random(), 4) for c in cats}
        result = ModerationResult(
            id=item_id, scores=scores, decision=policy.decide(scores),
            attribution={c: {"driven_by": "text", "contributions": {"text": s}} for c, s in scores.items()},
            evidence={}, modalities=["text"], model_version="scripted")
        items.append(QueueItem(item_id=item_id, source="scan", priority=float(rng.random()), result=result,
                               sample={"id": item_id, "text": f"sample text {i}", "meta": {}}))
    return items


def random_review(item_id: str, categories: list[str], rng: random.Random) -> dict:
    """A valid review body of ``item_id`` with a random action and category from ``rng`` (a fresh idempotency
    key; the category cited as the clause when the action is not ``allow``, with a rationale when restrictive)."""
    action = rng.choice(list(ACTION_NAMES))
    category = rng.choice(categories)
    body = {"item_id": item_id, "labels": {category: int(action != "allow")}, "action": action,
            "time_spent_ms": rng.randrange(500, 20000), "idempotency_key": str(uuid.uuid4())}
    if action != "allow":
        body["policy_clause"] = category
    if action in ("restrict", "block"):
        body["rationale"] = f"{category}: clear violation"
    return body


def oracle_review(item: Mapping, truth: Mapping[str, int]) -> dict:
    """A review body from ground-truth labels: restrict with a rationale when anything is positive."""
    flagged = sorted(c for c, v in truth.items() if v == 1)
    if not flagged:
        return {"labels": dict(truth), "action": "allow", "policy_clause": None, "rationale": ""}
    return {"labels": dict(truth), "action": "restrict", "policy_clause": flagged[0],
            "rationale": f"scripted reviewer: {', '.join(flagged)}"}


class ScriptedReviewers:
    """Reviewers that work the queue over HTTP until ``stop()`` (or until it stays empty, with ``until_empty``).

    Args:
        base_url: the reviewer app.
        tokens: one token per reviewer (each runs in its own thread).
        truth: item id -> labels the oracle answers with.
        poll_s: how long an idle reviewer waits before claiming again.
    """

    def __init__(self, base_url: str, tokens: list[str], truth: Mapping[str, Mapping[str, int]],
                 poll_s: float = 0.2, review: Callable[[Mapping, Mapping[str, int]], dict] = oracle_review):
        self.base_url, self.tokens, self.truth, self.poll_s, self.review = base_url, tokens, truth, poll_s, review
        self.submitted: list[dict] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, args=(t,), daemon=True) for t in tokens]

    def start(self) -> "ScriptedReviewers":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _work(self, token: str) -> None:
        with httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            while not self._stop.is_set():
                claimed = client.post("/api/claim", json={})
                item = claimed.json().get("item") if claimed.status_code == 200 else None
                if claimed.status_code != 200:
                    self._error(f"claim: {claimed.status_code} {claimed.text[:200]}")
                if item is None:
                    self._stop.wait(self.poll_s)
                    continue
                body = {"item_id": item["item_id"], "time_spent_ms": 1000, "idempotency_key": uuid.uuid4().hex,
                        **self.review(item, self.truth.get(item["item_id"], {}))}
                answer = client.post("/api/reviews", json=body)
                if answer.status_code in (200, 201):
                    with self._lock:
                        self.submitted.append({**body, **answer.json()})
                else:
                    self._error(f"review of {item['item_id']}: {answer.status_code} {answer.text[:200]}")

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

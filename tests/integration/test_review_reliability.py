"""The review store under real load, over real HTTP, on SQLite and on PostgreSQL.

Each test starts the review app (``tripwire review-ui``) in a subprocess on a fresh store and drives
it with httpx clients from threads:

* 32 reviewers drain a 200-item queue, retrying ~20% of their submissions with the same idempotency key:
  every acknowledged review is stored once, every retry is a duplicate of it, no item gets more reviews
  than it needs, no reviewer reviews an item twice;
* a retry racing its original (the client timed out while the first request was still running) is a
  duplicate too;
* SIGKILL of the server in the middle of a burst of submissions: after a restart every acknowledged review
  is there, the store is consistent, and resubmitting what was not acknowledged stores nothing twice;
* bad input answers 4xx JSON naming the problem.

The PostgreSQL cases start a throwaway server (tests/pg_server.py) and skip where it is not installed.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter

import httpx
import pytest

from bench.reviewers import ReviewUI, make_items, random_review, write_review_settings

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 20.0
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# -- plumbing -------------------------------------------------------------------------------------
def categories() -> list[str]:
    from tripwire.policy import Taxonomy

    return Taxonomy.load().names


def open_test_store(url: str, required: int):
    from tripwire.review.store import open_store

    return open_store(url, categories(), required_reviews=required, golden_every=0)


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def server_factory(store_url, tmp_path):
    """``make(required)``: a ``tripwire review-ui`` subprocess over the test's store (``ReviewUI``: ``start()``,
    ``kill()`` (SIGKILL), ``stop()``), needing ``required`` reviews an item and no golden items."""
    servers: list[ReviewUI] = []

    def make(required: int) -> ReviewUI:
        settings = write_review_settings(tmp_path / f"review_settings_{required}.yaml", required_reviews=required,
                                         golden_every=0)
        servers.append(ReviewUI(store_url, settings, tmp_path / "review_server.log", START_TIMEOUT_S))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def review_body(item_id: str, reviewer: str, disagree: bool) -> dict:
    """A valid review; on ``disagree`` items each reviewer's verdict differs (they go to adjudication)."""
    return random_review(item_id, categories(), random.Random(f"{item_id}/{reviewer}" if disagree else item_id))


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- 1. dozens of concurrent reviewers -----------------------------------------------------------
@pytest.mark.timeout(120)
def test_concurrent_reviewers_store_each_acknowledged_review_once(server_factory, store_url):
    reviewers, n_items, required = 32, 200, 2
    store = open_test_store(store_url, required)
    tokens = {f"r{i:02d}": store.add_reviewer(f"r{i:02d}") for i in range(reviewers)}
    assert store.enqueue(make_items(n_items)) == n_items
    disagree = {f"item-{i:04d}" for i in range(0, n_items, 5)}
    server = server_factory(required)
    base = server.start()

    lock = threading.Lock()
    acked: dict[int, tuple[str, str, str]] = {}  # review_id -> (key, reviewer, item)
    retries: list[tuple[int, dict]] = []  # (first review_id, retry answer)
    errors: list[str] = []
    closed = Counter()  # a claim that lost the race for an item's last review (409 item_closed)
    deadline = time.monotonic() + 60

    def review_one(client: httpx.Client, name: str, rng: random.Random) -> bool:
        """One claim and its review; False when nothing was left to claim."""
        got = client.post("/api/claim", json={"queue": "review"})
        if got.status_code != 200:
            errors.append(f"{name} claim: {got.status_code} {got.text}")
            raise StopIteration
        item = got.json()["item"]
        if item is None:
            return False
        body = review_body(item["item_id"], name, item["item_id"] in disagree)
        sent = client.post("/api/reviews", json=body)
        if sent.status_code == 409 and sent.json()["error"]["code"] == "item_closed":
            closed[name] += 1  # another claimant gave the item its last review first
            return True
        if sent.status_code != 201 or sent.json().get("duplicate") is not False:
            errors.append(f"{name} submit {item['item_id']}: {sent.status_code} {sent.text}")
            raise StopIteration
        review_id = sent.json()["review_id"]
        with lock:
            if review_id in acked:
                errors.append(f"review_id {review_id} acknowledged (201) twice")
            acked[review_id] = (body["idempotency_key"], name, item["item_id"])
        if rng.random() < 0.2:  # the client did not see the answer and retries
            again = client.post("/api/reviews", json=body)
            retries.append((review_id, {"status": again.status_code, **again.json()}))
        return True

    def reviewer(name: str, token: str) -> None:
        rng = random.Random(name)
        with httpx.Client(base_url=base, headers=auth(token), timeout=REQUEST_TIMEOUT_S) as client:
            while time.monotonic() < deadline:
                try:
                    worked = review_one(client, name, rng)
                except StopIteration:
                    return
                if not worked:
                    if store.counts()["pending"] == 0:
                        return  # the queue is drained
                    time.sleep(0.1)  # the rest is claimed by others (who may still leave room for one more)
            errors.append(f"{name}: the queue did not drain within 60s ({len(acked)} reviews acknowledged)")

    threads = [threading.Thread(target=reviewer, args=item, daemon=True) for item in tokens.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(t.is_alive() for t in threads), "reviewer threads still running after 90s"
    assert not errors, errors[:10]

    # Every retry was a duplicate of the first review.
    assert retries, "no retries were sent"
    for first_id, answer in retries:
        assert answer == {"status": 200, "review_id": first_id, "item_id": acked[first_id][2],
                          "item_status": answer["item_status"], "duplicate": True}, answer

    stored = store.reviews()
    by_id = {r["review_id"]: r for r in stored}
    assert len(stored) == len(by_id) == len(acked), (len(stored), len(acked))  # no review without an ack
    assert set(by_id) == set(acked)
    for review_id, (key, name, item_id) in acked.items():
        row = by_id[review_id]
        assert (row["idempotency_key"], row["reviewer"], row["item_id"]) == (key, name, item_id)
    per_item = Counter(r["item_id"] for r in stored if r["kind"] == "review")
    assert max(per_item.values()) <= required
    per_pair = Counter((r["item_id"], r["reviewer"]) for r in stored)
    assert max(per_pair.values()) == 1, [pair for pair, n in per_pair.items() if n > 1][:5]
    assert store.check_consistency() == []
    # The queue drained: every item got its reviews and left the review queue.
    counts = store.counts()
    assert counts["pending"] == 0 and len(stored) == n_items * required, (counts, len(stored))
    assert counts["adjudication"] >= 1 and counts["resolved"] >= n_items - len(disagree)
    print(f"\n{len(acked)} reviews, {len(retries)} retries, {sum(closed.values())} claims lost to a full item")
    store.close()


# -- 1b. claims never hand out more places than an item has -------------------------------------
@pytest.mark.timeout(90)
def test_concurrent_claims_never_exceed_the_reviews_an_item_needs(server_factory, store_url):
    """In each of 3 rounds 32 new reviewers claim at once from 8 new items needing 2 reviews each: at most
    2 claims per item are granted (a reviewer handed an item with no room left works on it for nothing:
    the submission is refused ``item_closed``)."""
    rounds, reviewers, n_items, required = 3, 32, 8, 2
    store = open_test_store(store_url, required)
    base = server_factory(required).start()
    granted: list[str | None] = []

    def claim(token: str, start: threading.Barrier) -> None:
        with httpx.Client(base_url=base, headers=auth(token), timeout=REQUEST_TIMEOUT_S) as client:
            client.get("/api/me")
            start.wait()
            got = client.post("/api/claim", json={})
            granted.append(got.json()["item"]["item_id"] if got.status_code == 200 and got.json()["item"] else None)

    for round_ in range(rounds):
        tokens = [store.add_reviewer(f"c{round_}-{i:02d}") for i in range(reviewers)]
        store.enqueue(make_items(n_items, prefix=f"few{round_}"))
        start = threading.Barrier(reviewers, timeout=30)
        threads = [threading.Thread(target=claim, args=(token, start), daemon=True) for token in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    per_item = Counter(item for item in granted if item)
    assert len(granted) == rounds * reviewers
    over = {item: n for item, n in per_item.items() if n > required}
    assert not over, f"{sum(per_item.values())} claims granted for {rounds * n_items * required} places; " \
                     f"items claimed by more than {required} reviewers: {over}"
    store.close()


# -- 1c. a retry racing its original --------------------------------------------------------------
@pytest.mark.timeout(90)
def test_a_retry_racing_its_original_is_a_duplicate(server_factory, store_url):
    """A client that gave up waiting sends the same submission again while the first is still running:
    one of the two is stored (201), the other answers 200 with its review_id and ``duplicate: true``."""
    pairs, required = 30, 1
    store = open_test_store(store_url, required)
    tokens = {f"p{i:02d}": store.add_reviewer(f"p{i:02d}") for i in range(pairs)}
    store.enqueue(make_items(pairs, prefix="race"))
    base = server_factory(required).start()
    answers: dict[str, list] = {name: [] for name in tokens}
    start = threading.Barrier(2 * pairs, timeout=30)

    def send(name: str, body: dict) -> None:
        with httpx.Client(base_url=base, headers=auth(tokens[name]), timeout=REQUEST_TIMEOUT_S) as client:
            start.wait()
            got = client.post("/api/reviews", json=body)
            answers[name].append((got.status_code, got.json()))

    bodies = {}
    for name, token in tokens.items():
        claimed = httpx.post(f"{base}/api/claim", json={}, headers=auth(token), timeout=REQUEST_TIMEOUT_S).json()
        bodies[name] = review_body(claimed["item"]["item_id"], name, False)
    threads = [threading.Thread(target=send, args=(name, body), daemon=True)
               for name, body in bodies.items() for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    wrong = {}
    for name, got in answers.items():
        statuses = sorted(status for status, _ in got)
        ids = {answer.get("review_id") for _, answer in got}
        if statuses != [200, 201] or len(ids) != 1 or sorted(a.get("duplicate") for _, a in got) != [False, True]:
            wrong[name] = got
    stored = store.reviews()
    assert not wrong, f"{len(wrong)} of {pairs} racing retries were not answered 201 + 200 duplicate: " \
                      f"{list(wrong.values())[:3]}"
    assert len(stored) == pairs and store.check_consistency() == []
    store.close()


# -- 2. SIGKILL in the middle of a burst of writes ------------------------------------------------
@pytest.mark.timeout(120)
def test_sigkill_mid_burst_loses_no_acknowledged_review(server_factory, store_url):
    writers, n_items, required, kill_after = 8, 400, 2, 60
    store = open_test_store(store_url, required)
    tokens = {f"w{i}": store.add_reviewer(f"w{i}") for i in range(writers)}
    store.enqueue(make_items(n_items, prefix="burst"))
    server = server_factory(required)
    base = server.start()

    lock = threading.Lock()
    sent: dict[str, tuple[str, dict]] = {}  # key -> (reviewer, body), for every submission sent
    acked: dict[str, int] = {}  # key -> review_id
    errors: list[str] = []
    stop = threading.Event()

    def writer(name: str, token: str) -> None:
        with httpx.Client(base_url=base, headers=auth(token), timeout=REQUEST_TIMEOUT_S) as client:
            while not stop.is_set():
                try:
                    item = client.post("/api/claim", json={}).json()["item"]
                    if item is None:
                        return
                    body = review_body(item["item_id"], name, False)
                    with lock:
                        sent[body["idempotency_key"]] = (name, body)
                    got = client.post("/api/reviews", json=body)
                except httpx.TransportError:
                    return  # the server died under us: this submission is un-acknowledged
                if got.status_code == 409 and got.json()["error"]["code"] == "item_closed":
                    with lock:  # the claim lost the item's last review to another reviewer (see the claim test)
                        acked[body["idempotency_key"]] = None
                    continue
                if got.status_code != 201:
                    errors.append(f"{name}: {got.status_code} {got.text}")
                    return
                with lock:
                    acked[body["idempotency_key"]] = got.json()["review_id"]

    threads = [threading.Thread(target=writer, args=item, daemon=True) for item in tokens.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 40
    while len(acked) < kill_after and time.monotonic() < deadline and any(t.is_alive() for t in threads):
        time.sleep(0.005)
    assert len(acked) >= kill_after, f"only {len(acked)} acks before the deadline: {errors[:5]}"
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 5)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:5]
    refused = {key for key, review_id in acked.items() if review_id is None}
    acked_at_kill = {key: review_id for key, review_id in acked.items() if review_id is not None}
    unacked = {key: value for key, value in sent.items() if key not in acked_at_kill and key not in refused}

    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url[len("sqlite://"):]) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    base = server.start()  # the same store, after the crash
    check = open_test_store(store_url, required)
    stored = {r["idempotency_key"]: r for r in check.reviews()}
    missing = [key for key in acked_at_kill if key not in stored]
    assert not missing, f"{len(missing)} of {len(acked_at_kill)} acknowledged reviews lost in the kill"
    assert all(stored[key]["review_id"] == review_id for key, review_id in acked_at_kill.items())
    assert set(stored) <= set(sent) - refused  # nothing stored that was never sent, or was refused
    assert check.check_consistency() == []

    # The clients retry what was not acknowledged, with the same keys: stored at most once each.
    retried = Counter()
    for key, (name, body) in unacked.items():
        got = httpx.post(f"{base}/api/reviews", json=body, headers=auth(tokens[name]), timeout=REQUEST_TIMEOUT_S)
        assert got.status_code in (200, 201), (got.status_code, got.text)
        answer = got.json()
        if key in stored:  # committed before the kill but the answer never left: a duplicate now
            assert (got.status_code, answer["duplicate"], answer["review_id"]) == (200, True, stored[key]["review_id"])
        retried[got.status_code] += 1
    final = check.reviews()
    keys = Counter(r["idempotency_key"] for r in final)
    assert max(keys.values(), default=1) == 1
    assert set(keys) == set(acked_at_kill) | set(unacked)
    assert max(Counter((r["item_id"], r["reviewer"]) for r in final).values()) == 1
    assert check.check_consistency() == []
    print(f"\nkilled after {len(acked_at_kill)} acks; {len(unacked)} in flight, retried: {dict(retried)}")
    check.close()
    store.close()


# -- 3. bad input ---------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_bad_input_answers_4xx_json_naming_the_problem(server_factory, store_url):
    store = open_test_store(store_url, 2)
    token = store.add_reviewer("alice")
    short = store.add_reviewer("brief", ttl_s=0.5)
    store.enqueue(make_items(3, prefix="bad"))
    base = server_factory(2).start()
    client = httpx.Client(base_url=base, headers=auth(token), timeout=REQUEST_TIMEOUT_S)
    item = client.post("/api/claim", json={}).json()["item"]["item_id"]

    def error(response: httpx.Response, status: int, code: str) -> str:
        assert response.status_code == status, (response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()["error"]
        assert body["code"] == code, body
        assert body["message"]
        return body["message"]

    good = review_body(item, "alice", False) | {"action": "block", "policy_clause": "hate", "rationale": "slur"}
    unknown = client.post("/api/reviews", json=good | {"item_id": "no-such-item", "idempotency_key": "k1"})
    assert "no-such-item" in error(unknown, 404, "unknown_item")
    label = client.post("/api/reviews", json=good | {"labels": {"spam": 1}, "idempotency_key": "k2"})
    assert "spam" in error(label, 422, "invalid_label")
    rationale = client.post("/api/reviews", json=good | {"action": "restrict", "rationale": "", "idempotency_key": "k3"})
    assert "rationale" in error(rationale, 422, "rationale_required")
    wrong = httpx.post(f"{base}/api/claim", json={}, headers=auth("not-a-token"), timeout=REQUEST_TIMEOUT_S)
    error(wrong, 401, "unauthenticated")
    none = httpx.post(f"{base}/api/claim", json={}, timeout=REQUEST_TIMEOUT_S)
    error(none, 401, "unauthenticated")
    time.sleep(max(0.0, 0.6))  # past the short token's 0.5 s
    expired = httpx.post(f"{base}/api/claim", json={}, headers=auth(short), timeout=REQUEST_TIMEOUT_S)
    error(expired, 401, "token_expired")
    # Nothing of the refused requests was stored; the good one still goes in.
    assert store.reviews() == []
    assert client.post("/api/reviews", json=good | {"idempotency_key": "k4"}).status_code == 201
    client.close()
    store.close()

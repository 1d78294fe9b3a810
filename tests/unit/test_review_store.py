"""The review store's contract, on SQLite and on a real PostgreSQL server (skipped where not installed).

Both backends run the same tests: migrations, idempotent enqueue and submission, claims, the N-review rule
with adjudication of disagreements, hidden golden items, escalation, and errors that name the problem.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tripwire.policy import Taxonomy
from tripwire.review.store import MIGRATIONS, SCHEMA_VERSION, ReviewError, open_store, token_digest
from tripwire.storage.sql import database, redacted_url

CATEGORIES = Taxonomy.load().names


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "review.db")
    return request.getfixturevalue("pg_database")


def result(action="review", category="hate", score=0.45, market="DE"):
    scores = {c: 0.05 for c in CATEGORIES}
    scores[category] = score
    reasons = [{"category": category, "score": score, "threshold": 0.4, "action": action, "ground": "illegal_content"}]
    return {"id": "r", "scores": scores, "flagged": [category],
            "decision": {"action": action, "reasons": reasons if action != "allow" else [],
                         "market": market, "flagged": [category], "policy_version": "p1"},
            "attribution": {category: {"driven_by": "text"}}, "evidence": {}, "modalities": ["text"],
            "model_version": "m1", "policy_version": "p1"}


def item(i, **kwargs):
    return {"item_id": f"item-{i}", "source": "scan", "sample": {"id": f"item-{i}", "text": f"text {i}"},
            "result": result(), "priority": kwargs.pop("priority", 0.0), **kwargs}


def review(item_id, key, action="allow", labels=None, clause=None, rationale=""):
    return {"item_id": item_id, "labels": labels or {}, "action": action, "policy_clause": clause,
            "rationale": rationale, "time_spent_ms": 1200, "idempotency_key": key}


@pytest.fixture
def store(store_url):
    s = open_store(store_url, CATEGORIES, required_reviews=2, golden_every=0)
    yield s
    s.close()


def people(store, *names, role="reviewer"):
    return [store.authenticate(store.add_reviewer(n, role)) for n in names]


def submit(store, who, body):
    return store.submit(who, store.check_submission(body))


def test_migrations_are_recorded_and_reopening_applies_nothing(store, store_url):
    assert store.schema_version() == SCHEMA_VERSION
    again = open_store(store_url, CATEGORIES)
    assert again.schema_version() == SCHEMA_VERSION
    assert len(again._rows("SELECT version FROM schema_version")) == SCHEMA_VERSION
    again.close()


def test_enqueue_is_idempotent_and_keeps_the_result(store):
    assert store.enqueue([item(1), item(2)]) == 2
    assert store.enqueue([item(1), item(3)]) == 1
    stored = store.item("item-1")
    assert stored.result.action == "review" and stored.item.top_category == "hate"
    assert stored.item.market == "DE" and stored.result.model_version == "m1" and stored.status == "pending"


def test_two_agreeing_reviews_resolve_and_a_retry_is_not_a_second_review(store):
    alice, bob = people(store, "alice", "bob")
    store.enqueue([item(1)])
    first = submit(store, alice, review("item-1", "k1", "restrict", {"hate": 1}, "hate", "slur"))
    assert first == {"review_id": first["review_id"], "item_id": "item-1", "item_status": "pending", "duplicate": False}
    retry = submit(store, alice, review("item-1", "k1", "restrict", {"hate": 1}, "hate", "slur"))
    assert retry["duplicate"] and retry["review_id"] == first["review_id"]
    assert submit(store, bob, review("item-1", "k2", "restrict", {"hate": 1}, "hate", "slur"))["item_status"] == "resolved"
    stored = store.item("item-1")
    assert stored.resolved_by == "unanimous" and stored.resolved_labels["hate"] == 1
    assert len(store.reviews("item-1")) == 2 and store.check_consistency() == []


def test_disagreement_goes_to_adjudication_and_an_admin_resolves_it(store):
    alice, bob = people(store, "alice", "bob")
    (root,) = people(store, "root", role="admin")
    store.enqueue([item(1)])
    submit(store, alice, review("item-1", "a", "restrict", {"hate": 1}, "hate", "slur"))
    assert submit(store, bob, review("item-1", "b", "allow"))["item_status"] == "adjudication"
    with pytest.raises(ReviewError) as refused:
        store.claim(alice, "adjudication")
    assert refused.value.status == 403
    view, _ = store.claim(root, "adjudication")
    assert view["item_id"] == "item-1" and {r["reviewer"] for r in view["prior_reviews"]} == {"alice", "bob"}
    with pytest.raises(ReviewError) as closed:  # a reviewer cannot settle it
        submit(store, people(store, "carol")[0], review("item-1", "c", "allow"))
    assert closed.value.code == "item_closed"
    assert submit(store, root, review("item-1", "r", "block", {"hate": 1}, "hate", "repeat"))["item_status"] == "resolved"
    assert store.item("item-1").resolved_by == "adjudication"


def test_claims_hand_out_each_item_to_at_most_the_required_reviewers(store):
    alice, bob, carol = people(store, "alice", "bob", "carol")
    store.enqueue([item(1, priority=0.9), item(2, priority=0.1)])
    assert store.claim(alice)[0]["item_id"] == "item-1"  # the highest priority first
    assert store.claim(alice)[0]["item_id"] == "item-1"  # a reloaded page keeps its item
    assert store.claim(bob)[0]["item_id"] == "item-1"
    assert store.claim(carol)[0]["item_id"] == "item-2"  # item-1 already has its two reviewers
    submit(store, alice, review("item-1", "a1", "allow"))
    assert store.claim(alice)[0]["item_id"] == "item-2"  # never the same item twice


def test_expired_claims_return_to_the_queue(store_url):
    store = open_store(store_url, CATEGORIES, required_reviews=1, claim_ttl_s=0.05, golden_every=0)
    alice, bob = people(store, "alice", "bob")
    store.enqueue([item(1)])
    assert store.claim(alice)[0]["item_id"] == "item-1"
    assert store.claim(bob) is None
    time.sleep(0.1)
    assert store.claim(bob)[0]["item_id"] == "item-1"
    store.close()


def test_filters_skip_and_escalate(store):
    (alice,) = people(store, "alice")
    store.enqueue([item(1), {**item(2), "result": result(category="sexual", market="US")}])
    assert store.claim(alice, category="sexual")[0]["item_id"] == "item-2"
    store.skip(alice, "item-2")
    assert store.claim(alice, market="US") is None  # skipped items do not come back to who skipped them
    assert store.claim(alice, category="hate")[0]["item_id"] == "item-1"
    store.escalate(alice, "item-1", "unsure: satire?")
    escalated = store.item("item-1")
    assert escalated.status == "adjudication" and "satire" in escalated.escalation


def test_hidden_golden_items_are_mixed_in_and_never_resolve(store_url):
    store = open_store(store_url, CATEGORIES, required_reviews=1, golden_every=2)
    (alice,) = people(store, "alice")
    store.enqueue([item(1), item(2), {**item(9), "source": "golden", "golden_labels": {"hate": 1}}])
    first, second = store.claim(alice)[0], None
    submit(store, alice, review(first["item_id"], "1", "allow"))
    second = store.claim(alice)[0]
    assert second["item_id"] == "item-9"  # every second claim is a golden item
    assert "source" not in second and "golden" not in str(second)  # nothing tells it apart
    assert submit(store, alice, review("item-9", "2", "restrict", {"hate": 1}, "hate", "x"))["item_status"] == "golden"
    assert store.claim(alice)[0]["item_id"] != "item-9"
    assert store.counts()["golden"] == 1
    store.close()


@pytest.mark.parametrize("body, code, names", [
    (review("nope", "k"), "unknown_item", "nope"),
    (review("item-1", "k", labels={"spam": 1}), "invalid_label", "spam"),
    (review("item-1", "k", labels={"hate": 2}), "invalid_label", "hate"),
    (review("item-1", "k", action="ban"), "invalid_action", "ban"),
    (review("item-1", "k", action="block", clause="hate"), "rationale_required", "rationale"),
    (review("item-1", "k", action="restrict"), "clause_required", "policy_clause"),
    (review("item-1", "k", action="review", clause="spam"), "invalid_request", "spam"),
    ({**review("item-1", "k"), "time_spent_ms": -1}, "invalid_request", "time_spent_ms"),
    ({**review("item-1", ""), }, "invalid_request", "idempotency_key"),
    (review("item-1", "k", "block", {"hate": 1}, "hate", "x" * 5001), "invalid_request", "rationale: at most 5000"),
])
def test_bad_submissions_are_refused_naming_the_problem(store, body, code, names):
    (alice,) = people(store, "alice")
    store.enqueue([item(1)])
    with pytest.raises(ReviewError) as refused:
        submit(store, alice, body)
    assert refused.value.code == code and names in refused.value.message
    assert 400 <= refused.value.status < 500 and store.reviews() == []


def test_tokens_expire_and_a_new_token_revokes_the_old(store):
    old = store.add_reviewer("alice", ttl_s=60)
    new = store.add_reviewer("alice", ttl_s=60)
    with pytest.raises(ReviewError) as revoked:
        store.authenticate(old)
    assert revoked.value.code == "unauthenticated"
    assert store.authenticate(new).name == "alice"
    brief = store.add_reviewer("bob", ttl_s=0.01)
    time.sleep(0.05)
    with pytest.raises(ReviewError) as expired:
        store.authenticate(brief)
    assert expired.value.code == "token_expired" and expired.value.status == 401


def test_a_bad_reviewer_or_store_url_is_refused():
    with pytest.raises(ReviewError, match="neither a SQLite path"):
        open_store("mysql://x/y", CATEGORIES)
    assert redacted_url("postgresql://tw:secret@db:5432/reviews") == "postgresql://tw@db:5432/reviews"


def test_sqlite_store_is_one_wal_file(tmp_path):
    path = tmp_path / "nested" / "review.db"
    open_store(f"sqlite:///{path}", CATEGORIES).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_idempotency_key_is_bound_to_its_reviewer_item_and_decision(store):
    alice, bob = people(store, "alice", "bob")
    store.enqueue([item(1), item(2)])
    first = submit(store, alice, review("item-1", "k", "allow"))
    # The same key for a block of another item: refused, naming both items; nothing stored for item-2.
    with pytest.raises(ReviewError) as other_item:
        submit(store, alice, review("item-2", "k", "block", {"hate": 1}, "hate", "threat"))
    assert other_item.value.status == 409 and other_item.value.code == "idempotency_conflict"
    assert "'item-1'" in other_item.value.message and "'item-2'" in other_item.value.message
    # The same key, the same item, another decision: refused too.
    for body in (review("item-1", "k", "block", {"hate": 1}, "hate", "threat"), review("item-1", "k", "allow", {"hate": 1}),
                 review("item-1", "k", "review", clause="hate")):
        with pytest.raises(ReviewError) as other_decision:
            submit(store, alice, body)
        assert other_decision.value.code == "idempotency_conflict" and "'item-1'" in other_decision.value.message
    with pytest.raises(ReviewError) as other_reviewer:
        submit(store, bob, review("item-1", "k", "allow"))
    assert other_reviewer.value.status == 409 and other_reviewer.value.code == "idempotency_conflict"
    assert [r["item_id"] for r in store.reviews()] == ["item-1"] and store.reviews("item-2") == []
    # The same request (a retry measures its time again): the first answer, naming the item.
    retry = submit(store, alice, {**review("item-1", "k", "allow"), "time_spent_ms": 99})
    assert retry == {**first, "duplicate": True}
    assert retry["item_id"] == "item-1" and len(store.reviews()) == 1
    # item-2 is still open to a review under a new key.
    assert submit(store, alice, review("item-2", "k2", "block", {"hate": 1}, "hate", "threat"))["item_id"] == "item-2"


def _schema_2_store(url: str) -> None:
    """A store as schema version 2 wrote it (before bound keys, sessions and revocation), with one reviewer,
    one item and one review."""
    db = database(url)
    conn = db.connect()
    postgres = url.startswith("postgresql://")
    with db.write(conn):
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, statements in enumerate(MIGRATIONS[:2], start=1):
            for statement in statements[1 if postgres else 0]:
                conn.execute(statement)
            conn.execute(db.sql("INSERT INTO schema_version (version) VALUES (?)"), (version,))
        now = time.time()
        conn.execute(db.sql("INSERT INTO reviewers (name, role, token_sha256, created_at, expires_at) "
                            "VALUES (?, ?, ?, ?, ?)"), ("alice", "reviewer", token_digest("old-token"), now, now + 3600))
        conn.execute(db.sql("INSERT INTO items (item_id, source, sample, result, required_reviews, status, reviews_done, "
                            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                     ("item-1", "scan", "{}", "{}", 2, "pending", 1, now))
        conn.execute(db.sql("INSERT INTO items (item_id, source, sample, result, required_reviews, status, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)"), ("item-2", "scan", "{}", "{}", 2, "pending", now))
        labels = {c: int(c == "hate") for c in CATEGORIES}
        conn.execute(db.sql("INSERT INTO reviews (idempotency_key, item_id, reviewer, kind, labels, action, policy_clause, "
                            "rationale, decided_at, time_spent_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                     ("old-key", "item-1", "alice", "review", json.dumps(labels), "restrict", "hate", "slur", now, 5))
    conn.close()


def test_a_store_from_before_bound_keys_opens_upgraded_and_binds_its_old_keys(store_url):
    _schema_2_store(store_url)
    store = open_store(store_url, CATEGORIES, required_reviews=2, golden_every=0)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        alice = store.authenticate("old-token")  # tokens issued before the upgrade still work
        old = store.reviews("item-1")[0]
        retry = submit(store, alice, review("item-1", "old-key", "restrict", {"hate": 1}, "hate", "slur"))
        assert retry == {"review_id": old["review_id"], "item_id": "item-1", "item_status": "pending", "duplicate": True}
        with pytest.raises(ReviewError) as conflict:
            submit(store, alice, review("item-2", "old-key", "allow"))
        assert conflict.value.code == "idempotency_conflict" and "'item-1'" in conflict.value.message
        assert store.reviews("item-2") == [] and store.check_consistency() == []
        session, _ = store.open_session("old-token")
        assert store.authenticate(session, sessions_only=True).name == "alice"
    finally:
        store.close()


def test_sign_in_sessions_end_on_sign_out_and_revoke_ends_every_token(store):
    token = store.add_reviewer("alice")
    first, who = store.open_session(token)
    second, _ = store.open_session(token)
    assert who.name == "alice" and first not in (second, token)
    assert store.authenticate(first, sessions_only=True).name == store.authenticate(first).name == "alice"
    with pytest.raises(ReviewError) as not_a_session:
        store.authenticate(token, sessions_only=True)  # the sign-in cookie carries sessions only
    assert not_a_session.value.status == 401
    with pytest.raises(ReviewError):
        store.open_session(first)  # only an issued token signs in
    assert store.end_session(first) and not store.end_session(first)
    with pytest.raises(ReviewError) as ended:
        store.authenticate(first)
    assert ended.value.status == 401 and "signed out" in ended.value.message
    assert store.authenticate(second).name == "alice" and store.authenticate(token).name == "alice"

    assert store.revoke("alice") == 1  # the token and every session of alice's
    for gone in (token, second):
        with pytest.raises(ReviewError) as revoked:
            store.authenticate(gone)
        assert revoked.value.status == 401 and revoked.value.code == "unauthenticated"
    assert "revoked" in revoked.value.message
    with pytest.raises(ReviewError):
        store.open_session(token)
    assert store.authenticate(store.add_reviewer("alice")).name == "alice"  # a new token works again
    with pytest.raises(ReviewError) as unknown:
        store.revoke("nobody")
    assert unknown.value.status == 404 and "'nobody'" in unknown.value.message


def test_a_new_token_ends_the_old_tokens_sessions(store):
    session, _ = store.open_session(store.add_reviewer("alice"))
    store.add_reviewer("alice")
    with pytest.raises(ReviewError):
        store.authenticate(session)

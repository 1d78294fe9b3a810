"""The review store's contract, on SQLite and on a real PostgreSQL server (skipped where not installed).

Both backends run the same tests: migrations, idempotent enqueue and submission, claims, the N-review rule
with adjudication of disagreements, hidden golden items, escalation, and errors that name the problem.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from tripwire.policy import Taxonomy
from tripwire.review.store import SCHEMA_VERSION, ReviewError, open_store, redacted_url

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
    return {"scores": scores, "decision": {"action": action, "reasons": reasons if action != "allow" else [],
                                           "market": market, "flagged": [category], "policy_version": "p1"},
            "attribution": {category: {"driven_by": "text"}}, "model_version": "m1", "policy_version": "p1"}


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
    assert stored["result"]["decision"]["action"] == "review" and stored["top_category"] == "hate"
    assert stored["market"] == "DE" and stored["model_version"] == "m1" and stored["status"] == "pending"


def test_two_agreeing_reviews_resolve_and_a_retry_is_not_a_second_review(store):
    alice, bob = people(store, "alice", "bob")
    store.enqueue([item(1)])
    first = submit(store, alice, review("item-1", "k1", "restrict", {"hate": 1}, "hate", "slur"))
    assert first == {"review_id": first["review_id"], "item_status": "pending", "duplicate": False}
    retry = submit(store, alice, review("item-1", "k1", "restrict", {"hate": 1}, "hate", "slur"))
    assert retry["duplicate"] and retry["review_id"] == first["review_id"]
    assert submit(store, bob, review("item-1", "k2", "restrict", {"hate": 1}, "hate", "slur"))["item_status"] == "resolved"
    stored = store.item("item-1")
    assert stored["resolved_by"] == "unanimous" and stored["resolved_labels"]["hate"] == 1
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
    assert store.item("item-1")["resolved_by"] == "adjudication"


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
    assert escalated["status"] == "adjudication" and "satire" in escalated["escalation"]


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

"""request_id is an idempotency key bound to its request: the same key with another request is refused (409),
from the replica's answer cache and from the decision log that every replica shares, never answered with the
first request's decision (that was a moderation bypass: benign text first, anything later under the same id)."""

from __future__ import annotations

import asyncio

import pytest

from deployments.api import ModerateRequest, request_id_reused
from tripwire.compliance.records import DECISION, decision_body, serving_puid
from tripwire.compliance.writer import LogWriter
from tripwire.compliance.decision_log import DecisionLog
from tripwire.compliance.idempotency import REQUEST_HASH, AnswerCache, RequestIdConflict, logged_answer, request_fingerprint
from tripwire.policy import Taxonomy
from tripwire.moderation.result import ModerationResult

CATEGORIES = Taxonomy.load().names


def fingerprint(**fields) -> str:
    """As the ingress fingerprints a request: every validated field but the key itself."""
    return request_fingerprint(ModerateRequest.model_validate(fields).model_dump(exclude={"request_id"}))


def answer(item_id: str, action: str) -> ModerationResult:
    return ModerationResult.from_json({"id": item_id, "request_id": "k", "scores": {c: 0.1 for c in CATEGORIES}, "flagged": [],
            "decision": {"action": action, "reasons": [], "flagged": [], "policy_version": "p1", "market": None},
            "attribution": {}, "evidence": {}, "modalities": ["text"], "model_version": "m1", "policy_version": "p1"})


def logged_body(item_id: str, action: str, request_hash: str | None) -> dict:
    body = decision_body(answer(item_id, action), source="serving", policy=None, detected_at=1e9, decided_at=1e9,
                         content_hash="a" * 64, content_types=["text"], answer=answer(item_id, action).to_json())
    if request_hash is not None:
        body[REQUEST_HASH] = request_hash
    return body


def test_the_fingerprint_covers_every_field_but_the_key():
    base = fingerprint(text="hello", request_id="k1")
    assert fingerprint(text="hello", request_id="k2") == base  # the key itself is not part of the request
    assert fingerprint(text="hello there", request_id="k1") != base
    for other in ({"market": "DE"}, {"id": "x"}, {"language": "en"}, {"content_type": "post"}, {"image": "aGk="}):
        assert fingerprint(text="hello", request_id="k1", **other) != base, other
    # Bytes moved between fields, and null versus empty, are different requests.
    assert request_fingerprint({"a": "xy", "b": None}) != request_fingerprint({"a": "x", "b": "y"})
    assert request_fingerprint({"a": ""}) != request_fingerprint({"a": None})


def test_the_cache_answers_only_the_same_request():
    cache = AnswerCache(2)
    benign, other = fingerprint(text="hello", request_id="k"), fingerprint(text="kill them all", request_id="k")
    first = answer("1", "allow")
    cache.put("k", benign, first)
    assert cache.get("k", benign) is first
    with pytest.raises(RequestIdConflict, match="'k' was already used with a different request body"):
        cache.get("k", other)
    assert cache.get("unknown", other) is None


def test_the_cache_keeps_the_most_recently_used_answers():
    cache = AnswerCache(2)
    for key in ("a", "b"):
        cache.put(key, key, answer(key, "allow"))
    cache.get("a", "a")
    cache.put("c", "c", answer("c", "allow"))
    assert cache.get("b", "b") is None and cache.get("a", "a") is not None and len(cache) == 2
    off = AnswerCache(0)
    off.put("a", "a", answer("a", "allow"))
    assert len(off) == 0 and off.get("a", "a") is None


def test_a_logged_answer_is_given_back_only_for_the_same_request(tmp_path):
    """What another replica finds in the shared log: its record carries the first request's fingerprint."""
    log = DecisionLog(str(tmp_path / "log.db"))
    benign, other = fingerprint(text="hello", request_id="k"), fingerprint(text="kill them all", request_id="k")
    puid = serving_puid("k")
    log.append([(DECISION, puid, logged_body("1", "allow", benign))])
    record = log.find(DECISION, puid)
    assert logged_answer(record.body, "k", benign)["decision"]["action"] == "allow"
    with pytest.raises(RequestIdConflict):
        logged_answer(record.body, "k", other)
    # A record logged before requests were fingerprinted cannot show it is this request's: refused too.
    log.append([(DECISION, serving_puid("old"), logged_body("2", "allow", None))])
    with pytest.raises(RequestIdConflict):
        logged_answer(log.find(DECISION, serving_puid("old")).body, "old", benign)
    log.close()


def test_concurrent_requests_with_one_key_the_first_logged_wins_and_another_request_loses(tmp_path):
    """Two replicas score the same new key at once (the log is the arbiter): the writer hands the second its
    first record back; the same request gets the first answer, a different one is refused."""
    log = DecisionLog(str(tmp_path / "log.db"))
    writer = LogWriter(log)
    benign, other = fingerprint(text="hello", request_id="k"), fingerprint(text="kill them all", request_id="k")
    puid = serving_puid("k")

    async def race():
        return await asyncio.gather(writer.write(DECISION, puid, logged_body("1", "allow", benign)),
                                    writer.write(DECISION, puid, logged_body("1", "block", other)),
                                    writer.write(DECISION, puid, logged_body("1", "review", benign)))

    first, second, third = asyncio.run(race())
    writer.close()
    assert first.seq == second.seq == third.seq  # one record
    assert logged_answer(first.body, "k", benign)["decision"]["action"] == "allow"
    with pytest.raises(RequestIdConflict):
        logged_answer(second.body, "k", other)
    assert logged_answer(third.body, "k", benign)["decision"]["action"] == "allow"  # the first answer, not its own
    log.close()


def test_a_conflict_is_a_409_naming_the_field():
    response = asyncio.run(request_id_reused(None, RequestIdConflict("order-17")))
    assert response.status_code == 409
    assert response.body == (b'{"error":{"field":"request_id","reason":"request_id_reused","message":"request_id '
                             b"'order-17' was already used with a different request body; use a new request_id "
                             b'for a different request"}}')

"""The decision log's writers without Ray: the serving path's group-commit writer (answers wait for their
batch's commit, never for the log to come back; nothing queued is lost on close), puids, reviewer outcomes
and appeals over a real review store, and a scan's decisions logged from its output."""

from __future__ import annotations

import asyncio
import datetime
import threading

import pytest

from tripwire.compliance.appeals import AppealError, file_appeal
from tripwire.compliance.cases import all_cases
from tripwire.compliance.outcomes import log_outcome, sync_outcomes
from tripwire.compliance.records import (APPEAL, APPEAL_OUTCOME, DECISION, REVIEW_OUTCOME, check_puid, decision_body,
                                         scan_puid, serving_puid)
from tripwire.compliance.writer import LogWriter
from tripwire.compliance.decision_log import DecisionLog
from tripwire.policy import Policy, Taxonomy
from tripwire.review.store import ReviewStore, Submission
from tripwire.moderation.result import ModerationResult

CATEGORIES = Taxonomy.load().names


def result(item_id: str, action: str, category: str = "hate", score: float = 0.9,
           market: str | None = "DE") -> ModerationResult:
    reasons = [] if action == "allow" else [{"category": category, "score": score, "threshold": 0.5, "action": action,
                                             "ground": "illegal_content"}]
    return ModerationResult.from_json({"id": item_id, "scores": {c: (score if c == category else 0.01) for c in CATEGORIES},
            "flagged": [r["category"] for r in reasons],
            "decision": {"action": action, "reasons": reasons, "flagged": [r["category"] for r in reasons],
                         "policy_version": "p1", "market": market},
            "attribution": {category: {"driven_by": "text", "contributions": {"text": 0.8}}}, "evidence": {},
            "modalities": ["text"], "model_version": "m1", "policy_version": "p1"})


def body(item_id: str, action: str, **kwargs) -> dict:
    return decision_body(result(item_id, action, **kwargs), source="serving", policy=Policy.load(), detected_at=1e9,
                         decided_at=1e9 + 0.05, content_hash="a" * 64, content_types=["text"], language="en",
                         answer=result(item_id, action, **kwargs).to_json())


@pytest.fixture
def log(tmp_path):
    decision_log = DecisionLog(str(tmp_path / "log.db"))
    yield decision_log
    decision_log.close()


def test_puids_follow_the_transparency_database_rule():
    assert serving_puid("order-17_a") == "srv-order-17_a" and serving_puid("order-17_a") == serving_puid("order-17_a")
    assert serving_puid() != serving_puid()
    for puid in (serving_puid("has spaces/and:colons"), serving_puid("x" * 1000), scan_puid("s3://b/scan", "id with space")):
        assert check_puid(puid) == puid
    assert scan_puid("runs/scan/", "a") == scan_puid("runs/scan", "a") != scan_puid("runs/other", "a")
    with pytest.raises(ValueError, match="puid"):
        check_puid("bad puid")


def test_a_decision_body_records_thresholds_versions_and_the_answer():
    logged = body("i1", "restrict")
    assert logged["thresholds"]["hate"]["restrict"] == Policy.load().thresholds("DE")["hate"]["restrict"]
    assert logged["thresholds"]["hate"] != Policy.load().thresholds(None)["hate"]  # DE's override applied
    assert logged["model_version"] == "m1" and logged["policy_version"] == "p1" and logged["action"] == "restrict"
    assert logged["automated_decision"] and body("i2", "review")["automated_decision"] is False
    assert "content" not in logged and logged["answer"]["id"] == "i1"


def test_the_writer_commits_concurrent_records_together_and_answers_with_them(log):
    writer = LogWriter(log, batch_size=64)

    async def many():
        return await asyncio.gather(*(writer.write(DECISION, f"p-{i}", body(f"i{i}", "allow")) for i in range(50)))

    records = asyncio.run(many())
    writer.close()
    assert all(r is not None for r in records) and sorted(r.puid for r in records) == sorted(f"p-{i}" for i in range(50))
    assert log.verify().ok and log.head()[0] == 50
    assert writer.written == 50 and writer.dropped == writer.unconfirmed == 0


def test_a_repeated_puid_gets_the_first_record_back(log):
    writer = LogWriter(log)

    async def twice():
        first = await writer.write(DECISION, "p-1", body("i1", "block"))
        second = await writer.write(DECISION, "p-1", body("i1", "allow"))
        return first, second

    first, second = asyncio.run(twice())
    writer.close()
    assert second.seq == first.seq and second.body["action"] == "block" and log.head()[0] == 1


class Unavailable(DecisionLog):
    """The log's database down until ``up`` is set (as an outage looks to the writer: append raises)."""

    def __init__(self, url):
        super().__init__(url)
        self.up = threading.Event()

    def append(self, entries):
        if not self.up.is_set():
            raise OSError("database unavailable")
        return super().append(entries)


def test_an_outage_delays_the_log_but_never_the_answer_and_loses_nothing(tmp_path):
    log = Unavailable(str(tmp_path / "log.db"))
    outcomes = []
    writer = LogWriter(log, wait_s=0.2, on_outcome=outcomes.append)
    assert asyncio.run(writer.write(DECISION, "p-1", body("i1", "allow"))) is None  # answered unconfirmed
    assert writer.unconfirmed == 1 and writer.retries >= 1 and outcomes == ["unconfirmed"]
    log.up.set()
    writer.close()
    assert [r.puid for r in log.records()] == ["p-1"] and log.verify().ok
    writer = LogWriter(log, on_outcome=outcomes.append)
    assert asyncio.run(writer.write(DECISION, "p-2", body("i2", "allow"))).puid == "p-2" and outcomes[-1] == "logged"
    writer.close()


def test_back_pressure_then_drop_when_the_log_cannot_keep_up(tmp_path):
    log = Unavailable(str(tmp_path / "log.db"))
    writer = LogWriter(log, max_pending=2, wait_s=0.1)
    assert writer.write_nowait(DECISION, "p-1", body("i1", "allow"))  # taken by the (blocked) writer thread
    for i in (2, 3, 4):
        writer.write_nowait(DECISION, f"p-{i}", body(f"i{i}", "allow"))
    assert asyncio.run(writer.write(DECISION, "p-9", body("i9", "allow"))) is None
    assert writer.dropped >= 1
    log.up.set()
    writer.close()
    assert log.verify().ok and writer.written + writer.dropped == 5


def test_close_writes_everything_still_queued(log):
    writer = LogWriter(log)
    for i in range(300):
        writer.write_nowait(DECISION, f"p-{i}", body(f"i{i}", "allow"))
    writer.close()
    assert log.head()[0] == 300 and log.verify().ok


def reviewer_store(tmp_path) -> ReviewStore:
    return ReviewStore(str(tmp_path / "log.db"), CATEGORIES, required_reviews=1, golden_every=0)


def review(store, name, item_id, action, labels):
    reviewer = store.authenticate(store.add_reviewer(name, "admin"))
    store.claim(reviewer)
    return store.submit(reviewer, Submission(item_id=item_id, labels={c: int(c in labels) for c in CATEGORIES},
                                             action=action, policy_clause=None, rationale="checked", time_spent_ms=900,
                                             idempotency_key=f"{name}-{item_id}"))


def test_reviewer_outcomes_and_appeals_are_logged_once_and_join_their_decision(tmp_path, log):
    store = reviewer_store(tmp_path)
    log.append([(DECISION, "srv-a", body("a", "review")), (DECISION, "srv-b", body("b", "block")),
                (DECISION, "srv-c", body("c", "allow"))])
    store.enqueue([{"item_id": "a", "source": "serving", "sample": {"id": "a", "text": "x"},
                    "result": result("a", "review").replace(puid="srv-a").to_json()}])
    assert review(store, "r1", "a", "restrict", {"hate"})["item_status"] == "resolved"
    assert log_outcome(store, log, "a") and not log_outcome(store, log, "a")  # once
    outcome = log.find(REVIEW_OUTCOME, "srv-a").body
    assert outcome["action"] == "restrict" and outcome["confirmed"] is True and outcome["overturned"] is False

    with pytest.raises(AppealError) as allowed:
        file_appeal(store, log, "srv-c", "please")
    assert allowed.value.status == 409
    with pytest.raises(AppealError) as unknown:
        file_appeal(store, log, "srv-zzz", "please")
    assert unknown.value.status == 404
    filed = file_appeal(store, log, "srv-b", "this was satire", {"id": "b", "text": "x"})
    assert file_appeal(store, log, "srv-b", "this was satire ") == {**filed, "duplicate": True}  # a retry
    with pytest.raises(AppealError) as again:  # another statement for the same decision is not a retry
        file_appeal(store, log, "srv-b", "again")
    assert again.value.status == 409 and again.value.code == "appeal_conflict" and filed["item_id"] in str(again.value)
    assert log.find(APPEAL, "srv-b").body["statement"] == "this was satire"
    item = store.item(filed["item_id"])
    assert item.source == "appeal" and item.result.action == "block"
    review(store, "r2", filed["item_id"], "allow", set())
    assert sync_outcomes(store, log) == 1 and sync_outcomes(store, log) == 0
    appeal = log.find(APPEAL_OUTCOME, "srv-b").body
    assert appeal["outcome"] == "overturned" and appeal["enforcement_reversed"]
    # The review-band decision, now restricted by people, can be appealed too (and is upheld here).
    second = file_appeal(store, log, "srv-a", "not hate")
    review(store, "r3", second["item_id"], "restrict", {"hate"})
    sync_outcomes(store, log)
    assert log.find(APPEAL_OUTCOME, "srv-a").body["outcome"] == "upheld"
    cases = all_cases(log.records())
    assert cases["srv-a"].human_decided and cases["srv-a"].action == "restrict" and cases["srv-a"].automated_decision == "partially"
    assert cases["srv-b"].reversed and not cases["srv-c"].enforced and log.verify().ok
    store.close()


def _scan_output(tmp_path) -> tuple[str, datetime.datetime]:
    """A scan's output written as the scan writes it (results partitioned by action, its summary)."""
    import json

    from tripwire.scan.output import ScanWriter, result_rows, write_summary

    manifest = tmp_path / "catalogue.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"c{i}", "text": f"item {i}", "meta": {"language": "de"}}) + "\n"
                                for i in range(6)))
    out = str(tmp_path / "scan")
    writer = ScanWriter(out, CATEGORIES, 100)
    at = datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc)
    actions = ["allow", "review", "restrict", "block", "allow", "restrict"]
    writer.add(result_rows([result(f"c{i}", a) for i, a in enumerate(actions)], at))
    writer.flush()
    write_summary(out, {"manifest": str(manifest)})
    return out, at


@pytest.mark.parametrize("store", ["database", "parquet"])
def test_a_scans_enforcement_decisions_are_logged_from_its_output(tmp_path, store):
    from tripwire.compliance.logs import open_log
    from tripwire.compliance.scan_log import log_scan
    from tripwire.data.sample import content_digest

    out, at = _scan_output(tmp_path)
    log = open_log(str(tmp_path / "log.db") if store == "database" else f"file://{tmp_path / 'scan-log'}")
    assert log_scan(out, log, Policy.load()) == 4 and log_scan(out, log) == 0  # allowed left out; logged once
    logged = {r.body["item_id"]: r for r in log.records()}
    assert set(logged) == {"c1", "c2", "c3", "c5"} and log.verify().ok
    c2 = logged["c2"]
    assert c2.puid == scan_puid(out, "c2") and c2.body["source"] == "scan" and c2.body["language"] == "de"
    assert c2.body["content_hash"] == content_digest("item 2", {}) and c2.body["detected_at"] == at.timestamp()
    log.close()


def test_statements_read_a_scans_parquet_log_with_the_database_log(tmp_path):
    from tripwire.compliance.dsa import DsaMapping
    from tripwire.compliance.logs import open_log
    from tripwire.compliance.scan_log import log_scan
    from tripwire.compliance.statement_export import export_statements

    out, at = _scan_output(tmp_path)
    scan_log, db = f"file://{tmp_path / 'scan-log'}", str(tmp_path / "log.db")
    log_scan(out, open_log(scan_log), Policy.load())
    DecisionLog(db).close()
    day = at.timestamp()
    summary = export_statements(db, day, day + 86400, tmp_path / "sor", DsaMapping.load(), [scan_log])
    assert summary["exported"] == 3 and summary["scan_log_heads"][scan_log.rstrip("/")]["seq"] == 4
    with pytest.raises(ValueError, match="database log"):
        export_statements(scan_log, day, day + 86400, tmp_path / "sor2", DsaMapping.load())


def test_a_body_the_log_cannot_hash_is_rejected_alone(log):
    outcomes = []
    writer = LogWriter(log, on_outcome=outcomes.append)

    async def mixed():
        bad = dict(body("i2", "allow"), scores={"hate": float("nan")})
        return await asyncio.gather(writer.write(DECISION, "p-1", body("i1", "allow")),
                                    writer.write(DECISION, "p-2", bad),
                                    writer.write(DECISION, "p-3", body("i3", "allow")))

    first, bad, third = asyncio.run(mixed())
    writer.close()
    assert bad is None and first is not None and third is not None and writer.rejected == 1
    assert sorted(outcomes) == ["logged", "logged", "rejected"]
    assert [r.puid for r in log.records()] == ["p-1", "p-3"] and log.verify().ok

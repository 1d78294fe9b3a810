"""The decision log's hash chain, on SQLite and a real PostgreSQL server: verify passes on an untouched log
and names the first bad record after an edit, a deletion, a swap or an insertion made behind its back (plain
SQL, as someone with database access would); concurrent appenders keep one chain; a (kind, puid) is
logged once."""

from __future__ import annotations

import threading

import pytest

from tripwire.compliance.decision_log import GENESIS, DecisionLog, canonical, record_hash, verify


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def log(request, tmp_path):
    url = str(tmp_path / "log.db") if request.param == "sqlite" else request.getfixturevalue("pg_database")
    decision_log = DecisionLog(url)
    decision_log.append([("decision", f"p-{i}", {"action": "restrict", "scores": {"hate": 0.5 + i / 100}})
                         for i in range(1, 7)])
    yield decision_log
    decision_log.close()


def sql(log, statement, params=()):
    with log.db.write(log.conn):
        log.conn.execute(log.db.sql(statement), params)


def test_an_untouched_log_verifies_and_its_head_is_the_last_hash(log):
    result = log.verify()
    assert result.ok and result.checked == 6 and result.head == log.head()
    records = list(log.records())
    assert records[0].prev_hash == GENESIS and all(b.prev_hash == a.hash for a, b in zip(records, records[1:]))


def test_an_edited_record_is_named(log):
    sql(log, "UPDATE decision_log SET body = ? WHERE seq = 3", (canonical({"action": "allow", "scores": {}}).decode(),))
    result = log.verify()
    assert not result.ok and result.first_bad == 3 and "edited" in result.reason and result.checked == 2


def test_a_deleted_record_is_named(log):
    sql(log, "DELETE FROM decision_log WHERE seq = 4")
    result = log.verify()
    assert not result.ok and result.first_bad == 5 and "missing" in result.reason


def test_two_swapped_records_are_named(log):
    rows = {r.seq: r for r in log.records()}
    for seq, other in ((2, 3), (3, 2)):
        r = rows[other]
        sql(log, "UPDATE decision_log SET kind = ?, puid = ?, body = ?, logged_at = ?, prev_hash = ?, hash = ? "
                 "WHERE seq = ?", (r.kind, r.puid + "-swap", canonical(r.body).decode(), r.logged_at, r.prev_hash,
                                   r.hash, seq))
    result = log.verify()
    assert not result.ok and result.first_bad == 2 and "prev_hash" in result.reason


def test_an_inserted_record_is_named_even_with_a_fresh_hash(log):
    rows = list(log.records())
    # Renumber the tail to make room, and forge a record whose own hash is right: the chain still breaks.
    sql(log, "UPDATE decision_log SET seq = seq + 100 WHERE seq > 3")
    sql(log, "UPDATE decision_log SET seq = seq - 99 WHERE seq > 100")
    forged = record_hash(4, "decision", "forged", {"action": "allow"}, 1.0, rows[2].hash)
    sql(log, "INSERT INTO decision_log (seq, kind, puid, body, logged_at, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (4, "decision", "forged", canonical({"action": "allow"}).decode(), 1.0, rows[2].hash, forged))
    result = log.verify()
    assert not result.ok and result.first_bad == 5 and "prev_hash" in result.reason


def test_records_dropped_from_the_end_need_the_published_head(log):
    head = log.head()
    sql(log, "DELETE FROM decision_log WHERE seq >= 5")
    assert log.verify().ok  # a chain cannot show its own truncation
    result = log.verify(published_head=head)
    assert not result.ok and "published head" in result.reason


def test_a_kind_and_puid_is_logged_once(log):
    [again] = log.append([("decision", "p-2", {"action": "block"})])
    assert again.seq == 2 and again.body["action"] == "restrict" and log.head()[0] == 6
    [outcome] = log.append([("review_outcome", "p-2", {"outcome": "upheld"})])
    assert outcome.seq == 7 and log.verify().ok


def test_concurrent_appenders_keep_one_chain(log):
    def append(worker):
        for i in range(10):
            log.append([("decision", f"w{worker}-{i}", {"worker": worker, "i": i})])

    threads = [threading.Thread(target=append, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    result = log.verify()
    assert result.ok and result.checked == 6 + 60


def test_verify_over_plain_records_reports_order_problems():
    assert verify([]).ok and verify([]).head == (0, GENESIS)


KEY = b"test-signing-key"


def test_find_returns_the_logged_record_or_none(log):
    assert log.find("decision", "p-3").body["scores"] == {"hate": 0.53}
    assert log.find("decision", "p-99") is None and log.find("appeal", "p-3") is None


def test_a_signed_checkpoint_catches_a_chain_rewritten_after_it(log):
    checkpoint = log.checkpoint(KEY)
    assert checkpoint.seq == 6 and log.verify(key=KEY).ok
    # Rewrite record 4 and re-hash everything after it: the chain alone is consistent again...
    records = list(log.records())
    sql(log, "DELETE FROM decision_log WHERE seq >= 4")
    previous = records[2].hash
    for record in records[3:]:
        body = dict(record.body, action="allow") if record.seq == 4 else record.body
        digest = record_hash(record.seq, record.kind, record.puid, body, record.logged_at, previous)
        sql(log, "INSERT INTO decision_log (seq, kind, puid, body, logged_at, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.seq, record.kind, record.puid, canonical(body).decode(), record.logged_at, previous, digest))
        previous = digest
    # ...but not with the checkpoint it no longer matches.
    result = log.verify(key=KEY)
    assert not result.ok and result.first_bad == 6 and "checkpoint" in result.reason
    # A checkpoint forged without the key is caught too.
    sql(log, "UPDATE decision_log_checkpoints SET hash = ? WHERE seq = 6", (previous,))
    result = log.verify(key=KEY)
    assert not result.ok and "signature" in result.reason


def test_retention_prunes_up_to_a_checkpoint_and_the_rest_still_verifies(log):
    with pytest.raises(ValueError, match="checkpoint"):
        log.prune(before=float("inf"))
    records = list(log.records())
    log.checkpoint(KEY)  # at seq 6
    log.append([("decision", "p-7", {"action": "block"})])
    deleted = log.prune(before=records[-1].logged_at + 1e-6)
    assert deleted == 6 and [r.seq for r in log.records()] == [7]
    result = log.verify(key=KEY)
    assert result.ok and result.checked == 1 and result.head == log.head()
    log.append([("decision", "p-8", {"action": "allow"})])
    assert log.verify(key=KEY).ok and log.head()[0] == 8
    # Editing the anchor (to hide the pruned span's real end) breaks the first remaining record's link.
    sql(log, "UPDATE decision_log_anchor SET hash = ? WHERE id = 1", ("f" * 64,))
    assert not log.verify().ok


@pytest.mark.parametrize("body", [{}, {"a": [1, 2.5, None], "é": "ünïcode", "n": {"z": 1, "a": True}}, {"x": 1e-300}])
def test_the_append_paths_hash_equals_the_verifiers(body):
    from tripwire.compliance.decision_log import hash_of_text

    for seq, kind, puid, at in ((1, "decision", "p-1", 1764547200.123456), (99, "appeal", "srv-x_y", 0.0)):
        assert hash_of_text(seq, kind, puid, canonical(body), at, GENESIS) == record_hash(seq, kind, puid, body, at, GENESIS)


def test_a_batch_naming_one_puid_twice_logs_it_once(log):
    records = log.append([("decision", "dup", {"n": 1}), ("decision", "dup", {"n": 2}), ("appeal", "dup", {"n": 3})])
    assert records[0] == records[1] and records[1].body == {"n": 1} and records[2].kind == "appeal"
    assert log.head()[0] == 8 and log.verify().ok

"""The decision log's hash chain, on SQLite and a real PostgreSQL server: verify passes on an untouched log
and names the first bad record after an edit, a deletion, a swap or an insertion made behind its back (plain
SQL, as someone with database access would); concurrent appenders keep one chain; a (kind, puid) is
logged once."""

from __future__ import annotations

import threading

import pytest

from tripwire.decision_log import GENESIS, DecisionLog, canonical, record_hash, verify


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

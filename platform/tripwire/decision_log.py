"""A tamper-evident, append-only decision log: a hash chain over canonical JSON records.

Each record carries a sequence number, its kind (``decision``, ``review_outcome``, ``appeal``, ...), the
platform-unique id it concerns (``puid``), its body, the time it was logged, the hash of the record before
it (``prev_hash``; the first one's is :data:`GENESIS`) and its own hash: sha256 over all of those. Editing,
dropping, reordering or inserting a record therefore breaks the chain at that record, and
:func:`verify` names the first bad one. Publishing the head (``seq``, ``hash``) somewhere the log's writers
cannot edit pins everything before it.

The log lives in the review store's database (SQLite or PostgreSQL, :func:`tripwire.review.store.database`).
Appends are serialised (SQLite's write transaction; a PostgreSQL advisory lock), so several writers keep one
chain. A ``(kind, puid)`` pair is logged once: appending it again returns the record already there.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

from tripwire.review.store import _Postgres, database

GENESIS = "0" * 64
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS decision_log (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, puid TEXT NOT NULL, "
    "body TEXT NOT NULL, logged_at DOUBLE PRECISION NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS decision_log_once ON decision_log (kind, puid)",
]
APPEND_LOCK = 7243  # PostgreSQL advisory lock id: one appender at a time across processes
READ_CHUNK = 1000


def canonical(value: Any) -> bytes:
    """The bytes a record's hash covers: JSON with sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def record_hash(seq: int, kind: str, puid: str, body: Mapping[str, Any], logged_at: float, prev_hash: str) -> str:
    return hashlib.sha256(canonical({"seq": seq, "kind": kind, "puid": puid, "body": body, "logged_at": logged_at,
                                     "prev_hash": prev_hash})).hexdigest()


@dataclass(frozen=True)
class LogRecord:
    seq: int
    kind: str
    puid: str
    body: dict[str, Any]
    logged_at: float
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` found: ``ok``, how many records it checked, and the first bad one with why."""

    ok: bool
    checked: int
    head: tuple[int, str]
    first_bad: int | None = None
    reason: str | None = None


def verify(records: Iterable[LogRecord], published_head: tuple[int, str] | None = None) -> Verification:
    """Walks the chain from the start; stops at the first record that does not follow from the one before.

    ``published_head`` (a ``(seq, hash)`` published earlier) also catches records dropped from the end,
    which no chain can show by itself: the record at that ``seq`` must exist and have that hash.
    """
    expected, previous, checked = 1, GENESIS, 0
    for record in records:
        if published_head and record.seq == published_head[0] and record.hash != published_head[1]:
            return Verification(False, checked, (expected - 1, previous), record.seq,
                                "its hash differs from the published head's")
        if record.seq != expected:
            what = "missing" if record.seq > expected else "out of order or repeated"
            return Verification(False, checked, (expected - 1, previous), record.seq,
                                f"expected seq {expected}, found {record.seq}: record(s) {what}")
        if record.prev_hash != previous:
            return Verification(False, checked, (expected - 1, previous), record.seq,
                                "prev_hash is not the previous record's hash: a record before it was removed, "
                                "inserted or reordered")
        if record_hash(record.seq, record.kind, record.puid, record.body, record.logged_at,
                       record.prev_hash) != record.hash:
            return Verification(False, checked, (expected - 1, previous), record.seq,
                                "its content does not match its hash: the record was edited")
        expected, previous, checked = expected + 1, record.hash, checked + 1
    if published_head and published_head[0] > expected - 1:
        return Verification(False, checked, (expected - 1, previous), expected,
                            f"the log ends at seq {expected - 1}, before the published head {published_head[0]}: "
                            "records were dropped from the end")
    return Verification(True, checked, (expected - 1, previous))


class DecisionLog:
    """The log in the database at ``url`` (created on first use). Connections are per thread."""

    def __init__(self, url: str):
        self.url = url
        self.db = database(url)
        self._local = threading.local()
        with self.db.write(self.conn):
            for statement in SCHEMA:
                self.conn.execute(statement)

    @property
    def conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.db.connect()
        return conn

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.conn.execute(self.db.sql(statement), tuple(params)).fetchall()

    def _run(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(self.db.sql(statement), tuple(params))

    def append(self, entries: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[LogRecord]:
        """Appends ``(kind, puid, body)`` entries in order, in one transaction; returns their records (the
        existing record for a ``(kind, puid)`` already logged)."""
        out = []
        with self.db.write(self.conn):
            if isinstance(self.db, _Postgres):
                self._rows("SELECT pg_advisory_xact_lock(?)", (APPEND_LOCK,))
            head = self._rows("SELECT seq, hash FROM decision_log ORDER BY seq DESC LIMIT 1")
            seq, previous = (int(head[0][0]), head[0][1]) if head else (0, GENESIS)
            for kind, puid, body in entries:
                existing = self._rows(f"SELECT {self._columns} FROM decision_log WHERE kind = ? AND puid = ?",
                                      (kind, puid))
                if existing:
                    out.append(self._record(existing[0]))
                    continue
                body = json.loads(canonical(body))  # exactly what is hashed (tuples -> lists, floats as JSON)
                seq, logged_at = seq + 1, time.time()
                digest = record_hash(seq, kind, puid, body, logged_at, previous)
                self._run("INSERT INTO decision_log (seq, kind, puid, body, logged_at, prev_hash, hash) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, kind, puid, canonical(body).decode(), logged_at,
                                                           previous, digest))
                out.append(LogRecord(seq, kind, puid, body, logged_at, previous, digest))
                previous = digest
        return out

    _columns = "seq, kind, puid, body, logged_at, prev_hash, hash"

    @staticmethod
    def _record(row: tuple) -> LogRecord:
        seq, kind, puid, body, logged_at, prev_hash, digest = row
        return LogRecord(int(seq), kind, puid, json.loads(body), float(logged_at), prev_hash, digest)

    def records(self, start: int = 1) -> Iterator[LogRecord]:
        """Every record from ``start`` in ``seq`` order, read ``READ_CHUNK`` at a time (memory stays flat)."""
        after = start - 1
        while True:
            rows = self._rows(f"SELECT {self._columns} FROM decision_log WHERE seq > ? ORDER BY seq LIMIT ?",
                              (after, READ_CHUNK))
            for row in rows:
                yield self._record(row)
            if len(rows) < READ_CHUNK:
                return
            after = int(rows[-1][0])

    def head(self) -> tuple[int, str]:
        rows = self._rows("SELECT seq, hash FROM decision_log ORDER BY seq DESC LIMIT 1")
        return (int(rows[0][0]), rows[0][1]) if rows else (0, GENESIS)

    def verify(self, published_head: tuple[int, str] | None = None) -> Verification:
        return verify(self.records(), published_head)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local = threading.local()

"""A tamper-evident, append-only decision log: a hash chain over canonical JSON records.

Each record carries a sequence number, its kind (``decision``, ``review_outcome``, ``appeal``, ...), the
platform-unique id it concerns (``puid``), its body, the time it was logged, the hash of the record before
it (``prev_hash``; the first one's is :data:`GENESIS`) and its own hash: sha256 over all of those. Editing,
dropping, reordering or inserting a record therefore breaks the chain at that record, and
:func:`verify` names the first bad one. Publishing the head (``seq``, ``hash``) somewhere the log's writers
cannot edit pins everything before it.

The log lives in the review store's database (SQLite or PostgreSQL, :func:`tripwire.storage.sql.database`).
Appends are serialised (SQLite's write transaction; a PostgreSQL advisory lock), so several writers keep one
chain. A ``(kind, puid)`` pair is logged once: appending it again returns the record already there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

from tripwire.storage.sql import Tables

GENESIS = "0" * 64
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS decision_log (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, puid TEXT NOT NULL, "
    "body TEXT NOT NULL, logged_at DOUBLE PRECISION NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS decision_log_once ON decision_log (kind, puid)",
    # Signed heads: each pins every record up to its seq (HMAC-SHA256 with a key the writers' readers hold).
    "CREATE TABLE IF NOT EXISTS decision_log_checkpoints (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, "
    "at DOUBLE PRECISION NOT NULL, signature TEXT NOT NULL)",
    # After retention pruned the log's start: the checkpoint the remaining chain continues from.
    "CREATE TABLE IF NOT EXISTS decision_log_anchor (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
    "hash TEXT NOT NULL)",
]
APPEND_LOCK = 7243  # PostgreSQL advisory lock id: one appender at a time across processes
READ_CHUNK = 1000


def canonical(value: Any) -> bytes:
    """The bytes a record's hash covers: JSON with sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def record_hash(seq: int, kind: str, puid: str, body: Mapping[str, Any], logged_at: float, prev_hash: str) -> str:
    return hashlib.sha256(canonical({"seq": seq, "kind": kind, "puid": puid, "body": body, "logged_at": logged_at,
                                     "prev_hash": prev_hash})).hexdigest()


def hash_of_text(seq: int, kind: str, puid: str, body_text: bytes, logged_at: float, prev_hash: str) -> str:
    """:func:`record_hash` from the body's canonical bytes, without serialising the body again (the keys in
    :func:`canonical`'s sorted order); a unit test holds the two equal."""
    def value(v: Any) -> bytes:
        return canonical(v)

    return hashlib.sha256(b'{"body":' + body_text + b',"kind":' + value(kind) + b',"logged_at":' + value(logged_at)
                          + b',"prev_hash":' + value(prev_hash) + b',"puid":' + value(puid) + b',"seq":' + value(seq)
                          + b"}").hexdigest()


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
class Checkpoint:
    """A signed head: the record ``seq`` had hash ``hash`` at time ``at`` (HMAC-SHA256 ``signature``)."""

    seq: int
    hash: str
    at: float
    signature: str


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` found: ``ok``, how many records it checked, and the first bad one with why."""

    ok: bool
    checked: int
    head: tuple[int, str]
    first_bad: int | None = None
    reason: str | None = None


def verify(records: Iterable[LogRecord], published_head: tuple[int, str] | None = None,
           start: tuple[int, str] = (0, GENESIS)) -> Verification:
    """Walks the chain from ``start`` (the record before the first; retention moves it); stops at the first
    record that does not follow from the one before.

    ``published_head`` (a ``(seq, hash)`` published earlier) also catches records dropped from the end,
    which no chain can show by itself: the record at that ``seq`` must exist and have that hash.
    """
    expected, previous, checked = start[0] + 1, start[1], 0
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


class DecisionLog(Tables):
    """The log in the database at ``url`` (created on first use). Connections are per thread."""

    schema = SCHEMA

    def append(self, entries: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[LogRecord]:
        """Appends ``(kind, puid, body)`` entries in order, in one transaction; returns their records (the
        existing record for a ``(kind, puid)`` already logged, or earlier in ``entries``)."""
        # Serialised before the lock is taken: the lock is held only for the lookups and the inserts.
        texts = [canonical(body) for _, _, body in entries]
        out: list[LogRecord] = []
        with self.db.write(self.conn):
            if self.db.kind == "postgresql":
                self._rows("SELECT pg_advisory_xact_lock(?)", (APPEND_LOCK,))
            seq, previous = self.head()
            logged = self._logged({puid for _, puid, _ in entries})
            rows = []
            for (kind, puid, _), text in zip(entries, texts):
                if (kind, puid) in logged:
                    out.append(logged[(kind, puid)])
                    continue
                seq, logged_at = seq + 1, time.time()
                digest = hash_of_text(seq, kind, puid, text, logged_at, previous)
                rows.append((seq, kind, puid, text.decode(), logged_at, previous, digest))
                # The body as it will read back: exactly what is hashed (tuples -> lists, floats as JSON).
                record = LogRecord(seq, kind, puid, json.loads(text), logged_at, previous, digest)
                logged[(kind, puid)] = record
                out.append(record)
                previous = digest
            if rows:
                cursor = self.conn.cursor()  # (psycopg's connections have no executemany; cursors of both do)
                cursor.executemany(self.db.sql("INSERT INTO decision_log (seq, kind, puid, body, logged_at, prev_hash, "
                                               "hash) VALUES (?, ?, ?, ?, ?, ?, ?)"), rows)
                cursor.close()
        return out

    def _logged(self, puids: set[str], chunk: int = 500) -> dict[tuple[str, str], LogRecord]:
        """The records already logged for any of ``puids``, by ``(kind, puid)``."""
        found, ordered = {}, sorted(puids)
        for start in range(0, len(ordered), chunk):
            part = ordered[start:start + chunk]
            for row in self._rows(f"SELECT {self._columns} FROM decision_log WHERE puid IN "
                                  f"({', '.join('?' for _ in part)})", part):
                record = self._record(row)
                found[(record.kind, record.puid)] = record
        return found

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

    def find(self, kind: str, puid: str) -> LogRecord | None:
        """The record of ``(kind, puid)``, if logged (an indexed lookup)."""
        rows = self._rows(f"SELECT {self._columns} FROM decision_log WHERE kind = ? AND puid = ?", (kind, puid))
        return self._record(rows[0]) if rows else None

    def head(self) -> tuple[int, str]:
        """The last record's ``(seq, hash)`` (the retention anchor's when every record was pruned)."""
        rows = self._rows("SELECT seq, hash FROM decision_log ORDER BY seq DESC LIMIT 1")
        if rows:
            return int(rows[0][0]), rows[0][1]
        anchor = self._rows("SELECT seq, hash FROM decision_log_anchor WHERE id = 1")
        return (int(anchor[0][0]), anchor[0][1]) if anchor else (0, GENESIS)

    def verify(self, published_head: tuple[int, str] | None = None, key: bytes | None = None) -> Verification:
        """The chain from its anchor (or the start), then every stored checkpoint: the record at its seq has
        its hash and, given the ``key``, its signature is the key's."""
        anchor = self.anchor()
        if anchor is not None and key is not None and not self._signed(anchor, key):
            return Verification(False, 0, (anchor.seq, anchor.hash), anchor.seq + 1,
                                "the retention anchor's signature is not the key's: the log's start was replaced")
        start = (anchor.seq, anchor.hash) if anchor is not None else (0, GENESIS)
        result = verify(self.records(start[0] + 1), published_head, start)
        if not result.ok:
            return result
        for checkpoint in self.checkpoints():
            if checkpoint.seq > result.head[0]:
                return Verification(False, result.checked, result.head, result.head[0] + 1,
                                    f"checkpoint {checkpoint.seq} is past the log's end: records were dropped from the end")
            record = self._rows(f"SELECT {self._columns} FROM decision_log WHERE seq = ?", (checkpoint.seq,))
            if record and self._record(record[0]).hash != checkpoint.hash:
                return Verification(False, result.checked, result.head, checkpoint.seq,
                                    "its hash differs from the checkpoint's: the chain was rewritten from here on")
            if key is not None and not self._signed(checkpoint, key):
                return Verification(False, result.checked, result.head, checkpoint.seq,
                                    "the checkpoint's signature is not the key's: the checkpoint was forged")
        return result

    # -- checkpoints and retention ----------------------------------------------------------------
    @staticmethod
    def _signature(seq: int, digest: str, at: float, key: bytes) -> str:
        return hmac.new(key, f"{seq}:{digest}:{at!r}".encode(), hashlib.sha256).hexdigest()

    def _signed(self, checkpoint: "Checkpoint", key: bytes) -> bool:
        return hmac.compare_digest(checkpoint.signature, self._signature(checkpoint.seq, checkpoint.hash,
                                                                         checkpoint.at, key))

    def checkpoint(self, key: bytes) -> "Checkpoint":
        """Signs the current head and stores it (publish it too: ``seq:hash`` given to ``verify --head``)."""
        with self.db.write(self.conn):
            seq, digest = self.head()
            at = time.time()
            checkpoint = Checkpoint(seq, digest, at, self._signature(seq, digest, at, key))
            self._run("INSERT INTO decision_log_checkpoints (seq, hash, at, signature) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (seq) DO NOTHING", (seq, digest, at, checkpoint.signature))
        return checkpoint

    def checkpoints(self) -> list["Checkpoint"]:
        return [Checkpoint(int(seq), digest, float(at), signature) for seq, digest, at, signature in
                self._rows("SELECT seq, hash, at, signature FROM decision_log_checkpoints ORDER BY seq")]

    def anchor(self) -> "Checkpoint | None":
        rows = self._rows("SELECT a.seq, a.hash, c.at, c.signature FROM decision_log_anchor a "
                          "JOIN decision_log_checkpoints c ON c.seq = a.seq WHERE a.id = 1")
        return Checkpoint(int(rows[0][0]), rows[0][1], float(rows[0][2]), rows[0][3]) if rows else None

    def prune(self, before: float) -> int:
        """Retention: deletes the records logged before ``before`` up to the latest checkpoint among them, which
        becomes the anchor the remaining chain is verified from. Returns how many records were deleted.

        Raises:
            ValueError: when no checkpoint lies in the span to prune (sign one first: ``tripwire audit checkpoint``).
        """
        with self.db.write(self.conn):
            if self.db.kind == "postgresql":
                self._rows("SELECT pg_advisory_xact_lock(?)", (APPEND_LOCK,))
            newer = self._rows("SELECT MIN(seq) FROM decision_log WHERE logged_at >= ?", (before,))[0][0]
            limit = int(newer) - 1 if newer is not None else self.head()[0]
            rows = self._rows("SELECT seq, hash FROM decision_log_checkpoints WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
                              (limit,))
            if not rows:
                raise ValueError("no checkpoint covers the records to prune: sign one first (tripwire audit checkpoint)")
            seq = int(rows[0][0])
            deleted = self.conn.execute(self.db.sql("DELETE FROM decision_log WHERE seq <= ?"), (seq,)).rowcount
            self._run("DELETE FROM decision_log_anchor WHERE id = 1")
            self._run("INSERT INTO decision_log_anchor (id, seq, hash) VALUES (1, ?, ?)", (seq, rows[0][1]))
        return int(deleted or 0)

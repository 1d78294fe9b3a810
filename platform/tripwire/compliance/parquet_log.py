"""The decision log as Parquet files on any fsspec URI: the same hash chain, for scans that log where their
results live (an object store) rather than in a database.

Layout under the log's folder::

    part-<first seq, 12 digits>.parquet   records seq, kind, puid, body (canonical JSON), logged_at,
                                          prev_hash, hash; one file per append
    anchor.json                           after retention: the last pruned record's seq and hash

Records, hashes and verification are exactly :mod:`tripwire.compliance.decision_log`'s (:func:`~tripwire.compliance.decision_log.verify`
walks them), so ``tripwire audit verify`` and the reports read either store. Differences from the
database log:

* **One writer at a time** (a scan's driver): object stores have no lock to serialise two appenders, so two
  concurrent writers would fork the chain, which ``verify`` then reports. Serving, with many replicas,
  logs to the database.
* No signed checkpoints (publish the head: ``verify --head``); retention drops whole files.
* Memory: ``(kind, puid)`` of every record, read once on the first append or lookup, to log each once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Iterator, Mapping, Sequence

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from tripwire.compliance.decision_log import GENESIS, LogRecord, Verification, hash_of_text, canonical, verify
from tripwire.storage.parquet import read_table

logger = logging.getLogger(__name__)

ANCHOR = "anchor.json"
SCHEMA = pa.schema([("seq", pa.int64()), ("kind", pa.string()), ("puid", pa.string()), ("body", pa.string()),
                    ("logged_at", pa.float64()), ("prev_hash", pa.string()), ("hash", pa.string())])


def is_parquet_log(url: str) -> bool:
    """A URI with an fsspec scheme other than the databases' names a Parquet log (``file:///abs/dir`` locally)."""
    return "://" in url and not url.startswith(("postgresql://", "postgres://", "sqlite:///"))


class ParquetDecisionLog:
    """The log in the folder ``url`` (created on first append); see the module docstring."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.url)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        self._index: dict[tuple[str, str], int] | None = None  # (kind, puid) -> seq

    def _files(self) -> list[str]:
        return sorted(self.fs.glob(f"{self.path}/part-*.parquet")) if self.fs.exists(self.path) else []

    def anchor(self) -> tuple[int, str] | None:
        path = f"{self.path}/{ANCHOR}"
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r") as handle:
            anchor = json.load(handle)
        return int(anchor["seq"]), anchor["hash"]

    def _read(self, file: str, columns: Sequence[str] | None = None) -> pa.Table:
        with self.fs.open(file, "rb") as handle:
            return read_table(handle, columns=list(columns) if columns else None)

    @staticmethod
    def _records(table: pa.Table) -> Iterator[LogRecord]:
        for row in table.to_pylist():
            yield LogRecord(int(row["seq"]), row["kind"], row["puid"], json.loads(row["body"]), float(row["logged_at"]),
                            row["prev_hash"], row["hash"])

    def records(self, start: int = 1) -> Iterator[LogRecord]:
        """Every record from ``start`` in ``seq`` order, one file in memory at a time."""
        for file in self._files():
            for record in self._records(self._read(file)):
                if record.seq >= start:
                    yield record

    def head(self) -> tuple[int, str]:
        files = self._files()
        if files:
            last = self._read(files[-1], ["seq", "hash"]).to_pylist()[-1]
            return int(last["seq"]), last["hash"]
        return self.anchor() or (0, GENESIS)

    def _known(self) -> dict[tuple[str, str], int]:
        if self._index is None:
            self._index = {}
            for file in self._files():
                for row in self._read(file, ["seq", "kind", "puid"]).to_pylist():
                    self._index[(row["kind"], row["puid"])] = int(row["seq"])
        return self._index

    def find(self, kind: str, puid: str) -> LogRecord | None:
        seq = self._known().get((kind, puid))
        if seq is None:
            return None
        return next((r for r in self.records(seq) if r.seq == seq), None)

    def append(self, entries: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[LogRecord]:
        """Appends ``(kind, puid, body)`` entries as one new file; a ``(kind, puid)`` already logged is left out
        (unlike the database log, its existing record is not returned: scans never need it)."""
        known = self._known()
        seq, previous = self.head()
        rows, out = [], []
        for kind, puid, body in entries:
            if (kind, puid) in known:
                continue
            text = canonical(body)
            seq, logged_at = seq + 1, time.time()
            digest = hash_of_text(seq, kind, puid, text, logged_at, previous)
            rows.append({"seq": seq, "kind": kind, "puid": puid, "body": text.decode(), "logged_at": logged_at,
                         "prev_hash": previous, "hash": digest})
            out.append(LogRecord(seq, kind, puid, json.loads(text), logged_at, previous, digest))
            known[(kind, puid)] = seq
            previous = digest
        if rows:
            self._write(f"part-{rows[0]['seq']:012d}.parquet", pa.Table.from_pylist(rows, schema=SCHEMA))
        return out

    def _write(self, name: str, table: pa.Table) -> None:
        self.fs.makedirs(self.path, exist_ok=True)
        final = f"{self.path}/{name}"
        if self.fs.exists(final):  # another writer took this seq: appending would fork the chain
            raise RuntimeError(f"{final} exists: another writer appended to {self.url} meanwhile")
        # Local disks: written whole, then renamed; object stores publish a file only when it is closed.
        target = f"{self.path}/_tmp-{uuid.uuid4().hex}.parquet" if self.local else final
        with self.fs.open(target, "wb") as handle:
            pq.write_table(table, handle)
        if self.local:
            self.fs.mv(target, final)

    def verify(self, published_head: tuple[int, str] | None = None, key: bytes | None = None) -> Verification:
        if key is not None:
            raise ValueError(f"{self.url}: a Parquet log has no signed checkpoints (verify it with --head)")
        start = self.anchor() or (0, GENESIS)
        # From the anchor on: a file whose deletion a crash interrupted still lies before it.
        return verify(self.records(start[0] + 1), published_head, start)

    def prune(self, before: float) -> int:
        """Retention: deletes the oldest files whose records were all logged before ``before``; the last
        deleted record becomes the anchor. Returns how many records were deleted."""
        deleted, anchor = 0, None
        for file in self._files():
            table = self._read(file, ["seq", "logged_at", "hash"]).to_pylist()
            if not table or max(r["logged_at"] for r in table) >= before:
                break
            anchor = (int(table[-1]["seq"]), table[-1]["hash"])
            with self.fs.open(f"{self.path}/{ANCHOR}", "w") as handle:  # before the file goes: never a gap
                json.dump({"seq": anchor[0], "hash": anchor[1]}, handle)
            self.fs.rm(file)
            deleted += len(table)
        self._index = None
        return deleted

    def close(self) -> None:
        self._index = None

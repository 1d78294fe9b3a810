"""SQL databases behind a store URL: a SQLite file (the default, no set-up) or PostgreSQL (``postgresql://``,
psycopg 3). :class:`Database` holds what differs between them (connecting, placeholders, write transactions,
row locks); :class:`Tables` is a set of tables over one connection per thread. The review store, the decision
log and the statements' export ledger are built on them."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence


class StoreURLError(ValueError):
    """A store URL that is neither a SQLite path nor a PostgreSQL URL."""


class Database:
    """What differs between SQLite and PostgreSQL: connecting, placeholders, write transactions, locks."""

    kind = ""  # "sqlite" or "postgresql"
    lock_row = ""  # appended to a SELECT that must lock the item row it reads
    skip_locked = ""
    integrity_errors: tuple[type[BaseException], ...] = ()

    def connect(self):
        raise NotImplementedError

    def sql(self, statement: str) -> str:
        return statement

    @contextlib.contextmanager
    def write(self, conn) -> Iterator[None]:
        raise NotImplementedError


class SQLiteDatabase(Database):
    kind = "sqlite"
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: str):
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One writer at a time within this process, queued on a lock: SQLite's own busy handler makes
        # waiting writers sleep and poll, which gave multi-second tails under 32 concurrent reviewers.
        # Other processes on the same file still wait through busy_timeout.
        self.writer = threading.Lock()

    def connect(self):
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # an acknowledged review survives a crash, not just a kill
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextlib.contextmanager
    def write(self, conn) -> Iterator[None]:
        with self.writer:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


class PostgresDatabase(Database):
    kind = "postgresql"
    lock_row = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str):
        import psycopg  # only PostgreSQL stores need it

        self.psycopg = psycopg
        self.url = url
        self.integrity_errors = (psycopg.errors.IntegrityError,)

    def connect(self):
        return self.psycopg.connect(self.url, autocommit=True)

    def sql(self, statement: str) -> str:
        return statement.replace("%", "%%").replace("?", "%s")

    @contextlib.contextmanager
    def write(self, conn) -> Iterator[None]:
        with conn.transaction():
            yield


def database(url: str) -> Database:
    """The database behind a store URL: a SQLite path (or sqlite:///abs/path) or a postgresql:// URL."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    if url.startswith("sqlite:///"):
        return SQLiteDatabase(url[len("sqlite:///") - 1:])
    if "://" in url:
        raise StoreURLError(f"store: {url!r} is neither a SQLite path nor a postgresql:// URL")
    return SQLiteDatabase(str(Path(url).resolve()))


class Tables:
    """A set of tables in the database at ``url`` (created on first use by ``schema``'s statements), over one
    connection per thread; rows come back as tuples. The decision log and the statements' ledger use it."""

    schema: Sequence[str] = ()

    def __init__(self, url: str):
        self.url = url
        self.db = database(url)
        self._local = threading.local()
        with self.db.write(self.conn):
            for statement in self.schema:
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

    def close(self) -> None:
        """Closes this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local = threading.local()


def redacted_url(url: str) -> str:
    """A store URL without its password (for logs and for the snapshots that record where labels came from)."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"
    return url

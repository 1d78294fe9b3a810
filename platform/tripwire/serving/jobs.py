"""Asynchronous moderation jobs for long media: a table of jobs that outlives any ingress replica.

``POST /v1/jobs`` stores the request as a queued :class:`Job`; a worker in some ingress replica claims it with a
lease, renews the lease while it works (with its progress), and stores the whole result, or the error, when done.
A replica that dies mid-job stops renewing: once its lease has run out another replica claims the job and starts it
again (the result is the same, the scoring being deterministic); a job that has been claimed ``max_attempts`` times
without finishing fails, so one poisonous item cannot keep every replica busy. Claims are compare-and-set updates,
so two replicas never run one job at once. SQLite (default) or PostgreSQL, through :mod:`tripwire.storage.sql`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tripwire.storage.sql import Tables

STATUSES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class Job:
    """One job as stored. ``request`` is what was posted; ``result`` the moderation result's JSON when done;
    ``error`` ``{"field", "reason", "message"}`` when failed."""

    id: str
    status: str
    request: dict[str, Any]
    created_at: float
    updated_at: float
    done_s: float | None = None
    total_s: float | None = None
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The job as ``GET /v1/jobs/{id}`` answers it."""
        progress = None
        if self.done_s is not None or self.status in ("running", "done"):
            fraction = 1.0 if self.status == "done" else (min(self.done_s / self.total_s, 1.0)
                                                           if self.total_s and self.done_s is not None else None)
            progress = {"done_s": self.done_s, "total_s": self.total_s,
                        "fraction": round(fraction, 4) if fraction is not None else None}
        out = {"job_id": self.id, "status": self.status, "progress": progress, "attempts": self.attempts,
               "created_at": self.created_at, "updated_at": self.updated_at}
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


class JobStore(Tables):
    """The jobs table at a store URL (a SQLite path or ``postgresql://``).

    Args:
        url: where the table lives (it may be the review store's or decision log's database).
        max_attempts: claims a job gets before it fails as ``abandoned``.
    """

    schema = (
        "CREATE TABLE IF NOT EXISTS moderation_jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, request TEXT NOT NULL,"
        " created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, owner TEXT,"
        " lease_until DOUBLE PRECISION, done_s DOUBLE PRECISION, total_s DOUBLE PRECISION,"
        " attempts INTEGER NOT NULL DEFAULT 0, result TEXT, error TEXT)",
        "CREATE INDEX IF NOT EXISTS moderation_jobs_status ON moderation_jobs (status, created_at)",
    )
    _COLUMNS = "id, status, request, created_at, updated_at, done_s, total_s, attempts, result, error"

    def __init__(self, url: str, max_attempts: int = 3):
        super().__init__(url)
        self.max_attempts = max_attempts

    def submit(self, request: dict[str, Any]) -> Job:
        """Stores a new queued job for ``request``."""
        now = time.time()
        job_id = uuid.uuid4().hex
        with self.db.write(self.conn):
            self._run("INSERT INTO moderation_jobs (id, status, request, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                      (job_id, "queued", json.dumps(request, sort_keys=True), now, now))
        return Job(job_id, "queued", request, now, now)

    def get(self, job_id: str) -> Job | None:
        rows = self._rows(f"SELECT {self._COLUMNS} FROM moderation_jobs WHERE id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    def claim(self, owner: str, lease_s: float) -> Job | None:
        """The oldest job that is queued, or running under a lease that ran out, now ``owner``'s for ``lease_s``
        seconds (None: nothing to do). One past ``max_attempts`` claims fails instead."""
        while True:
            now = time.time()
            rows = self._rows(
                "SELECT id, attempts FROM moderation_jobs WHERE status = 'queued' OR (status = 'running' AND "
                "lease_until < ?) ORDER BY created_at LIMIT 1", (now,))
            if not rows:
                return None
            job_id, attempts = rows[0]
            with self.db.write(self.conn):
                if attempts >= self.max_attempts:
                    error = {"field": "job", "reason": "abandoned",
                             "message": f"claimed {attempts} times without finishing (its replicas were lost)"}
                    self._run("UPDATE moderation_jobs SET status = 'failed', error = ?, updated_at = ?, owner = NULL "
                              "WHERE id = ? AND attempts = ?", (json.dumps(error), now, job_id, attempts))
                    continue
                claimed = self.conn.execute(self.db.sql(
                    "UPDATE moderation_jobs SET status = 'running', owner = ?, lease_until = ?, attempts = ?, "
                    "updated_at = ? WHERE id = ? AND attempts = ? AND (status = 'queued' OR (status = 'running' "
                    "AND lease_until < ?))"), (owner, now + lease_s, attempts + 1, now, job_id, attempts, now)).rowcount
            if claimed == 1:
                return self.get(job_id)
            # Another replica claimed it first: look again.

    def renew(self, job_id: str, owner: str, lease_s: float, done_s: float | None, total_s: float | None) -> bool:
        """Extends ``owner``'s lease and records its progress; False when the job is no longer ``owner``'s."""
        now = time.time()
        with self.db.write(self.conn):
            return self.conn.execute(self.db.sql(
                "UPDATE moderation_jobs SET lease_until = ?, done_s = ?, total_s = ?, updated_at = ? "
                "WHERE id = ? AND owner = ? AND status = 'running'"),
                (now + lease_s, done_s, total_s, now, job_id, owner)).rowcount == 1

    def finish(self, job_id: str, owner: str, result: dict[str, Any], done_s: float | None = None,
               total_s: float | None = None) -> bool:
        """Stores the result of ``owner``'s job; False when it was no longer ``owner``'s (the result is dropped)."""
        return self._end(job_id, owner, "done", json.dumps(result), None, done_s, total_s)

    def fail(self, job_id: str, owner: str, error: dict[str, Any]) -> bool:
        """Fails ``owner``'s job with ``error`` (``field``, ``reason``, ``message``)."""
        return self._end(job_id, owner, "failed", None, json.dumps(error), None, None)

    def _end(self, job_id: str, owner: str, status: str, result: str | None, error: str | None,
             done_s: float | None, total_s: float | None) -> bool:
        now = time.time()
        with self.db.write(self.conn):
            return self.conn.execute(self.db.sql(
                "UPDATE moderation_jobs SET status = ?, result = ?, error = ?, done_s = COALESCE(?, done_s), "
                "total_s = COALESCE(?, total_s), updated_at = ?, owner = NULL, lease_until = NULL "
                "WHERE id = ? AND owner = ? AND status = 'running'"),
                (status, result, error, done_s, total_s, now, job_id, owner)).rowcount == 1

    def _job(self, row: tuple) -> Job:
        job_id, status, request, created, updated, done_s, total_s, attempts, result, error = row
        return Job(job_id, status, json.loads(request), float(created), float(updated), done_s, total_s,
                   int(attempts), json.loads(result) if result else None, json.loads(error) if error else None)

"""The durable review queue: items waiting for people, the reviews they give, reviewers and their tokens.

One interface, two databases with the same schema: SQLite (one file, WAL, the default: no set-up) and
PostgreSQL (``postgresql://`` URL, psycopg 3) for several app processes or hosts. Schema changes are
numbered migrations recorded in ``schema_version``; opening a store applies the missing ones.

Writes are transactions that either land whole or not at all: an acknowledged review is committed
(SQLite ``synchronous=FULL``; PostgreSQL's default ``fsync``), so killing the process loses nothing
that was answered. A client-supplied ``idempotency_key`` makes a retried submission return the first
review instead of storing a second one; the key is bound to what it was first used for (its reviewer and
a digest of the request: item, labels, action, clause, rationale), so the same key sent with another
item or decision is refused (409 ``idempotency_conflict``) instead of answered as a duplicate. A unique
index stops a reviewer reviewing an item twice.

Reviewer tokens are issued by an admin (``tripwire queue add-reviewer``); signing in exchanges one for a
session (its own random token, stored as a digest) that signing out ends. ``revoke`` ends a reviewer's
token and every session of theirs (``tripwire queue revoke``).

Concurrency: SQLite write transactions are ``BEGIN IMMEDIATE`` (one writer at a time, readers never
blocked); PostgreSQL locks the item row (``FOR UPDATE``) while a review changes its status and claims
with ``SKIP LOCKED`` so reviewers never wait on each other's claims.

Times are epoch seconds; JSON columns are text so both databases store them the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote

from tripwire.compliance.records import evidence_times
from tripwire.storage.sql import StoreURLError, database, redacted_url
from tripwire.review.item import ItemError, QueueItem, StoredItem
from tripwire.review.config import MAX_RATIONALE, RATIONALE_ACTIONS, ReviewConfig
from tripwire.policy import ACTION_NAMES

logger = logging.getLogger(__name__)

ACTIONS = ACTION_NAMES
ROLES = ("reviewer", "admin")
OPEN_STATUSES = {"review": "pending", "adjudication": "adjudication", "golden": "golden"}
MAX_CLAIM_RETRIES = 50  # PostgreSQL: items passed over because they filled up while a claim waited


class ReviewError(Exception):
    """A request the store refuses; ``code`` and ``status`` become the HTTP error."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Reviewer:
    name: str
    role: str
    expires_at: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Submission:
    """One review as a reviewer submits it (validated by :meth:`ReviewStore.check_submission`)."""

    item_id: str
    labels: dict[str, int]
    action: str
    policy_clause: str | None
    rationale: str
    time_spent_ms: int
    idempotency_key: str


# -- schema ---------------------------------------------------------------------------------------
# Each migration is (sqlite statements, postgresql statements); append, never edit a released one.
_ITEMS = """CREATE TABLE items (
    item_id TEXT PRIMARY KEY, source TEXT NOT NULL, sample TEXT NOT NULL, base_uri TEXT, result TEXT NOT NULL,
    action TEXT, top_category TEXT, market TEXT, policy_version TEXT, model_version TEXT,
    priority DOUBLE PRECISION NOT NULL DEFAULT 0, golden_labels TEXT, batch TEXT,
    required_reviews INTEGER NOT NULL, status TEXT NOT NULL, reviews_done INTEGER NOT NULL DEFAULT 0,
    escalation TEXT, resolved_labels TEXT, resolved_action TEXT, resolved_by TEXT, resolved_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL)"""
_COMMON = [
    "CREATE TABLE reviewers (name TEXT PRIMARY KEY, role TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE, "
    "created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL, claims INTEGER NOT NULL DEFAULT 0)",
    _ITEMS,
    "CREATE INDEX items_queue ON items (status, priority DESC, created_at)",
    "CREATE TABLE claims (item_id TEXT NOT NULL REFERENCES items(item_id), reviewer TEXT NOT NULL, "
    "claimed_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (item_id, reviewer))",
    "CREATE TABLE skips (item_id TEXT NOT NULL REFERENCES items(item_id), reviewer TEXT NOT NULL, "
    "at DOUBLE PRECISION NOT NULL, PRIMARY KEY (item_id, reviewer))",
]
_REVIEWS = ("CREATE TABLE reviews (review_id {id}, idempotency_key TEXT NOT NULL UNIQUE, "
            "item_id TEXT NOT NULL REFERENCES items(item_id), reviewer TEXT NOT NULL, kind TEXT NOT NULL, "
            "labels TEXT NOT NULL, action TEXT NOT NULL, policy_clause TEXT, rationale TEXT NOT NULL, "
            "claimed_at DOUBLE PRECISION, decided_at DOUBLE PRECISION NOT NULL, time_spent_ms INTEGER NOT NULL)")
_ONE_REVIEW_EACH = "CREATE UNIQUE INDEX reviews_once ON reviews (item_id, reviewer, kind)"
# Idempotency keys bound to the request they were first used for (reviews stored before this have no digest:
# it is computed from the stored review), sign-in sessions that sign-out ends, and revoked reviewer tokens.
# ADD COLUMN upgrades an existing table in place on both databases.
_BOUND_KEYS_AND_SESSIONS = [
    "ALTER TABLE reviews ADD COLUMN request_sha256 TEXT",
    "ALTER TABLE reviewers ADD COLUMN revoked_at DOUBLE PRECISION",
    "CREATE TABLE sessions (token_sha256 TEXT PRIMARY KEY, reviewer TEXT NOT NULL, "
    "created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX sessions_by_reviewer ON sessions (reviewer)",
]
MIGRATIONS: list[tuple[list[str], list[str]]] = [
    (_COMMON + [_REVIEWS.format(id="INTEGER PRIMARY KEY AUTOINCREMENT"), _ONE_REVIEW_EACH],
     _COMMON + [_REVIEWS.format(id="BIGSERIAL PRIMARY KEY"), _ONE_REVIEW_EACH]),
    # 2: the admin page's per-reviewer and per-time queries.
    (["CREATE INDEX reviews_by_time ON reviews (decided_at)", "CREATE INDEX reviews_by_reviewer ON reviews (reviewer)"],
     ["CREATE INDEX reviews_by_time ON reviews (decided_at)", "CREATE INDEX reviews_by_reviewer ON reviews (reviewer)"]),
    # 3: idempotency keys bound to their request; sign-in sessions; revoked tokens (see _BOUND_KEYS_AND_SESSIONS).
    (_BOUND_KEYS_AND_SESSIONS, _BOUND_KEYS_AND_SESSIONS),
]
SCHEMA_VERSION = len(MIGRATIONS)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def request_digest(reviewer: str, item_id: str, labels: Mapping[str, int], action: str, policy_clause: str | None,
                   rationale: str) -> str:
    """What an idempotency key is bound to: who reviewed which item, and the decision (labels, action, clause,
    rationale) after validation. ``time_spent_ms`` is left out: a client's retry may measure it again."""
    canonical = {"reviewer": reviewer, "item_id": item_id, "labels": dict(sorted(labels.items())), "action": action,
                 "policy_clause": policy_clause, "rationale": rationale}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _loads(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def seen(result) -> dict[str, Any]:
    """What a reviewer is shown over an item's image: the regions the nudity expert scored high (shown blurred even
    when the image is revealed) and the text OCR read, each box with the size of the picture it is in (so it is
    drawn over the picture at any size). Video frames' findings are not drawn (they belong to a time)."""
    if result is None:
        return {"picture_regions": [], "picture_text": []}
    nudity = result.evidence.get("nudity") or {}
    regions = [{"box": r["box"], "size": [p["width"], p["height"]], "score": r["score"]}
               for p in nudity.get("pictures", []) if "frame_s" not in p for r in p.get("regions", [])]
    read = (result.evidence.get("image_text") or {}).get("blocks", [])
    text = [{"box": b["box"], "size": b["size"], "text": b["text"]} for b in read if "frame_s" not in b and "size" in b]
    return {"picture_regions": regions, "picture_text": text}


def heard(result) -> dict[str, Any]:
    """What a reviewer is shown of what the speech expert heard: the transcript's sentences with their times (and
    the category each scored highest), and where each category the policy acted on was found (long media: the
    worst window's sentence), for the player to start from."""
    if result is None:
        return {"transcript": [], "flagged_at": []}
    speech = result.evidence.get("speech") or {}
    transcript = [{k: s[k] for k in ("start_s", "end_s", "text", "top") if k in s} for s in speech.get("segments", [])]
    flagged = [{"category": c, **where} for c, where in evidence_times(result).items()]
    return {"transcript": transcript, "flagged_at": sorted(flagged, key=lambda f: f["start_s"])}


class ReviewStore:
    """The review queue over one database.

    Args:
        url: a SQLite path (``sqlite:///abs/path`` or plain) or a ``postgresql://`` URL.
        categories: the taxonomy's categories (labels outside it are refused).
        clauses: the policy clauses reviewers may cite (default: the categories).
        required_reviews: reviews a new item needs.
        claim_ttl_s: how long a claim holds.
        golden_every: one hidden golden item per this many claims of a reviewer (0: none).

    Connections are per thread (FastAPI runs handlers on a thread pool), opened on first use.
    """

    def __init__(self, url: str, categories: Sequence[str], clauses: Sequence[str] | None = None,
                 required_reviews: int = 2, claim_ttl_s: float = 900.0, golden_every: int = 10):
        self.url = url
        try:
            self.db = database(url)
        except StoreURLError as exc:
            raise ReviewError(400, "invalid_store", str(exc)) from exc
        self.categories = list(categories)
        self.clauses = list(clauses) if clauses is not None else list(categories)
        self.required_reviews = required_reviews
        self.claim_ttl_s = claim_ttl_s
        self.golden_every = golden_every
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self.migrate()

    # -- plumbing ---------------------------------------------------------------------------------
    @property
    def conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.db.connect()
            with self._lock:
                self._connections.append(conn)
        return conn

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(self.db.sql(statement), tuple(params))
        if cursor.description is None:
            return []
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def _one(self, statement: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(statement, params)
        return rows[0] if rows else None

    def _run(self, statement: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(self.db.sql(statement), tuple(params)).rowcount

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(Exception):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def migrate(self) -> int:
        """Applies the migrations this database lacks; returns the schema version."""
        postgres = self.db.kind == "postgresql"
        with self.db.write(self.conn):
            if postgres:  # one migrator at a time across processes
                self._run("SELECT pg_advisory_xact_lock(7242)")
            self._run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._one("SELECT MAX(version) AS v FROM schema_version")
            current = int(row["v"]) if row and row["v"] is not None else 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1][1 if postgres else 0]:
                    self._run(statement)
                self._run("INSERT INTO schema_version (version) VALUES (?)", (version,))
                logger.info("review store %s: migrated to schema version %d", self.url, version)
        return SCHEMA_VERSION

    def schema_version(self) -> int:
        return int(self._one("SELECT MAX(version) AS v FROM schema_version")["v"])

    # -- reviewers --------------------------------------------------------------------------------
    def add_reviewer(self, name: str, role: str = "reviewer", ttl_s: float = 30 * 86400.0) -> str:
        """Creates the reviewer (or gives them a new token, revoking the old one and its sessions); returns the
        token."""
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ReviewError(422, "invalid_request", f"name: {name!r} must be letters, digits, '-', '_' or '.'")
        if role not in ROLES:
            raise ReviewError(422, "invalid_request", f"role: {role!r} must be one of {list(ROLES)}")
        if ttl_s <= 0:
            raise ReviewError(422, "invalid_request", f"ttl: must be positive, got {ttl_s}")
        token = secrets.token_urlsafe(24)
        now = time.time()
        with self.db.write(self.conn):
            self._run("DELETE FROM reviewers WHERE name = ?", (name,))
            self._run("DELETE FROM sessions WHERE reviewer = ?", (name,))
            self._run("INSERT INTO reviewers (name, role, token_sha256, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                      (name, role, token_digest(token), now, now + ttl_s))
        return token

    def authenticate(self, token: str | None, sessions_only: bool = False) -> Reviewer:
        """The reviewer a reviewer token or a sign-in session token belongs to (``sessions_only``: a session's
        only, as the sign-in cookie carries); a 401 ReviewError for no, a wrong, an ended, a revoked or an
        expired token."""
        if not token:
            raise ReviewError(401, "unauthenticated", "no token: sign in, or send 'Authorization: Bearer <token>'")
        digest = token_digest(token)
        session = ("SELECT r.name, r.role, s.expires_at, r.revoked_at FROM sessions s "
                   "JOIN reviewers r ON r.name = s.reviewer WHERE s.token_sha256 = ?")
        row = (self._one(session, (digest,)) if sessions_only else self._one(
            f"SELECT name, role, expires_at, revoked_at FROM reviewers WHERE token_sha256 = ? UNION ALL {session}",
            (digest, digest)))
        if row is None:
            raise ReviewError(401, "unauthenticated",
                              "the token is not valid (wrong, signed out, or revoked by a new one): sign in again")
        if row["revoked_at"] is not None:
            raise ReviewError(401, "unauthenticated", f"the token of {row['name']} was revoked; ask an admin for a new one")
        if row["expires_at"] < time.time():
            raise ReviewError(401, "token_expired", f"the token of {row['name']} expired; ask an admin for a new one")
        return Reviewer(row["name"], row["role"], row["expires_at"])

    def open_session(self, token: str | None) -> tuple[str, Reviewer]:
        """Signs in with a reviewer token: returns a new session token (what the sign-in cookie carries; it
        ends with :meth:`end_session`, :meth:`revoke`, a new token for the reviewer, or the token's expiry)."""
        # Only the token an admin issued signs in (a session token does not open another session).
        if not token or self._one("SELECT 1 AS x FROM reviewers WHERE token_sha256 = ?", (token_digest(token),)) is None:
            raise ReviewError(401, "unauthenticated", "the token is not valid (wrong, or revoked by a new one)")
        who = self.authenticate(token)
        session, now = secrets.token_urlsafe(32), time.time()
        with self.db.write(self.conn):
            self._run("DELETE FROM sessions WHERE expires_at < ?", (now,))
            self._run("INSERT INTO sessions (token_sha256, reviewer, created_at, expires_at) VALUES (?, ?, ?, ?)",
                      (token_digest(session), who.name, now, who.expires_at))
        return session, who

    def end_session(self, session: str | None) -> bool:
        """Signs out: the session token stops working. False when it was no (live) session."""
        if not session:
            return False
        with self.db.write(self.conn):
            return self._run("DELETE FROM sessions WHERE token_sha256 = ?", (token_digest(session),)) > 0

    def revoke(self, name: str) -> int:
        """Revokes the reviewer's token and ends every session of theirs (``add_reviewer`` issues a new token);
        returns how many sessions ended. A 404 ReviewError names an unknown reviewer."""
        with self.db.write(self.conn):
            if self._run("UPDATE reviewers SET revoked_at = ? WHERE name = ?", (time.time(), name)) == 0:
                raise ReviewError(404, "not_found", f"no reviewer named {name!r}")
            ended = self._run("DELETE FROM sessions WHERE reviewer = ?", (name,))
        logger.info("review store %s: revoked the token of %s and %d session(s)", redacted_url(self.url), name, ended)
        return ended

    def reviewers(self) -> list[dict[str, Any]]:
        return self._rows("SELECT name, role, created_at, expires_at, claims FROM reviewers ORDER BY name")

    # -- the queue --------------------------------------------------------------------------------
    def enqueue(self, items: Iterable[QueueItem | Mapping[str, Any]]) -> int:
        """Adds items (see CONTRACT.md; a mapping is read by :meth:`QueueItem.from_json`); an item already
        queued is left as it is. Returns how many are new."""
        now, added = time.time(), 0
        rows = [self._item_row(item, now) for item in items]
        with self.db.write(self.conn):
            for row in rows:
                added += self._run(
                    f"INSERT INTO items ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)}) "
                    "ON CONFLICT (item_id) DO NOTHING", list(row.values()))
        return added

    def _item_row(self, item: QueueItem | Mapping[str, Any], now: float) -> dict[str, Any]:
        try:
            item = item if isinstance(item, QueueItem) else QueueItem.from_json(item)
        except ItemError as exc:
            raise ReviewError(422, "invalid_request", str(exc)) from exc
        if item.golden_labels is not None:
            self._check_labels(item.golden_labels)
        return item.to_row(self.categories, self.required_reviews, now)

    def claim(self, reviewer: Reviewer, queue: str = "review", category: str | None = None,
              policy: str | None = None, market: str | None = None) -> tuple[dict[str, Any], dict[str, float]] | None:
        """Gives ``reviewer`` the next item (the highest priority, then the oldest) and holds it for them.

        Returns ``(item, claim)`` or None when nothing is left for them. A reviewer who already holds a live
        claim in that queue gets it again (a reloaded page does not lose the item).
        """
        if queue not in ("review", "adjudication"):
            raise ReviewError(422, "invalid_request", f"queue: {queue!r} must be 'review' or 'adjudication'")
        if queue == "adjudication" and not reviewer.is_admin:
            raise ReviewError(403, "forbidden", "the adjudication queue is for admins")
        if category is not None and category not in self.categories:
            raise ReviewError(422, "invalid_label", f"category: {category!r} is not in the taxonomy")
        now = time.time()
        with self.db.write(self.conn):
            self._run("DELETE FROM claims WHERE expires_at < ?", (now,))
            held = self._one(
                "SELECT i.* FROM claims c JOIN items i ON i.item_id = c.item_id WHERE c.reviewer = ? AND i.status IN (?, ?) "
                "ORDER BY c.claimed_at LIMIT 1", (reviewer.name, OPEN_STATUSES[queue],
                                                  "golden" if queue == "review" else OPEN_STATUSES[queue]))
            if held is not None:
                expires = now + self.claim_ttl_s
                self._run("UPDATE claims SET expires_at = ? WHERE item_id = ? AND reviewer = ?",
                          (expires, held["item_id"], reviewer.name))
                return self._view(held, queue), {"claimed_at": now, "expires_at": expires}
            row = None
            if queue == "review":
                self._run("UPDATE reviewers SET claims = claims + 1 WHERE name = ?", (reviewer.name,))
                count = self._one("SELECT claims FROM reviewers WHERE name = ?", (reviewer.name,))["claims"]
                if self.golden_every and count % self.golden_every == 0:
                    row = self._next(reviewer, "golden", None, None, None, now)
            row = row or self._next(reviewer, queue, category, policy, market, now)
            if row is None:
                return None
            expires = now + self.claim_ttl_s
            self._run("INSERT INTO claims (item_id, reviewer, claimed_at, expires_at) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (item_id, reviewer) DO UPDATE SET claimed_at = excluded.claimed_at, "
                      "expires_at = excluded.expires_at", (row["item_id"], reviewer.name, now, expires))
        return self._view(row, queue), {"claimed_at": now, "expires_at": expires}

    def _next(self, reviewer: Reviewer, queue: str, category, policy, market, now: float) -> dict[str, Any] | None:
        where, params = ["i.status = ?"], [OPEN_STATUSES[queue]]
        for column, value in (("top_category", category), ("policy_version", policy), ("market", market)):
            if value:
                where.append(f"i.{column} = ?")
                params.append(value)
        where.append("NOT EXISTS (SELECT 1 FROM reviews r WHERE r.item_id = i.item_id AND r.reviewer = ?)")
        where.append("NOT EXISTS (SELECT 1 FROM skips s WHERE s.item_id = i.item_id AND s.reviewer = ?)")
        params += [reviewer.name, reviewer.name]
        others = "(SELECT COUNT(*) FROM claims c WHERE c.item_id = i.item_id AND c.reviewer <> ?)"
        if queue == "review":  # room for one more reviewer: done + held by others < required
            where.append(f"i.reviews_done + {others} < i.required_reviews")
            params.append(reviewer.name)
        elif queue == "adjudication":  # one adjudicator at a time
            where.append(f"{others} = 0")
            params.append(reviewer.name)
        statement = (f"SELECT i.* FROM items i WHERE {' AND '.join(where)} "
                     f"ORDER BY i.priority DESC, i.created_at, i.item_id LIMIT 1{self.db.skip_locked}")
        if not self.db.skip_locked:  # SQLite: the write transaction already excludes every other claimer
            return self._one(statement, params)
        # PostgreSQL: the row lock is taken after the statement's snapshot, and a claim does not change the
        # item row, so a claim committed in between is invisible to the count above. Count again now (a new
        # statement, a new snapshot) and move on to the next item when it filled up meanwhile.
        tried: list[str] = []
        for _ in range(MAX_CLAIM_RETRIES):
            excluded = "".join(" AND i.item_id <> ?" for _ in tried)
            row = self._one(statement.replace(" ORDER BY", f"{excluded} ORDER BY", 1), [*params, *tried])
            if row is None or self._has_room(row, reviewer, queue):
                return row
            tried.append(row["item_id"])
        return None

    def _has_room(self, row: Mapping[str, Any], reviewer: Reviewer, queue: str) -> bool:
        held = int(self._one("SELECT COUNT(*) AS n FROM claims WHERE item_id = ? AND reviewer <> ?",
                             (row["item_id"], reviewer.name))["n"])
        if queue == "review":
            return row["reviews_done"] + held < row["required_reviews"]
        return queue != "adjudication" or held == 0

    def _view(self, row: Mapping[str, Any], queue: str) -> dict[str, Any]:
        """What a reviewer sees of an item (whether it is golden is never shown)."""
        stored = StoredItem.from_row(row)
        sample, result = stored.sample, stored.result
        view = {
            # No source: it would tell a hidden golden item apart.
            "item_id": stored.item_id, "text": sample.get("text"),
            # Relative to the app's pages, so the app works mounted under a route prefix too.
            "media": {m: f"api/items/{quote(stored.item_id, safe='')}/media/{m}"
                      for m in ("image", "audio", "video") if sample.get(m)},
            "scores": dict(result.scores) if result else {}, "action": result.action if result else None,
            "reasons": [dataclasses.asdict(r) for r in result.decision.reasons] if result else [],
            "driven_by": {c: a.get("driven_by") for c, a in result.attribution.items()} if result else {},
            "model_version": row["model_version"], "policy_version": row["policy_version"], "market": row["market"],
            "meta": sample.get("meta") or {}, **heard(result), **seen(result)}
        if queue == "adjudication":
            view["escalation"] = stored.escalation
            view["prior_reviews"] = [
                {k: r[k] for k in ("reviewer", "labels", "action", "policy_clause", "rationale", "decided_at")}
                for r in self.reviews(stored.item_id)]
        return view

    def item(self, item_id: str) -> StoredItem:
        row = self._one("SELECT * FROM items WHERE item_id = ?", (item_id,))
        if row is None:
            raise ReviewError(404, "unknown_item", f"item {item_id!r} is not in the review queue")
        return StoredItem.from_row(row)

    # -- reviews ----------------------------------------------------------------------------------
    def _check_labels(self, labels: Any) -> dict[str, int]:
        if not isinstance(labels, Mapping):
            raise ReviewError(422, "invalid_label", "labels: must be an object of category -> 0 or 1")
        unknown = sorted(set(labels) - set(self.categories))
        if unknown:
            raise ReviewError(422, "invalid_label", f"labels: {unknown} are not in the taxonomy")
        bad = sorted(c for c, v in labels.items() if v not in (0, 1) or isinstance(v, float))
        if bad:
            raise ReviewError(422, "invalid_label", f"labels: {bad} must be 0 or 1")
        return {c: int(labels.get(c, 0)) for c in self.categories}

    def check_submission(self, body: Mapping[str, Any]) -> Submission:
        """Validates a submitted review; a ReviewError names the first problem."""
        if not isinstance(body, Mapping):
            raise ReviewError(422, "invalid_request", "the body must be a JSON object")
        for name in ("item_id", "idempotency_key"):
            if not isinstance(body.get(name), str) or not body.get(name):
                raise ReviewError(422, "invalid_request", f"{name}: required (a non-empty string)")
        if len(body["idempotency_key"]) > 200:
            raise ReviewError(422, "invalid_request", "idempotency_key: at most 200 characters")
        labels = self._check_labels(body.get("labels", {}))
        action = body.get("action")
        if action not in ACTIONS:
            raise ReviewError(422, "invalid_action", f"action: {action!r} must be one of {list(ACTIONS)}")
        clause = body.get("policy_clause") or None
        if action != "allow" and clause is None:
            raise ReviewError(422, "clause_required", f"policy_clause: required for {action} (the rule it applies)")
        if clause is not None and clause not in self.clauses:
            raise ReviewError(422, "invalid_request", f"policy_clause: {clause!r} is not a clause of the policy")
        rationale = body.get("rationale") or ""
        if not isinstance(rationale, str):
            raise ReviewError(422, "invalid_request", "rationale: must be a string")
        if len(rationale) > MAX_RATIONALE:
            raise ReviewError(422, "invalid_request",
                              f"rationale: at most {MAX_RATIONALE} characters, got {len(rationale)}")
        if action in RATIONALE_ACTIONS and not rationale.strip():
            raise ReviewError(422, "rationale_required", f"rationale: required for {action} (say why, for the appeal)")
        spent = body.get("time_spent_ms", 0)
        if not isinstance(spent, int) or isinstance(spent, bool) or spent < 0:
            raise ReviewError(422, "invalid_request", "time_spent_ms: must be a non-negative integer")
        return Submission(body["item_id"], labels, action, clause, rationale.strip(), spent, body["idempotency_key"])

    def submit(self, reviewer: Reviewer, submission: Submission) -> dict[str, Any]:
        """Stores one review and moves its item on; a repeated ``idempotency_key`` with the same request returns
        the first review, and with another reviewer, item or decision is refused (409 ``idempotency_conflict``).

        Returns ``{"review_id", "item_id", "item_status", "duplicate"}``."""
        try:
            return self._submit(reviewer, submission)
        except self.db.integrity_errors:
            # A concurrent submission with the same key (or for the same item by the same reviewer) won.
            existing = self._by_key(submission.idempotency_key)
            if existing is not None:
                return self._duplicate(existing, reviewer, submission)
            raise ReviewError(409, "already_reviewed", f"{reviewer.name} already reviewed {submission.item_id}") from None

    def _by_key(self, key: str) -> dict[str, Any] | None:
        return self._one("SELECT r.review_id, r.reviewer, r.item_id, r.labels, r.action, r.policy_clause, r.rationale, "
                         "r.request_sha256, i.status FROM reviews r "
                         "JOIN items i ON i.item_id = r.item_id WHERE r.idempotency_key = ?", (key,))

    @staticmethod
    def _duplicate(existing: Mapping[str, Any], reviewer: Reviewer, s: Submission) -> dict[str, Any]:
        """The first review's answer when ``s`` repeats the request its key was first used for; else a 409."""
        key = s.idempotency_key
        if existing["reviewer"] != reviewer.name:
            raise ReviewError(409, "idempotency_conflict", f"idempotency_key {key!r}: already used by another "
                                                           "reviewer's review; send a new key for a new review")
        # Reviews stored before keys were bound (schema 3) carry no digest: it is the stored review's.
        first = existing["request_sha256"] or request_digest(
            existing["reviewer"], existing["item_id"], _loads(existing["labels"]), existing["action"],
            existing["policy_clause"], existing["rationale"])
        if first != request_digest(reviewer.name, s.item_id, s.labels, s.action, s.policy_clause, s.rationale):
            what = (f"item {s.item_id!r}" if s.item_id != existing["item_id"] else
                    f"a different decision ({s.action}) of item {s.item_id!r}")
            raise ReviewError(409, "idempotency_conflict",
                              f"idempotency_key {key!r}: already used for review {int(existing['review_id'])} of item "
                              f"{existing['item_id']!r} ({existing['action']}); this request is for {what}: "
                              "send a new key for a new review")
        return {"review_id": int(existing["review_id"]), "item_id": existing["item_id"],
                "item_status": existing["status"], "duplicate": True}

    def _submit(self, reviewer: Reviewer, s: Submission) -> dict[str, Any]:
        now = time.time()
        with self.db.write(self.conn):
            # The item's lock first, then the key: a retry racing its original waits here and then finds it.
            item = self._one(f"SELECT * FROM items WHERE item_id = ?{self.db.lock_row}", (s.item_id,))
            existing = self._by_key(s.idempotency_key)
            if existing is not None:
                return self._duplicate(existing, reviewer, s)
            if item is None:
                raise ReviewError(404, "unknown_item", f"item {s.item_id!r} is not in the review queue")
            kind = self._kind(reviewer, item)
            if self._one("SELECT 1 AS x FROM reviews WHERE item_id = ? AND reviewer = ? AND kind = ?",
                         (s.item_id, reviewer.name, kind)):
                raise ReviewError(409, "already_reviewed", f"{reviewer.name} already reviewed {s.item_id}")
            claim = self._one("SELECT claimed_at FROM claims WHERE item_id = ? AND reviewer = ?", (s.item_id, reviewer.name))
            if claim is None and kind == "review" and item["reviews_done"] + self._claims_by_others(item, reviewer) >= item["required_reviews"]:
                raise ReviewError(409, "no_claim", f"{s.item_id} is held by other reviewers: claim an item first")
            review_id = self._one(
                "INSERT INTO reviews (idempotency_key, request_sha256, item_id, reviewer, kind, labels, action, "
                "policy_clause, rationale, claimed_at, decided_at, time_spent_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING review_id",
                (s.idempotency_key, request_digest(reviewer.name, s.item_id, s.labels, s.action, s.policy_clause,
                                                   s.rationale),
                 s.item_id, reviewer.name, kind, json.dumps(s.labels), s.action, s.policy_clause,
                 s.rationale, claim["claimed_at"] if claim else None, now, s.time_spent_ms))["review_id"]
            self._run("DELETE FROM claims WHERE item_id = ? AND reviewer = ?", (s.item_id, reviewer.name))
            status = self._advance(item, kind, s, now)
        return {"review_id": int(review_id), "item_id": s.item_id, "item_status": status, "duplicate": False}

    def _claims_by_others(self, item: Mapping[str, Any], reviewer: Reviewer) -> int:
        return int(self._one("SELECT COUNT(*) AS n FROM claims WHERE item_id = ? AND reviewer <> ? AND expires_at >= ?",
                             (item["item_id"], reviewer.name, time.time()))["n"])

    @staticmethod
    def _kind(reviewer: Reviewer, item: Mapping[str, Any]) -> str:
        if item["status"] == "golden":
            return "golden"
        if item["status"] == "pending":
            return "review"
        if item["status"] == "adjudication":
            if not reviewer.is_admin:
                raise ReviewError(409, "item_closed", f"{item['item_id']} awaits adjudication by an admin")
            return "adjudication"
        raise ReviewError(409, "item_closed", f"{item['item_id']} is already resolved")

    def _advance(self, item: Mapping[str, Any], kind: str, s: Submission, now: float) -> str:
        """The item's next status after a review of ``kind``."""
        if kind == "golden":
            return "golden"
        if kind == "adjudication":
            self._run("UPDATE items SET status = 'resolved', resolved_labels = ?, resolved_action = ?, "
                      "resolved_by = 'adjudication', resolved_at = ? WHERE item_id = ?",
                      (json.dumps(s.labels), s.action, now, item["item_id"]))
            return "resolved"
        done = item["reviews_done"] + 1
        if done < item["required_reviews"]:
            self._run("UPDATE items SET reviews_done = ? WHERE item_id = ?", (done, item["item_id"]))
            return "pending"
        reviews = self._rows("SELECT labels, action FROM reviews WHERE item_id = ? AND kind = 'review'", (item["item_id"],))
        verdicts = {(r["action"], r["labels"]) for r in reviews}
        if len(verdicts) == 1:
            self._run("UPDATE items SET reviews_done = ?, status = 'resolved', resolved_labels = ?, resolved_action = ?, "
                      "resolved_by = 'unanimous', resolved_at = ? WHERE item_id = ?",
                      (done, json.dumps(s.labels), s.action, now, item["item_id"]))
            return "resolved"
        self._run("UPDATE items SET reviews_done = ?, status = 'adjudication', escalation = ? WHERE item_id = ?",
                  (done, f"{len(reviews)} reviews disagree", item["item_id"]))
        return "adjudication"

    def skip(self, reviewer: Reviewer, item_id: str) -> None:
        self.item(item_id)
        with self.db.write(self.conn):
            self._run("DELETE FROM claims WHERE item_id = ? AND reviewer = ?", (item_id, reviewer.name))
            self._run("INSERT INTO skips (item_id, reviewer, at) VALUES (?, ?, ?) ON CONFLICT (item_id, reviewer) DO NOTHING",
                      (item_id, reviewer.name, time.time()))

    def escalate(self, reviewer: Reviewer, item_id: str, note: str) -> None:
        """Sends an item to the adjudication queue (a reviewer unsure, or a case for policy)."""
        item = self.item(item_id)
        if item.status != "pending":
            raise ReviewError(409, "item_closed", f"{item_id} is {item.status}: only pending items can be escalated")
        with self.db.write(self.conn):
            self._run("DELETE FROM claims WHERE item_id = ? AND reviewer = ?", (item_id, reviewer.name))
            self._run("UPDATE items SET status = 'adjudication', escalation = ? WHERE item_id = ? AND status = 'pending'",
                      (f"escalated by {reviewer.name}: {note.strip()[:500]}" if note.strip() else f"escalated by {reviewer.name}",
                       item_id))

    # -- reading ----------------------------------------------------------------------------------
    def reviews(self, item_id: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        where, params = [], []
        if item_id is not None:
            where.append("item_id = ?")
            params.append(item_id)
        if since is not None:
            where.append("decided_at >= ?")
            params.append(since)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(f"SELECT * FROM reviews{clause} ORDER BY review_id", params)
        for row in rows:
            row["labels"] = _loads(row["labels"])
        return rows

    def items(self, status: str | None = None, batch: str | None = None) -> list[StoredItem]:
        where, params = [], []
        for column, value in (("status", status), ("batch", batch)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return [StoredItem.from_row(row)
                for row in self._rows(f"SELECT * FROM items{clause} ORDER BY created_at, item_id", params)]

    def labels_of(self, column: str, item_ids: Iterable[str] | None = None, status: str | None = None,
                  chunk: int = 500) -> dict[str, dict[str, int]]:
        """``resolved_labels`` or ``golden_labels`` of the given items (or of every item with ``status``)."""
        if column not in ("resolved_labels", "golden_labels"):
            raise ValueError(f"column: {column!r}")
        if item_ids is None:
            rows = self._rows(f"SELECT item_id, {column} AS labels FROM items WHERE status = ?", (status,))
        else:
            ids, rows = sorted(set(item_ids)), []
            for start in range(0, len(ids), chunk):
                part = ids[start:start + chunk]
                rows += self._rows(f"SELECT item_id, {column} AS labels FROM items WHERE item_id IN "
                                   f"({', '.join('?' for _ in part)})", part)
        return {r["item_id"]: _loads(r["labels"]) for r in rows if r["labels"] is not None}

    def adjudication_queue(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._rows("SELECT item_id, escalation, reviews_done, created_at FROM items WHERE status = 'adjudication' "
                          "ORDER BY priority DESC, created_at LIMIT ?", (limit,))

    def counts(self) -> dict[str, int]:
        rows = self._rows("SELECT status, COUNT(*) AS n FROM items GROUP BY status")
        counts = {s: 0 for s in ("pending", "adjudication", "resolved", "golden")}
        counts.update({r["status"]: int(r["n"]) for r in rows})
        return counts

    def pending_ages(self, now: float | None = None) -> list[float]:
        now = now or time.time()
        return [now - r["created_at"] for r in self._rows("SELECT created_at FROM items WHERE status IN ('pending', 'adjudication')")]

    def queued_ids(self) -> set[str]:
        return {r["item_id"] for r in self._rows("SELECT item_id FROM items")}

    def check_consistency(self) -> list[str]:
        """Problems in the stored state (an empty list when consistent), for tests and `tripwire queue check`."""
        problems = []
        if self.db.kind == "sqlite":
            status = self._one("PRAGMA integrity_check")
            if list(status.values())[0] != "ok":
                problems.append(f"sqlite integrity_check: {status}")
        for row in self._rows(
                "SELECT i.item_id, i.status, i.reviews_done, i.required_reviews, "
                "(SELECT COUNT(*) FROM reviews r WHERE r.item_id = i.item_id AND r.kind = 'review') AS n FROM items i"):
            if row["reviews_done"] != row["n"]:
                problems.append(f"{row['item_id']}: reviews_done {row['reviews_done']} but {row['n']} reviews stored")
            if row["n"] > row["required_reviews"]:
                problems.append(f"{row['item_id']}: {row['n']} reviews, more than the {row['required_reviews']} required")
            if row["status"] == "pending" and row["n"] >= row["required_reviews"]:
                problems.append(f"{row['item_id']}: pending with all {row['n']} reviews in")
        orphans = self._one("SELECT COUNT(*) AS n FROM reviews r WHERE NOT EXISTS "
                            "(SELECT 1 FROM items i WHERE i.item_id = r.item_id)")["n"]
        if orphans:
            problems.append(f"{orphans} reviews of items that do not exist")
        return problems


def open_configured_store(config: ReviewConfig) -> ReviewStore:
    """The store a review config names, over its taxonomy's categories and its policy's clauses."""
    from tripwire.policy import Policy, Taxonomy

    taxonomy, policy = Taxonomy.load(config.taxonomy), Policy.load(config.policy)
    policy.check_taxonomy(taxonomy)
    return ReviewStore(config.store, taxonomy.names, list(policy.categories), required_reviews=config.required_reviews,
                       claim_ttl_s=config.claim_ttl_s, golden_every=config.golden_every)


def open_store(url: str, categories: Sequence[str], clauses: Sequence[str] | None = None, **settings: Any) -> ReviewStore:
    """Opens (creating and migrating as needed) the review store at ``url``."""
    return ReviewStore(url, categories, clauses, **settings)

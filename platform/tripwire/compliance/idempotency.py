"""Idempotency keys (``request_id``) bound to the request they were first used with.

A repeated ``request_id`` gets the first answer again only when the request is the same: the key is stored
with a fingerprint of the request (sha256 over its fields, :func:`request_fingerprint`), in each ingress
replica's answer cache (:class:`AnswerCache`) and in the decision log's record (``request_hash``, checked by
:func:`logged_answer`), so every replica checks it. The same key with another request is refused
(:class:`RequestIdConflict`, HTTP 409), never answered: otherwise a client that once sent benign content
under a key would get that "allow" for any content sent later under it, and anyone could read another
caller's answer by guessing its key (now a guess only returns the answer to the content the guesser sent).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Mapping

from tripwire.moderation.result import ModerationResult

REQUEST_HASH = "request_hash"  # the decision log body's field holding the fingerprint


class RequestIdConflict(Exception):
    """A ``request_id`` already used with a different request (or whose first request cannot be checked)."""

    def __init__(self, request_id: str):
        super().__init__(f"request_id {request_id!r} was already used with a different request body; "
                         "use a new request_id for a different request")
        self.request_id = request_id


def request_fingerprint(fields: Mapping[str, Any]) -> str:
    """sha256 over a request's fields (names sorted; each value's type and length are hashed too, so no two
    different requests share a fingerprint by moving bytes between fields). Values: None, str, or any value
    whose ``repr`` is canonical (numbers, booleans)."""
    digest = hashlib.sha256()
    for name in sorted(fields):
        value = fields[name]
        digest.update(name.encode("utf-8") + b"\0")
        if value is None:
            digest.update(b"n")
            continue
        data = value.encode("utf-8") if isinstance(value, str) else repr(value).encode("utf-8")
        digest.update(b"s" if isinstance(value, str) else b"r")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


class AnswerCache:
    """``request_id`` -> (fingerprint, answer), least recently used dropped beyond ``size`` (0: keeps nothing)."""

    def __init__(self, size: int):
        self.size = size
        self._answers: OrderedDict[str, tuple[str, ModerationResult]] = OrderedDict()

    def get(self, request_id: str, fingerprint: str) -> ModerationResult | None:
        """The first answer to ``request_id`` if this request is the first one's; None if not cached.

        Raises:
            RequestIdConflict: ``request_id`` was first used with another request.
        """
        entry = self._answers.get(request_id)
        if entry is None:
            return None
        if entry[0] != fingerprint:
            raise RequestIdConflict(request_id)
        self._answers.move_to_end(request_id)
        return entry[1]

    def put(self, request_id: str, fingerprint: str, answer: ModerationResult) -> None:
        if self.size <= 0:
            return
        self._answers[request_id] = (fingerprint, answer)
        self._answers.move_to_end(request_id)
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)


def logged_answer(body: Mapping[str, Any], request_id: str, fingerprint: str) -> dict | None:
    """The answer a decision log record holds for ``request_id``, if it was logged for this same request.

    A record without a fingerprint (logged before requests were fingerprinted) cannot show that it is this
    request's: refused like a different one, since answering it would reopen the bypass.

    Raises:
        RequestIdConflict: the record is another request's (or unverifiable).
    """
    if body.get(REQUEST_HASH) != fingerprint:
        raise RequestIdConflict(request_id)
    answer = body.get("answer")
    return dict(answer) if answer is not None else None

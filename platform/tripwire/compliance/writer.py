"""Writing the decision log from the serving path: group commit, off the event loop, bounded.

:meth:`LogWriter.write` hands a record to a writer thread and awaits its commit: concurrent requests'
records go into one transaction (one fsync for up to ``batch_size`` of them), so the log costs a request
the wait for its batch's commit, not a transaction of its own, and the event loop keeps scoring others
meanwhile. An answer is sent only after its record is committed, so no answered decision is lost when a
replica is killed.

The scoring path never fails because of the log: when the log is slower than ``wait_s`` or down, the
answer goes out unconfirmed (counted in ``unconfirmed``; the record stays queued and is retried until it
is written). Back-pressure: when ``max_pending`` records wait, a new one waits for room (up to ``wait_s``),
then is dropped and counted (``dropped``), logged at most once a minute. ``close`` writes what is queued
(a replica's graceful shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from tripwire.compliance.decision_log import DecisionLog, LogRecord, canonical

logger = logging.getLogger(__name__)

RETRY_S = (0.05, 0.2, 1.0, 5.0)  # back-off between attempts while the log's database is unavailable
ROOM_POLL_S = 0.005


@dataclass
class _Pending:
    kind: str
    puid: str
    body: Mapping[str, Any]
    loop: asyncio.AbstractEventLoop | None
    future: "asyncio.Future[LogRecord] | None"


class LogWriter:
    """Appends to ``log`` from a thread, in batches; see the module docstring.

    Args:
        log: the decision log (the writer thread opens its own connection).
        max_pending: records held in memory, waiting for their commit, before writers wait for room.
        batch_size: records per transaction.
        wait_s: the most a request waits for its record's commit (or for room) before answering without it.
        checkpoint_key: sign the head every ``checkpoint_every`` records (None: no automatic checkpoints).
        on_outcome: called (on the caller's event loop) with each :meth:`write`'s outcome: ``logged``,
            ``unconfirmed``, ``dropped`` or ``rejected`` (a body that is not JSON without NaN; the ingress
            counts them in its metrics).
    """

    def __init__(self, log: DecisionLog, max_pending: int = 10_000, batch_size: int = 256, wait_s: float = 5.0,
                 checkpoint_key: bytes | None = None, checkpoint_every: int = 10_000,
                 on_outcome: Callable[[str], None] | None = None):
        if max_pending < 1 or batch_size < 1 or wait_s <= 0 or checkpoint_every < 1:
            raise ValueError("max_pending, batch_size and checkpoint_every must be >= 1 and wait_s > 0")
        self.log = log
        self.batch_size = batch_size
        self.wait_s = wait_s
        self.checkpoint_key = checkpoint_key
        self.checkpoint_every = checkpoint_every
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.pending: "queue.Queue[_Pending | None]" = queue.Queue(maxsize=max_pending)
        self.written = self.dropped = self.unconfirmed = self.retries = self.rejected = 0
        self._last_warning = 0.0
        self._thread = threading.Thread(target=self._drain, name="decision-log", daemon=True)
        self._thread.start()

    async def write(self, kind: str, puid: str, body: Mapping[str, Any]) -> LogRecord | None:
        """Queues one record and waits for its commit; returns the record logged for ``(kind, puid)`` (an
        earlier one when it was already logged), or None when it could not be confirmed within ``wait_s``."""
        loop = asyncio.get_running_loop()
        entry = _Pending(kind, puid, body, loop, loop.create_future())
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                self.pending.put_nowait(entry)
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    self._drop()
                    self.on_outcome("dropped")
                    return None
                await asyncio.sleep(ROOM_POLL_S)
        try:
            record = await asyncio.wait_for(asyncio.shield(entry.future), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            self.unconfirmed += 1
            self.on_outcome("unconfirmed")
            return None
        self.on_outcome("logged" if record is not None else "rejected")
        return record

    def write_nowait(self, kind: str, puid: str, body: Mapping[str, Any]) -> bool:
        """Queues one record without waiting for it (False, counted as dropped, when there is no room)."""
        try:
            self.pending.put_nowait(_Pending(kind, puid, body, None, None))
            return True
        except queue.Full:
            self._drop()
            return False

    def _drop(self) -> None:
        self.dropped += 1
        if time.monotonic() - self._last_warning > 60:
            self._last_warning = time.monotonic()
            logger.warning("decision log: %d record(s) dropped so far (%d waiting: the log is slower than the "
                           "traffic or unavailable)", self.dropped, self.pending.qsize())

    def _drain(self) -> None:
        while True:
            entry = self.pending.get()
            if entry is None:
                return
            batch = [entry]
            closing = False
            while len(batch) < self.batch_size:
                try:
                    extra = self.pending.get_nowait()
                except queue.Empty:
                    break
                if extra is None:
                    closing = True
                    break
                batch.append(extra)
            self._commit(batch)
            if closing:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        attempt = 0
        while batch:
            try:
                records = self.log.append([(e.kind, e.puid, e.body) for e in batch])
                break
            except Exception as exc:  # an outage must not kill the writer: the batch is kept and retried
                if isinstance(exc, (TypeError, ValueError)):  # a body that cannot be hashed (NaN): not an outage
                    loggable = self._loggable(batch)
                    if len(loggable) < len(batch):
                        batch = loggable
                        continue
                self.retries += 1
                logger.exception("decision log: %d record(s) not written yet to %s (attempt %d)", len(batch),
                                 self.log.url, attempt + 1)
                time.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                attempt += 1
        if not batch:
            return
        self.written += len(batch)
        for entry, record in zip(batch, records):
            if entry.future is not None:
                try:
                    entry.loop.call_soon_threadsafe(_resolve, entry.future, record)
                except RuntimeError:  # that request's event loop is gone (it stopped waiting); the record stands
                    pass
        if self.checkpoint_key is not None and records:
            last = records[-1].seq
            if last // self.checkpoint_every > (last - len(records)) // self.checkpoint_every:
                self.log.checkpoint(self.checkpoint_key)

    def _loggable(self, batch: list[_Pending]) -> list[_Pending]:
        """The entries whose bodies the log can hash (JSON without NaN); the others are rejected and counted,
        so one bad body cannot hold up the batch (retrying would never help it)."""
        good = []
        for entry in batch:
            try:
                canonical(entry.body)
                good.append(entry)
            except (TypeError, ValueError):
                self.rejected += 1
                logger.exception("decision log: record %s/%s rejected: its body is not JSON the log can hash",
                                 entry.kind, entry.puid)
                if entry.future is not None:
                    try:
                        entry.loop.call_soon_threadsafe(_resolve, entry.future, None)
                    except RuntimeError:
                        pass
        return good

    def close(self, timeout_s: float = 30.0) -> None:
        """Writes every queued record, then stops the thread."""
        self.pending.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.error("decision log: %d record(s) still unwritten after %.0f s", self.pending.qsize(), timeout_s)


def _resolve(future: "asyncio.Future[LogRecord | None]", record: LogRecord | None) -> None:
    if not future.done():
        future.set_result(record)

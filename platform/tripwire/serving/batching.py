"""Batch formation for ``@serve.batch`` methods whose work runs off the event loop.

Ray Serve's batch loop starts forming the next batch as soon as a first request arrives, whether or
not the running batch has finished, and then waits at most ``batch_wait_timeout_s`` for company. With
the forward pass in a thread (so the replica keeps accepting requests) and a wait of 0, every batch
holds the one request that happened to be first: measured in the Serve benchmark, the text encoder
ran batches of 1 at concurrency 32. A fixed wait instead taxes every request at low load.

:class:`BusyAwareBatchWait` sets the wait from what the replica is doing: while a batch runs, the next
one waits up to the expected run time (a moving average of recent batches), so it gathers whatever
arrives meanwhile and is ready when the running batch finishes; when nothing runs, the wait is the
configured one (0 by default), so a lone request never waits.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator


class BusyAwareBatchWait:
    """Adjusts a ``@serve.batch`` method's wait around each batch it runs.

    Args:
        batched_method: the bound ``@serve.batch`` method (has ``set_batch_wait_timeout_s``).
        idle_wait_s: the wait when no batch is running (the configured ``batch_wait_timeout_s``).
        max_wait_s: the longest a batch may wait while another runs, whatever the average says.
    """

    def __init__(self, batched_method: Any, idle_wait_s: float = 0.0, max_wait_s: float = 0.1):
        self.method = batched_method
        self.idle_wait_s = idle_wait_s
        self.max_wait_s = max_wait_s
        self.expected_run_s: float | None = None
        self.running_batches = 0
        self.method.set_batch_wait_timeout_s(idle_wait_s)

    @property
    def busy_wait_s(self) -> float:
        expected = self.expected_run_s if self.expected_run_s is not None else 0.0
        return min(self.max_wait_s, max(self.idle_wait_s, expected))

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Wrap a batch's work: batches that start forming meanwhile wait for company."""
        self.running_batches += 1
        self.method.set_batch_wait_timeout_s(self.busy_wait_s)
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.expected_run_s = elapsed if self.expected_run_s is None else 0.7 * self.expected_run_s + 0.3 * elapsed
            self.running_batches -= 1
            self.method.set_batch_wait_timeout_s(self.busy_wait_s if self.running_batches else self.idle_wait_s)

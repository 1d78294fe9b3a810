"""What enters the review queue: scan results (review candidates or active-learning picks) joined with
their manifest rows, as queue items (CONTRACT.md).

The manifest's labels never reach the queue (reviewers must not see an answer); for hidden golden items
they become the item's ``golden_labels``, which reviewers never see either.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterable, Mapping, Sequence

import fsspec

from tripwire.compliance.records import scan_puid
from tripwire.data.sample import manifest_base, read_manifest
from tripwire.moderation.result import ModerationResult
from tripwire.review.item import QueueItem

logger = logging.getLogger(__name__)


def manifest_rows(manifest: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The manifest rows of ``ids`` (streamed: memory holds only the rows asked for)."""
    wanted, rows = set(ids), {}
    for sample in read_manifest(manifest):
        if sample.id in wanted:
            rows[sample.id] = sample.to_row()
            if len(rows) == len(wanted):
                break
    return rows


def manifest_meta(manifest: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """id -> the ``meta`` of the manifest rows of ``ids`` (for sampling's ``reach_field``).

    Streams the manifest reading no media (Parquet: the id and meta columns only); memory holds the
    meta of the ids asked for. A row that does not parse is skipped: its scan quarantined it, so it has no
    score to sample.
    """
    wanted, found = {str(i) for i in ids}, {}

    def keep(row: Any) -> None:
        if isinstance(row, dict) and str(row.get("id")) in wanted:
            meta = row.get("meta")
            if isinstance(meta, str):  # Parquet manifests keep meta as JSON text
                try:
                    meta = json.loads(meta)
                except json.JSONDecodeError:
                    meta = None
            found.setdefault(str(row["id"]), dict(meta) if isinstance(meta, dict) else {})

    if str(manifest).endswith(".parquet"):
        import pyarrow.parquet as pq

        fs, path = fsspec.core.url_to_fs(manifest)
        for file in sorted(fs.glob(f"{path}/**/*.parquet")) if fs.isdir(path) else [path]:
            with fs.open(file, "rb") as handle:
                parquet = pq.ParquetFile(handle)
                columns = [c for c in ("id", "meta") if c in parquet.schema_arrow.names]
                for batch in parquet.iter_batches(columns=columns, batch_size=65536):
                    for row in batch.to_pylist():
                        keep(row)
        return found
    with fsspec.open(manifest, "r", encoding="utf-8") as handle:
        for line in handle:
            if len(found) == len(wanted):
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            keep(row)
    return found


def queue_items(rows: Sequence[Mapping[str, Any]], manifest: str, source: str, batch: str | None = None,
                priorities: Mapping[str, float] | None = None, golden: bool = False,
                scan_out: str | None = None) -> list[QueueItem]:
    """Scan result rows -> queue items with their sample (media by reference, labels removed).

    Args:
        rows: scan results rows (``read_results`` or ``read_review_candidates`` of :mod:`tripwire.scan.output`).
        manifest: the manifest the scan read (media references are resolved against its folder).
        source: the item's source (``scan``, ``sampling``, ``golden``).
        priorities: id -> priority (active learning's); default: the highest category score.
        golden: hidden golden items (the manifest's labels become ``golden_labels``).
        scan_out: the scan's output folder: each item's result names its decision's puid in the decision log
            (:func:`tripwire.compliance.records.scan_puid`), so the reviewers' outcome is logged against it.
    """
    if "://" not in manifest:  # the queue outlives the working directory: media resolve from anywhere
        manifest = os.path.abspath(manifest)
    samples = manifest_rows(manifest, [r["id"] for r in rows])
    missing = sorted({r["id"] for r in rows} - set(samples))
    if missing:
        raise FileNotFoundError(f"{len(missing)} scanned id(s) are not in {manifest} (first: {missing[0]})")
    items = []
    for row in rows:
        result = ModerationResult.from_row(row)
        if scan_out is not None:
            result = result.replace(puid=scan_puid(scan_out, row["id"]))
        sample = dict(samples[row["id"]])
        labels = sample.pop("labels", {}) or {}
        if golden and not labels:
            raise ValueError(f"{row['id']}: a golden item needs labels in {manifest}")
        priority = priorities.get(row["id"]) if priorities else None
        items.append(QueueItem(item_id=row["id"], source=source, sample=sample, result=result,
                               base_uri=manifest_base(manifest), priority=priority, batch=batch,
                               golden_labels=labels if golden else None))
    return items


def picked_items(rows: Sequence[Mapping[str, Any]], picks: Sequence[Any], manifest: str,
                 batch: str | None = None) -> list[QueueItem]:
    """Active-learning picks (:class:`tripwire.review.sampling.Pick`) of scan ``rows`` -> queue items, in the
    picks' order, each with its pick's priority."""
    by_id = {r["id"]: r for r in rows}
    return queue_items([by_id[p.item_id] for p in picks], manifest, "sampling", batch,
                       {p.item_id: p.priority for p in picks})


class BufferedEnqueuer:
    """Queues items from a latency-critical path (the Serve ingress) without ever blocking it.

    ``offer`` puts an item in a bounded in-memory buffer and returns at once; a writer thread drains it in
    batches of at most ``batch_size`` into the store. When the buffer holds ``max_buffered`` items or
    ``max_bytes`` of media and text, the item is dropped and counted (``dropped``), logged at most once a
    minute: scoring never waits on the review store. ``close`` flushes what is buffered (Serve calls it on
    a replica's graceful shutdown).

    Args:
        store: the review store (the writer thread uses its own connection).
        max_buffered: the most items held in memory.
        max_bytes: the most bytes of items' text and inline media held (a video sent inline is tens of MB).
        batch_size: items per write transaction.
    """

    def __init__(self, store, max_buffered: int = 1000, max_bytes: int = 256 * 2**20, batch_size: int = 64):
        import queue
        import threading

        self.store = store
        self.batch_size = batch_size
        self.max_bytes = max_bytes
        self.buffered_bytes = 0
        self._bytes_lock = threading.Lock()
        self.buffer: "queue.Queue[tuple[QueueItem, int] | None]" = queue.Queue(maxsize=max_buffered)
        self.enqueued = self.dropped = self.failed = 0
        self._last_warning = 0.0
        self._thread = threading.Thread(target=self._drain, name="review-enqueue", daemon=True)
        self._thread.start()

    def offer(self, item: QueueItem) -> bool:
        import queue
        import time

        size = item_bytes(item)
        try:
            with self._bytes_lock:
                if self.buffered_bytes + size > self.max_bytes:
                    raise queue.Full
                self.buffer.put_nowait((item, size))
                self.buffered_bytes += size
            return True
        except queue.Full:
            self.dropped += 1
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                logger.warning("review queue buffer full (%d items): %d item(s) dropped so far",
                               self.buffer.maxsize, self.dropped)
            return False

    def _drain(self) -> None:
        import queue

        while True:
            item = self.buffer.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.batch_size:
                try:
                    extra = self.buffer.get_nowait()
                except queue.Empty:
                    break
                if extra is None:
                    self._write(batch)
                    return
                batch.append(extra)
            self._write(batch)

    def _write(self, batch: list[tuple[QueueItem, int]]) -> None:
        sizes = [size for _, size in batch]
        try:
            self.store.enqueue([item for item, _ in batch])
            self.enqueued += len(batch)
        except Exception:  # a store outage must not kill the writer; the items are counted as failed
            self.failed += len(batch)
            logger.exception("review queue: %d item(s) could not be written to %s", len(batch), self.store.url)
        finally:
            with self._bytes_lock:
                self.buffered_bytes -= sum(sizes)

    def close(self, timeout_s: float = 10.0) -> None:
        """Writes what is buffered, then stops the writer (waits at most ``timeout_s``)."""
        if self._thread.is_alive():
            self.buffer.put(None)
            self._thread.join(timeout_s)


def item_bytes(item: QueueItem) -> int:
    """About how much memory a queue item holds: its sample's text and media strings, plus the result."""
    return 4096 + sum(len(v) for v in item.sample.values() if isinstance(v, (str, bytes)))


def serving_item(result: ModerationResult, sample_row: Mapping[str, Any]) -> QueueItem:
    """A served decision in the review band -> a queue item (the request's media kept as sent)."""
    return QueueItem(item_id=str(result.id), source="serving", sample=dict(sample_row), result=result)

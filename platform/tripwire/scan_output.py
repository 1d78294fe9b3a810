"""A scan's output: results as Parquet (partitioned by action), review candidates, resume and the summary.

Layout under the output URI (any fsspec URI)::

    results/action=<allow|review|restrict|block>/part-<token>.parquet   one row per item
    review_candidates/part-<token>.parquet                               the rows whose action is review
    quarantine/part-*.parquet                                            bad rows with their reason
    summary.json

A flush writes the review candidates first and its results files last, each file whole (written to a
temporary name and renamed on local disks; object stores publish a file only when it is closed), so
the results files are the record of what is done: a scan started again with the same output reads their
ids, skips those items, and drops any review file whose results never landed. Every id ends up in the
results exactly once.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
import uuid
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from tripwire.parquet_io import read_table
from tripwire.quarantine import quarantine_reasons, read_quarantine

logger = logging.getLogger(__name__)

RESULTS, REVIEW, QUARANTINE, SUMMARY = "results", "review_candidates", "quarantine", "summary.json"
PARTITION = "action"


def result_schema(categories: Sequence[str]) -> pa.Schema:
    """The columns of a results file (``action`` is the partition, so it lives in the path)."""
    reason = pa.struct([("category", pa.string()), ("score", pa.float64()), ("threshold", pa.float64()),
                        ("action", pa.string()), ("ground", pa.string())])
    return pa.schema([
        ("id", pa.string()),
        ("scores", pa.struct([(c, pa.float64()) for c in categories])),
        ("flagged", pa.list_(pa.string())),
        ("reasons", pa.list_(reason)),
        ("market", pa.string()),
        ("driven_by", pa.struct([(c, pa.string()) for c in categories])),
        ("attribution", pa.string()),  # JSON: category -> {driven_by, contributions}
        ("evidence", pa.string()),  # JSON: video_top_frames, audio_top_window
        ("modalities", pa.list_(pa.string())),
        ("model_version", pa.string()),
        ("policy_version", pa.string()),
        ("scanned_at", pa.timestamp("us", tz="UTC")),
        ("embedding", pa.list_(pa.float32())),  # the fused embedding (active learning); null when not kept
    ])


def result_rows(results: Iterable[Mapping[str, Any]], scanned_at: datetime.datetime) -> list[dict[str, Any]]:
    """Complete moderation results -> rows of the results table (plus their ``action``)."""
    rows = []
    for r in results:
        decision = r["decision"]
        rows.append({
            "id": r["id"], "scores": r["scores"], "flagged": r["flagged"], "reasons": decision["reasons"],
            "market": decision["market"], "action": decision["action"],
            "driven_by": {c: a["driven_by"] for c, a in r["attribution"].items()},
            "attribution": json.dumps(r["attribution"], sort_keys=True), "evidence": json.dumps(r["evidence"], sort_keys=True),
            "modalities": r["modalities"], "model_version": r["model_version"], "policy_version": r["policy_version"],
            "scanned_at": scanned_at, "embedding": r.get("embedding")})
    return rows


def row_to_result(row: Mapping[str, Any]) -> dict[str, Any]:
    """A results row (read back with its ``action`` partition) -> the moderation result it came from."""
    decision = {"action": row["action"], "reasons": list(row["reasons"]), "flagged": list(row["flagged"]),
                "policy_version": row["policy_version"], "market": row["market"]}
    return {"id": row["id"], "scores": dict(row["scores"]), "flagged": list(row["flagged"]), "decision": decision,
            "attribution": json.loads(row["attribution"]), "evidence": json.loads(row["evidence"]),
            "modalities": list(row["modalities"]), "model_version": row["model_version"],
            "policy_version": row["policy_version"]}


def read_results(out: str) -> list[dict[str, Any]]:
    """Every results row of a scan (for tests and small outputs; big ones: ``ray.data.read_parquet``)."""
    fs, path = fsspec.core.url_to_fs(out)
    rows = []
    for file in _parts(fs, f"{path}/{RESULTS}"):
        action = file.rsplit(f"{PARTITION}=", 1)[1].split("/", 1)[0]
        with fs.open(file, "rb") as handle:
            rows += [{**row, "action": action} for row in read_table(handle).to_pylist()]
    return rows


def read_review_candidates(out: str) -> list[dict[str, Any]]:
    """A scan's review-band rows (``review_candidates/``), with their ``action``."""
    fs, path = fsspec.core.url_to_fs(out)
    rows = []
    for file in _parts(fs, f"{path}/{REVIEW}"):
        with fs.open(file, "rb") as handle:
            rows += [{**row, "action": "review"} for row in read_table(handle).to_pylist()]
    return rows


def _parts(fs, folder: str) -> list[str]:
    return sorted(fs.glob(f"{folder}/**/part-*.parquet")) if fs.exists(folder) else []


def _token(file: str) -> str:
    return file.rsplit("part-", 1)[1].split(".", 1)[0]


def completed_ids(out: str) -> set[str]:
    """Ids a previous run of this scan already finished: its results and its quarantined rows.

    Also removes what a killed run left half-done: temporary files, and review candidates whose flush
    never wrote its results.
    """
    fs, path = fsspec.core.url_to_fs(out)
    for leftover in fs.glob(f"{path}/**/_tmp-*") if fs.exists(path) else []:
        fs.rm(leftover)
    done, tokens = set(), set()
    for file in _parts(fs, f"{path}/{RESULTS}"):
        tokens.add(_token(file))
        with fs.open(file, "rb") as handle:
            done.update(read_table(handle, columns=["id"]).column("id").to_pylist())
    for file in _parts(fs, f"{path}/{REVIEW}"):
        if _token(file) not in tokens:
            fs.rm(file)
    done.update(row["id"] for row in read_quarantine(f"{out.rstrip('/')}/{QUARANTINE}"))
    return done


class ScanWriter:
    """Buffers result rows and writes them in files of at most ``rows_per_file`` rows.

    Args:
        out: the scan's output URI.
        categories: the model's categories (the scores' struct fields).
        rows_per_file: rows per flush; the most this writer holds in memory.
    """

    def __init__(self, out: str, categories: Sequence[str], rows_per_file: int):
        self.fs, self.path = fsspec.core.url_to_fs(out)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        self.schema = result_schema(categories)
        self.rows_per_file = rows_per_file
        self.buffer: list[dict[str, Any]] = []
        self.written = 0

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.buffer.append(dict(row))
            if len(self.buffer) >= self.rows_per_file:
                self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        token = f"{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        review = [r for r in self.buffer if r[PARTITION] == "review"]
        if review:
            self._write(f"{self.path}/{REVIEW}", token, review)
        by_action: dict[str, list] = {}
        for row in self.buffer:
            by_action.setdefault(row[PARTITION], []).append(row)
        for action, rows in sorted(by_action.items()):
            self._write(f"{self.path}/{RESULTS}/{PARTITION}={action}", token, rows)
        self.written += len(self.buffer)
        self.buffer = []

    def _write(self, folder: str, token: str, rows: list[dict]) -> None:
        table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != PARTITION} for r in rows], schema=self.schema)
        self.fs.makedirs(folder, exist_ok=True)
        final = f"{folder}/part-{token}.parquet"
        target = f"{folder}/_tmp-{token}.parquet" if self.local else final
        with self.fs.open(target, "wb") as handle:
            pq.write_table(table, handle)
        if self.local:
            self.fs.mv(target, final)


class ScanSummary:
    """Counts of a scan as rows pass: items, actions, flagged categories."""

    def __init__(self, categories: Sequence[str]):
        self.items = 0
        self.actions: Counter = Counter()
        self.flagged: Counter = Counter({c: 0 for c in categories})
        self.first_batch: tuple[float, int] | None = None  # when the first results arrived, and how many
        self.last_at = 0.0

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        now = time.perf_counter()
        if self.first_batch is None:
            self.first_batch = (now, len(rows))
        self.last_at = now
        for row in rows:
            self.items += 1
            self.actions[row[PARTITION]] += 1
            self.flagged.update(row["flagged"])

    def steady_items_per_s(self) -> float | None:
        """Items/s from the first results to the last: the pipeline's rate once its actors are up."""
        if self.first_batch is None or self.last_at <= self.first_batch[0]:
            return None
        return (self.items - self.first_batch[1]) / (self.last_at - self.first_batch[0])

    def report(self, out: str, total: int, skipped: int, wall_s: float, extra: Mapping[str, Any]) -> dict[str, Any]:
        """The summary of this run (written to ``summary.json``); quarantine counts cover every run."""
        quarantined = read_quarantine(f"{out.rstrip('/')}/{QUARANTINE}")
        steady = self.steady_items_per_s()
        return {
            "manifest_items": total, "already_done": skipped, "scored": self.items,
            "actions": dict(sorted(self.actions.items())), "flagged": dict(self.flagged),
            "quarantined": len(quarantined), "quarantine_reasons": quarantine_reasons(quarantined),
            "wall_s": round(wall_s, 2), "items_per_s": round(self.items / wall_s, 2) if wall_s > 0 else None,
            "steady_items_per_s": round(steady, 2) if steady is not None else None,
            **extra}


def write_summary(out: str, summary: Mapping[str, Any]) -> str:
    fs, path = fsspec.core.url_to_fs(out)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/{SUMMARY}", "w") as handle:
        handle.write(json.dumps(summary, indent=2))
    return f"{out.rstrip('/')}/{SUMMARY}"

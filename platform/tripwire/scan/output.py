"""A scan's output: results as Parquet (partitioned by action), review candidates, resume and the summary.

Layout under the output URI (any fsspec URI)::

    results/action=<allow|review|restrict|block>/part-<token>.parquet   one row per item
    review_candidates/part-<token>.parquet                               the rows whose action is review
    quarantine/part-*.parquet                                            bad rows with their reason
    scan.json                                                            what the output is written with
    summary.json

A flush writes the review candidates first and its results files last, each file whole (written to a
temporary name and renamed on local disks; object stores publish a file only when it is closed), so
the results files are the record of what is done: a scan started again with the same output reads their
ids, skips those items, and drops any review file whose results never landed. Every id ends up in the
results exactly once.

``scan.json``, written before any result, records what the output is written with: the checkpoint (its
version and the sha256 of its manifest), the policy (version and the sha256 of its content), the manifest
and the market. A scan resumes only into an output written with the same ones (:func:`prepare_output`);
anything else would mix two models' or policies' decisions in one output.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
import uuid
from collections import Counter
from typing import Any, Iterable, Iterator, Mapping, Sequence

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from tripwire.common.config import ConfigError
from tripwire.storage.parquet import read_table
from tripwire.data.quarantine import quarantine_reasons, read_quarantine
from tripwire.data.rows import quarantine_row
from tripwire.data.sample import to_records
from tripwire.moderation.result import ModerationResult

logger = logging.getLogger(__name__)

RESULTS, REVIEW, QUARANTINE, SUMMARY = "results", "review_candidates", "quarantine", "summary.json"
RECORD = "scan.json"
# What must match for a scan to resume into an output, and how a mismatch is named.
RECORD_FIELDS = {"checkpoint": ("version", "sha256"), "policy": ("version", "sha256"), "manifest": None, "market": None}
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


def result_rows(results: Iterable[ModerationResult], scanned_at: datetime.datetime) -> list[dict[str, Any]]:
    """Complete moderation results -> rows of the results table (plus their ``action``)."""
    return [result.to_row(scanned_at) for result in results]


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


def manifest_ids(manifest: str) -> Iterator[str]:
    """The id under which each manifest row is scanned and recorded: its ``id`` (as :func:`to_records` gives
    it), or for a line that is not a JSON object with one, the content id its quarantine row gets. Reads
    only ids (the Parquet id column; JSONL lines streamed), never media."""
    if manifest.endswith(".parquet"):
        import pyarrow.parquet as pq

        fs, path = fsspec.core.url_to_fs(manifest)
        for file in sorted(fs.glob(f"{path}/**/*.parquet")) if fs.isdir(path) else [path]:
            with fs.open(file, "rb") as handle:
                for batch in pq.ParquetFile(handle).iter_batches(columns=["id"], batch_size=65536):
                    yield from to_records([{"id": i} for i in batch.column("id").to_pylist()])["id"]
        return
    with fsspec.open(manifest, "r", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = line.rstrip("\n")
                [row_id] = to_records([record])["id"]
                yield row_id or quarantine_row("", record, ValueError())["id"]


def count_pending(manifest: str, done: set[str]) -> tuple[int, int]:
    """``(rows, rows whose id is not in done)`` of the manifest: what a scan resuming into an output with the
    ids ``done`` has left to score (by id, not by count: the manifest may have grown or changed)."""
    rows = pending = 0
    for row_id in manifest_ids(manifest):
        rows += 1
        pending += row_id not in done
    return rows, pending


def read_record(out: str) -> dict[str, Any] | None:
    """What the output at ``out`` was written with (``scan.json``), or None when it has no record."""
    fs, path = fsspec.core.url_to_fs(out)
    if not fs.exists(f"{path}/{RECORD}"):
        return None
    try:
        with fs.open(f"{path}/{RECORD}", "r") as handle:
            record = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"out: {out}/{RECORD} is unreadable ({exc}); pass --restart to start the scan over, "
                          "or choose another --out") from None
    if not isinstance(record, dict):
        raise ConfigError(f"out: {out}/{RECORD} is not a JSON object; pass --restart to start the scan over")
    return record


def _describe(field: str, value: Any) -> str:
    if isinstance(value, Mapping):
        digest = f" (sha256 {str(value.get('sha256'))[:12]})" if value.get("sha256") else ""
        return f"{value.get('version')}{digest}"
    return "none" if value is None else str(value)


def record_differences(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """The fields of :data:`RECORD_FIELDS` in which two records differ, each as ``"field: old there, new now"``."""
    differences = []
    for field, keys in RECORD_FIELDS.items():
        old, new = recorded.get(field), wanted.get(field)
        if keys is not None:
            same = all((old or {}).get(k) == (new or {}).get(k) for k in keys)
        else:
            same = old == new
        if not same:
            differences.append(f"{field} {_describe(field, old)} there, {_describe(field, new)} now")
    return differences


def _written_versions(fs, path: str) -> set[tuple[str, str]]:
    """The (model_version, policy_version) pairs of the results rows under ``path`` (an output without a record)."""
    pairs = set()
    for file in _parts(fs, f"{path}/{RESULTS}"):
        with fs.open(file, "rb") as handle:
            table = read_table(handle, columns=["model_version", "policy_version"])
        pairs.update(zip(table.column("model_version").to_pylist(), table.column("policy_version").to_pylist()))
    return pairs


def clear_output(out: str) -> None:
    """Removes what a scan writes under ``out`` (results, review candidates, quarantine, record, summary) and
    nothing else."""
    fs, path = fsspec.core.url_to_fs(out)
    for name in (RESULTS, REVIEW, QUARANTINE, RECORD, SUMMARY):
        if fs.exists(f"{path}/{name}"):
            fs.rm(f"{path}/{name}", recursive=True)


def prepare_output(out: str, written_with: Mapping[str, Any], restart: bool = False) -> None:
    """Makes ``out`` ready for a scan written with ``written_with`` (the fields of :data:`RECORD_FIELDS`).

    A new output gets the record. One already written with the same checkpoint, policy, manifest and
    market resumes. Anything else is refused, naming what differs, unless ``restart`` clears it first. An
    output from before records were kept (results, no ``scan.json``) resumes when its rows' model and policy
    versions are the ones given (all it can show), and gets the record.

    Raises:
        ConfigError: ``out`` was written with something else (or its record is unreadable).
    """
    fs, path = fsspec.core.url_to_fs(out)
    if restart:
        logger.info("scan: starting %s over (--restart): its earlier results are removed", out)
        clear_output(out)
    recorded = read_record(out)
    if recorded is not None:
        differences = record_differences(recorded, written_with)
        if differences:
            fields = ", ".join(d.split(" ", 1)[0] for d in differences)
            raise ConfigError(f"out: {out} was scanned with a different {fields} ({'; '.join(differences)}); "
                              "resuming into it would mix their decisions: pass --restart to start it over (its "
                              "results are removed) or choose another --out")
        return
    versions = _written_versions(fs, path) if fs.exists(path) else set()
    wanted = (written_with["checkpoint"]["version"], written_with["policy"]["version"])
    others = sorted(v for v in versions if tuple(v) != wanted)
    if others:
        raise ConfigError(f"out: {out} holds results of model/policy {others[0][0]} / {others[0][1]}, not "
                          f"{wanted[0]} / {wanted[1]}; resuming into it would mix their decisions: pass --restart "
                          "to start it over (its results are removed) or choose another --out")
    if versions:
        logger.warning("scan: %s has no %s (written before outputs recorded their inputs); resuming it since its "
                       "results are of model %s and policy %s", out, RECORD, *wanted)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/{RECORD}", "w") as handle:
        handle.write(json.dumps(dict(written_with), indent=2, sort_keys=True))


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


def scan_manifest(scan_out: str) -> str:
    """The manifest a scan read (from its summary)."""
    with fsspec.open(f"{scan_out.rstrip('/')}/{SUMMARY}", "r") as handle:
        summary = json.load(handle)
    if not summary.get("manifest"):
        raise FileNotFoundError(f"{scan_out}/{SUMMARY} does not name its manifest: pass --manifest")
    return summary["manifest"]

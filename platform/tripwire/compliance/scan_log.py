"""A scan's decisions into the decision log, from its output (after the scan, or later for an old scan).

The scan's enforcement decisions (every action but ``allow``; ``include_allowed`` adds those) are appended
with the puid :func:`tripwire.compliance.records.scan_puid` gives (so a scan logged twice, or resumed, logs
nothing twice) and ``source: scan`` (proactive detection).

Memory: the ids and metadata of the logged decisions (not their results), plus one results file's rows
(``rows_per_file`` of the scan) at a time. The content hash needs each logged item's media read once more.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import fsspec

from tripwire.compliance.parquet_log import ParquetDecisionLog
from tripwire.compliance.records import DECISION, decision_body, scan_puid
from tripwire.compliance.decision_log import DecisionLog
from tripwire.storage.parquet import read_table
from tripwire.policy import Policy
from tripwire.data.sample import MEDIA_FIELDS, content_digest_of, manifest_base, read_manifest
from tripwire.moderation.result import ModerationResult
from tripwire.scan.output import PARTITION, RESULTS, scan_manifest

logger = logging.getLogger(__name__)

APPEND_BATCH = 500


def _result_files(out: str, include_allowed: bool) -> Iterator[tuple[str, str]]:
    fs, path = fsspec.core.url_to_fs(out)
    folder = f"{path}/{RESULTS}"
    for file in sorted(fs.glob(f"{folder}/**/part-*.parquet")) if fs.exists(folder) else []:
        action = file.rsplit(f"{PARTITION}=", 1)[1].split("/", 1)[0]
        if include_allowed or action != "allow":
            yield file, action


def _content(manifest: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    """id -> the content hash, types, language and date of the wanted items (one pass over the manifest)."""
    base, found = manifest_base(manifest), {}
    for sample in read_manifest(manifest):
        if sample.id not in ids:
            continue
        media = {m: getattr(sample, m) for m in MEDIA_FIELDS if getattr(sample, m) is not None}
        found[sample.id] = {"content_hash": content_digest_of(sample.text, media, base),
                            "content_types": (["text"] if sample.text else []) + sorted(media),
                            "language": sample.meta.get("language"), "content_date": sample.meta.get("content_date")}
        if len(found) == len(ids):
            break
    return found


def log_scan(out: str, log: DecisionLog | ParquetDecisionLog, policy: Policy | None = None,
             include_allowed: bool = False) -> int:
    """Appends a scan's decisions to ``log`` (the database's, or a Parquet log); returns how many records are
    new (with no other writer meanwhile)."""
    fs, _ = fsspec.core.url_to_fs(out)
    files = list(_result_files(out, include_allowed))
    ids: set[str] = set()
    for file, _ in files:
        with fs.open(file, "rb") as handle:
            ids.update(read_table(handle, columns=["id"]).column("id").to_pylist())
    manifest = scan_manifest(out)
    content = _content(manifest, ids)
    known = log.head()[0]
    entries = []
    for file, action in files:
        with fs.open(file, "rb") as handle:
            rows = read_table(handle).to_pylist()
        for row in rows:
            result = ModerationResult.from_row({**row, "action": action})
            item = content.get(row["id"])
            if item is None:
                raise LookupError(f"{row['id']}: scanned but not in the scan's manifest {manifest}")
            at = row["scanned_at"].timestamp()
            body = decision_body(result, source="scan", policy=policy, detected_at=at, decided_at=at, **item)
            entries.append((DECISION, scan_puid(out, row["id"]), body))
            if len(entries) >= APPEND_BATCH:
                log.append(entries)
                entries = []
    if entries:
        log.append(entries)
    added = log.head()[0] - known  # appends of already-logged (kind, puid)s add nothing
    logger.info("decision log: %d decision(s) of scan %s appended (%d already there)", added, out, len(ids) - added)
    return added

"""Reviewed items -> a versioned training snapshot (``tripwire feedback export``).

A snapshot is a folder ``<out>/feedback-v<N>/`` holding

* ``manifest.jsonl``: one row per item in the sample contract (media by absolute reference, never
  copied), labelled by the reviewers;
* ``provenance.jsonl``: per item and category, where the label came from (``adjudication``,
  ``unanimous``, ``majority 2/3``) and the reviews behind it;
* ``snapshot.json``: version, sha256 of the manifest, counts, and what was left out and why.

Only items with all their reviews count (resolved, or awaiting adjudication). Each label is resolved on
its own: an admin's adjudication wins, else the reviews' strict majority; a tie leaves the label unknown
(the training loss masks unknown labels). An item with no resolved label is left out. Items are de-duplicated by content (text + media bytes), and an item whose content matches any item
of a registered golden set is left out, so feedback never leaks into what the model is measured on.
Exporting the same reviews again writes no new version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tripwire.evaluation.golden import load_catalogue, manifest_uri
from tripwire.review.item import StoredItem
from tripwire.data.sample import (MEDIA_FIELDS, Sample, content_digest_of, manifest_base, read_manifest,
                             resolve_uri)

logger = logging.getLogger(__name__)

SNAPSHOT, MANIFEST, PROVENANCE = "snapshot.json", "manifest.jsonl", "provenance.jsonl"


def content_hash(sample: Mapping[str, Any], base_uri: str | None) -> str:
    """sha256 of an item's content (:func:`tripwire.data.sample.content_digest`), reading its media."""
    return content_digest_of(sample.get("text"), {field: sample.get(field) for field in MEDIA_FIELDS}, base_uri)


def golden_hashes(catalogue: str | None = None) -> dict[str, str]:
    """Content hash -> ``name@version`` over every item of every registered golden set."""
    hashes: dict[str, str] = {}
    for golden in load_catalogue(catalogue).sets:
        manifest = manifest_uri(golden, catalogue)
        for sample in read_manifest(manifest):
            hashes.setdefault(content_hash(sample.to_row(), manifest_base(manifest)), golden.ref)
    return hashes


@dataclass(frozen=True)
class ResolvedLabel:
    value: int | None
    provenance: str


def resolve_labels(reviews: Sequence[Mapping[str, Any]], categories: Sequence[str]) -> dict[str, ResolvedLabel]:
    """Per category: the adjudication's label, else the strict majority of the ordinary reviews."""
    adjudications = [r for r in reviews if r["kind"] == "adjudication"]
    ordinary = [r for r in reviews if r["kind"] == "review"]
    resolved = {}
    for category in categories:
        if adjudications:
            resolved[category] = ResolvedLabel(int(adjudications[-1]["labels"].get(category, 0)), "adjudication")
            continue
        votes = Counter(int(r["labels"].get(category, 0)) for r in ordinary)
        total = sum(votes.values())
        if not total:
            resolved[category] = ResolvedLabel(None, "no reviews")
            continue
        (top, count), *rest = votes.most_common()
        if rest and rest[0][1] == count:
            resolved[category] = ResolvedLabel(None, f"tie {count}/{total}")
        else:
            resolved[category] = ResolvedLabel(top, "unanimous" if count == total else f"majority {count}/{total}")
    return resolved


def _absolute(sample: Mapping[str, Any], base_uri: str | None) -> dict[str, Any]:
    row = dict(sample)
    for field in MEDIA_FIELDS:
        ref = row.get(field)
        if isinstance(ref, str) and ref and not ref.startswith("data:"):
            row[field] = resolve_uri(ref, base_uri)
    return row


def _versions(out: Path) -> list[int]:
    return sorted(int(p.name.rsplit("-v", 1)[1]) for p in out.glob("feedback-v*") if p.name.rsplit("-v", 1)[1].isdigit())


def export_feedback(items: Iterable[StoredItem], reviews: Iterable[Mapping[str, Any]],
                    categories: Sequence[str], out: str | Path, store_url: str,
                    catalogue: str | None = None) -> dict[str, Any]:
    """Writes the next snapshot version under ``out`` (or finds the existing one with the same content).

    Args:
        items: the store's items (:meth:`ReviewStore.items`); golden items are never exported.
        reviews: the store's reviews (:meth:`ReviewStore.reviews`).
        categories: the taxonomy's categories.
        out: the folder holding ``feedback-v<N>/`` snapshots.
        store_url: recorded in ``snapshot.json``.
        catalogue: the golden-set catalogue whose items must not be exported.

    Returns:
        ``snapshot.json``'s content plus ``path`` and ``new`` (False when the last version already holds it).
    """
    by_item: dict[str, list[Mapping[str, Any]]] = {}
    for review in reviews:
        by_item.setdefault(review["item_id"], []).append(review)
    golden = golden_hashes(catalogue)
    left_out: Counter = Counter()
    overlaps: dict[str, str] = {}
    seen: dict[str, str] = {}
    rows, provenance = [], []
    for item in sorted(items, key=lambda i: i.item_id):
        if item.status == "golden":
            continue
        item_reviews = by_item.get(item.item_id, [])
        if not item_reviews:
            left_out["not reviewed"] += 1
            continue
        if item.status == "pending":  # fewer reviews than it needs: one reviewer's word is not a label yet
            left_out["awaiting reviews"] += 1
            continue
        resolved = resolve_labels(item_reviews, categories)
        labels = {c: r.value for c, r in resolved.items() if r.value is not None}
        if not labels:
            left_out["no resolved label (ties)"] += 1
            continue
        sample = _absolute(item.sample, item.item.base_uri)
        digest = content_hash(sample, None)
        if digest in golden:
            left_out["in a golden set"] += 1
            overlaps[item.item_id] = golden[digest]
            continue
        if digest in seen:
            left_out["duplicate content"] += 1
            continue
        seen[digest] = item.item_id
        row = Sample.from_row({**{k: v for k, v in sample.items() if k != "labels"}, "id": item.item_id,
                               "labels": labels}).to_row()
        row["meta"] = {**row["meta"], "source": row["meta"].get("source") or "review"}
        rows.append(row)
        provenance.append({"id": item.item_id, "content_sha256": digest, "item_source": item.source,
                           "labels": {c: {"value": r.value, "from": r.provenance} for c, r in resolved.items()},
                           "reviews": [{"review_id": int(r["review_id"]), "reviewer": r["reviewer"], "kind": r["kind"],
                                        "action": r["action"], "decided_at": r["decided_at"]} for r in item_reviews]})
    body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    sha256 = hashlib.sha256(body.encode()).hexdigest()
    out = Path(out)
    versions = _versions(out)
    if versions:
        last = out / f"feedback-v{versions[-1]}"
        previous = json.loads((last / SNAPSHOT).read_text())
        if previous["sha256"] == sha256:
            return {**previous, "path": str(last / MANIFEST), "new": False}
    version = (versions[-1] + 1) if versions else 1
    folder = out / f"feedback-v{version}"
    folder.mkdir(parents=True, exist_ok=False)
    (folder / MANIFEST).write_text(body)
    (folder / PROVENANCE).write_text("".join(json.dumps(p, sort_keys=True) + "\n" for p in provenance))
    label_counts = {c: {"positive": sum(r["labels"].get(c) == 1 for r in rows),
                        "negative": sum(r["labels"].get(c) == 0 for r in rows)} for c in categories}
    snapshot = {"version": version, "sha256": sha256, "items": len(rows), "created_at": time.time(),
                "store": store_url, "labels": label_counts, "left_out": dict(left_out),
                "golden_overlaps": overlaps, "golden_sets_checked": sorted(set(golden.values()))}
    (folder / SNAPSHOT).write_text(json.dumps(snapshot, indent=2, sort_keys=True))
    logger.info("feedback snapshot v%d: %d items -> %s", version, len(rows), folder)
    return {**snapshot, "path": str(folder / MANIFEST), "new": True}

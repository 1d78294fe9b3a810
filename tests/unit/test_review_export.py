"""From decisions to data: label resolution, the versioned snapshot, de-duplication, no golden-set overlap,
and what enters the queue (scan rows joined with their manifest; the serving path's non-blocking buffer)."""

from __future__ import annotations

import datetime
import json
import threading

import pytest

from tripwire.evaluation.golden import register
from tripwire.policy import Taxonomy
from tripwire.review.export import content_hash, export_feedback, resolve_labels
from tripwire.review.intake import BufferedEnqueuer, queue_items
from tripwire.review.item import QueueItem
from tripwire.review.store import open_store
from tripwire.data.sample import Sample, read_manifest, write_manifest
from tripwire.moderation.result import ModerationResult
from tripwire.scan.output import ScanWriter, read_results, result_rows

CATEGORIES = Taxonomy.load().names


def review(kind, labels, reviewer="r"):
    return {"kind": kind, "labels": labels, "reviewer": reviewer}


def test_labels_resolve_by_adjudication_then_strict_majority():
    resolved = resolve_labels([review("review", {"hate": 1}), review("review", {"hate": 1}),
                               review("review", {"hate": 0, "sexual": 1})], ["hate", "sexual", "violence"])
    assert (resolved["hate"].value, resolved["hate"].provenance) == (1, "majority 2/3")
    assert (resolved["sexual"].value, resolved["sexual"].provenance) == (0, "majority 2/3")
    assert (resolved["violence"].value, resolved["violence"].provenance) == (0, "unanimous")
    tie = resolve_labels([review("review", {"hate": 1}), review("review", {})], ["hate"])
    assert tie["hate"].value is None and tie["hate"].provenance == "tie 1/2"
    adjudicated = resolve_labels([review("review", {"hate": 1}), review("review", {}), review("adjudication", {})], ["hate"])
    assert (adjudicated["hate"].value, adjudicated["hate"].provenance) == (0, "adjudication")


@pytest.fixture
def reviewed(tmp_path):
    """A store with five reviewed items: two share their content, one is in a golden set, one is a tie."""
    media = tmp_path / "media"
    media.mkdir()
    rows = [{"id": f"i{n}", "text": text, "meta": {"market": "DE"}} for n, text in
            enumerate(["alpha", "beta", "beta", "golden text", "tied"])]
    golden_manifest = tmp_path / "golden.jsonl"
    write_manifest([Sample.from_row({"id": "g1", "text": "golden text", "labels": {"hate": 1}})], str(golden_manifest))
    catalogue = str(tmp_path / "catalogue.yaml")
    register("held", str(golden_manifest), CATEGORIES, "test", "CC0", "hand", catalogue=catalogue)
    store = open_store(str(tmp_path / "review.db"), CATEGORIES, required_reviews=2, golden_every=0)
    store.enqueue([{"item_id": r["id"], "source": "sampling", "sample": r, "base_uri": str(media), "result": {}}
                   for r in rows] + [{"item_id": "hidden", "source": "golden", "sample": {"text": "qa"}, "result": {},
                                      "golden_labels": {"hate": 1}}])
    a, b = (store.authenticate(store.add_reviewer(n)) for n in ("a", "b"))
    for who in (a, b):
        for row in rows:
            tied = row["id"] == "i4"
            labels = {"hate": int(who is a)} if tied else {"hate": int(row["text"] != "alpha")}
            action = "restrict" if labels["hate"] else "allow"
            store.submit(who, store.check_submission({
                "item_id": row["id"], "labels": labels, "action": action, "policy_clause": "hate" if labels["hate"] else None,
                "rationale": "r", "idempotency_key": f"{who.name}-{row['id']}"}))
    yield store, catalogue
    store.close()


def test_the_snapshot_is_versioned_deduplicated_and_never_overlaps_a_golden_set(reviewed, tmp_path):
    store, catalogue = reviewed
    out = tmp_path / "feedback"
    first = export_feedback(store.items(), store.reviews(), CATEGORIES, out, store.url, catalogue)
    assert first["new"] and first["version"] == 1
    exported = {s.id: s for s in read_manifest(first["path"])}
    # i2 repeats i1's content; i3 is the golden set's item; the tie still has its other categories (all 0).
    assert set(exported) == {"i0", "i1", "i4"}
    assert first["left_out"] == {"duplicate content": 1, "in a golden set": 1}
    assert first["golden_overlaps"] == {"i3": "held@1"} and "hidden" not in exported
    assert exported["i1"].labels["hate"] == 1 and exported["i0"].labels["hate"] == 0
    assert "hate" not in exported["i4"].labels and exported["i4"].labels["sexual"] == 0  # the tie stays unknown
    provenance = {json.loads(line)["id"]: json.loads(line) for line in open(out / "feedback-v1" / "provenance.jsonl")}
    assert provenance["i4"]["labels"]["hate"]["from"] == "tie 1/2"
    assert provenance["i1"]["labels"]["hate"]["from"] == "unanimous" and len(provenance["i1"]["reviews"]) == 2
    again = export_feedback(store.items(), store.reviews(), CATEGORIES, out, store.url, catalogue)
    assert not again["new"] and again["version"] == 1  # the same reviews make no new version
    # An item with one of its two reviews is not exported yet.
    store.enqueue([{"item_id": "late", "source": "sampling", "sample": {"id": "late", "text": "late"}, "result": {}}])
    one = store.authenticate(store.add_reviewer("c"))
    store.submit(one, store.check_submission({"item_id": "late", "labels": {}, "action": "allow", "idempotency_key": "l"}))
    third = export_feedback(store.items(), store.reviews(), CATEGORIES, out, store.url, catalogue)
    assert not third["new"] and "late" not in {s.id for s in read_manifest(third["path"])}


def test_content_hash_reads_media_bytes_not_names(tmp_path):
    (tmp_path / "a.png").write_bytes(b"same bytes")
    (tmp_path / "b.png").write_bytes(b"same bytes")
    assert content_hash({"image": "a.png"}, str(tmp_path)) == content_hash({"image": "b.png"}, str(tmp_path))
    assert content_hash({"text": "x"}, None) != content_hash({"text": "y"}, None)


def test_scan_rows_become_queue_items_without_their_labels(tmp_path):
    manifest = tmp_path / "pool.jsonl"
    write_manifest([Sample.from_row({"id": f"p{i}", "text": f"t{i}", "labels": {"hate": i % 2}}) for i in range(3)],
                   str(manifest))
    scores = {c: 0.1 for c in CATEGORIES}
    result = {"id": "p1", "scores": scores, "flagged": [], "decision": {"action": "review", "reasons": [], "market": None,
                                                                          "flagged": [], "policy_version": "p"},
              "attribution": {}, "evidence": {}, "modalities": ["text"], "model_version": "m", "policy_version": "p"}
    writer = ScanWriter(str(tmp_path / "scan"), CATEGORIES, 10)
    writer.add(result_rows([ModerationResult.from_json(result)], datetime.datetime.now(datetime.timezone.utc)))
    writer.flush()
    [item] = queue_items(read_results(str(tmp_path / "scan")), str(manifest), "sampling", "round-1", {"p1": 0.7})
    assert item.sample["text"] == "t1" and "labels" not in item.sample and item.result.scores == scores
    assert item.priority == 0.7 and item.batch == "round-1" and item.golden_labels is None
    assert item.base_uri == str(tmp_path)
    [golden] = queue_items(read_results(str(tmp_path / "scan")), str(manifest), "golden", golden=True)
    assert golden.golden_labels == {"hate": 1} and golden.effective_priority == max(scores.values())


class SlowStore:
    """A store whose writes wait for a signal: the buffer must fill and drop, never block ``offer``."""

    url = "slow://"

    def __init__(self):
        self.release, self.items = threading.Event(), []

    def enqueue(self, items):
        self.release.wait(10)
        self.items += items


def test_the_serving_buffer_never_blocks_drops_when_full_and_flushes_on_close():
    store = SlowStore()
    enqueuer = BufferedEnqueuer(store, max_buffered=3, batch_size=2)
    accepted = [enqueuer.offer(QueueItem(str(i))) for i in range(10)]
    assert accepted.count(True) >= 3 and enqueuer.dropped == accepted.count(False) > 0
    store.release.set()
    enqueuer.close()
    assert len(store.items) == accepted.count(True) == enqueuer.enqueued and enqueuer.buffered_bytes == 0
    assert all(isinstance(item, QueueItem) for item in store.items)


def test_the_serving_buffer_bounds_bytes_too():
    store = SlowStore()
    enqueuer = BufferedEnqueuer(store, max_buffered=100, max_bytes=3 * 4096 + 3000, batch_size=1)
    # 4096 + 2000 bytes each
    accepted = [enqueuer.offer(QueueItem(str(i), sample={"video": "x" * 2000})) for i in range(5)]
    assert accepted.count(True) == 2 and enqueuer.dropped == 3  # the third would pass the byte bound
    store.release.set()
    enqueuer.close()
    assert enqueuer.buffered_bytes == 0 and len(store.items) == 2

"""Review store benchmark: 32 concurrent reviewers over HTTP, on SQLite and on PostgreSQL side by side.

For each backend, in one run on the same machine: a fresh store, the review app (``tripwire review-ui``,
``bench.reviewers.ReviewUI``) in a subprocess, and ``--clients`` reviewer threads (one
httpx client each) looping claim -> submit for ``--seconds``, ``--retry-rate`` of the submissions sent
again with the same idempotency key (a client retry). Figures: acknowledged reviews/s, p50/p99 claim and
submit latency, and the count check: every acknowledged review stored once (acknowledged == stored), every
retry a duplicate of its first answer, no reviewer reviewing an item twice, the store consistent.

The PostgreSQL store runs on a throwaway local server with its durable defaults (``fsync`` on; SQLite is
``synchronous=FULL``), started by ``tests/pg_server.py``; it is skipped, with the reason printed, where the
server is not installed (``make postgres``). On the 2-core benchmark machine the clients share the cores
with the app and the database: the figures are the whole stack's, not the database's alone.

    .venv/bin/python -m bench.bench_review_store [--seconds 20] [--clients 32] [--backends sqlite postgres]

Writes ``bench/results/review_store.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.reviewers import ReviewUI, make_items, random_review, write_review_settings

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
REQUIRED_REVIEWS = 2
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def run_backend(name: str, url: str, seconds: float, clients: int, retry_rate: float, directory: Path) -> dict:
    from tripwire.policy import Taxonomy
    from tripwire.review.store import open_store

    cats = Taxonomy.load().names
    store = open_store(url, cats, required_reviews=REQUIRED_REVIEWS, golden_every=0)
    tokens = {f"bench{i:02d}": store.add_reviewer(f"bench{i:02d}") for i in range(clients)}
    n_items = int(max(2000, seconds * 250))  # more than the run can review: the queue never drains
    store.enqueue(make_items(n_items, prefix="bench", seed=3))

    lock = threading.Lock()
    claim_s: list[float] = []
    submit_s: list[float] = []
    acked: dict[str, int] = {}  # idempotency key -> review_id
    retries = {"sent": 0, "duplicate_same_id": 0, "wrong": []}
    errors: Counter = Counter()
    samples: list[str] = []

    settings = write_review_settings(directory / "review_settings.yaml", required_reviews=REQUIRED_REVIEWS,
                                     golden_every=0)
    with ReviewUI(url, settings, directory / "review_server.log", START_TIMEOUT_S) as server:
        base = server.base
        start = threading.Barrier(clients + 1, timeout=60)
        stop_at = [0.0]

        def reviewer(who: str, token: str) -> None:
            rng = random.Random(who)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                              timeout=REQUEST_TIMEOUT_S) as client:
                client.get("/api/me")  # the connection is open before the clock starts
                start.wait()
                while time.monotonic() < stop_at[0]:
                    t0 = time.perf_counter()
                    got = client.post("/api/claim", json={})
                    t1 = time.perf_counter()
                    if got.status_code != 200:
                        errors[f"claim {got.status_code}"] += 1
                        samples.append(got.text[:300])
                        continue
                    item = got.json()["item"]
                    if item is None:
                        errors["queue empty"] += 1
                        time.sleep(0.05)
                        continue
                    body = random_review(item["item_id"], cats, rng)
                    sent = client.post("/api/reviews", json=body)
                    t2 = time.perf_counter()
                    with lock:
                        claim_s.append(t1 - t0)
                        submit_s.append(t2 - t1)
                    if sent.status_code != 201:
                        code = sent.json().get("error", {}).get("code") if sent.headers.get(
                            "content-type", "").startswith("application/json") else None
                        errors[f"submit {sent.status_code} {code}"] += 1
                        if len(samples) < 5:
                            samples.append(sent.text[:300])
                        continue
                    with lock:
                        acked[body["idempotency_key"]] = sent.json()["review_id"]
                    if rng.random() < retry_rate:
                        again = client.post("/api/reviews", json=body)
                        with lock:
                            retries["sent"] += 1
                            answer = again.json()
                            if again.status_code == 200 and answer.get("duplicate") is True and \
                                    answer.get("review_id") == acked[body["idempotency_key"]]:
                                retries["duplicate_same_id"] += 1
                            elif len(retries["wrong"]) < 5:
                                retries["wrong"].append([again.status_code, answer])

        threads = [threading.Thread(target=reviewer, args=item, daemon=True) for item in tokens.items()]
        for thread in threads:
            thread.start()
        stop_at[0] = time.monotonic() + 3600  # set for real once every client is connected
        start.wait()
        began = time.monotonic()
        stop_at[0] = began + seconds
        for thread in threads:
            thread.join(timeout=seconds + 2 * REQUEST_TIMEOUT_S)
        elapsed = time.monotonic() - began

    stored = store.reviews()
    by_key = Counter(r["idempotency_key"] for r in stored)
    pairs = Counter((r["item_id"], r["reviewer"]) for r in stored)
    stored_ids = {r["idempotency_key"]: r["review_id"] for r in stored}
    counts = {
        "acknowledged": len(acked), "stored": len(stored),
        "acknowledged_equals_stored": len(acked) == len(stored) and all(stored_ids.get(k) == v for k, v in acked.items()),
        "duplicate_keys": sum(n > 1 for n in by_key.values()),
        "reviewer_twice_on_an_item": sum(n > 1 for n in pairs.values()),
        "retries_sent": retries["sent"], "retries_answered_duplicate": retries["duplicate_same_id"],
        "consistency_problems": store.check_consistency()[:5],
        "items_resolved": store.counts()["resolved"], "items_adjudication": store.counts()["adjudication"],
    }
    counts["ok"] = (counts["acknowledged_equals_stored"] and not counts["duplicate_keys"]
                    and not counts["reviewer_twice_on_an_item"] and retries["sent"] == retries["duplicate_same_id"]
                    and not counts["consistency_problems"])
    store.close()
    return {"backend": name, "clients": clients, "seconds": round(elapsed, 2),
            "reviews_per_s": round(len(acked) / elapsed, 1),
            "submit_ms": {"p50": percentile(submit_s, 0.50), "p99": percentile(submit_s, 0.99)},
            "claim_ms": {"p50": percentile(claim_s, 0.50), "p99": percentile(claim_s, 0.99)},
            "requests": len(claim_s) * 2 + retries["sent"], "errors": dict(errors), "error_samples": samples[:5],
            "wrong_retry_answers": retries["wrong"], "count_check": counts}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per backend")
    parser.add_argument("--clients", type=int, default=32, help="concurrent reviewer clients")
    parser.add_argument("--retry-rate", type=float, default=0.1, help="share of submissions retried with the same key")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--out", default="review_store.json", help="file name under bench/results/")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    from pg_server import SKIP_REASON, create_database, find_postgres_bin, postgres_server

    report: dict = {"machine": f"{os.cpu_count()} CPU cores", "clients": args.clients, "seconds": args.seconds,
                    "required_reviews": REQUIRED_REVIEWS, "retry_rate": args.retry_rate, "backends": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            directory = Path(tmp) / backend
            directory.mkdir()
            print(f"{backend}: {args.clients} clients for {args.seconds:.0f}s ...", flush=True)
            if backend == "sqlite":
                report["backends"]["sqlite"] = run_backend("sqlite", f"sqlite:///{directory / 'review.db'}",
                                                           args.seconds, args.clients, args.retry_rate, directory)
            elif find_postgres_bin() is None:
                print(f"postgres: skipped: {SKIP_REASON}")
                report["backends"]["postgres"] = {"skipped": SKIP_REASON}
            else:
                with postgres_server() as server:
                    url = create_database(server, "review_bench")
                    report["backends"]["postgres"] = run_backend("postgres", url, args.seconds, args.clients,
                                                                 args.retry_rate, directory)

    print(f"\n{'backend':<10}{'reviews/s':>10}{'submit p50':>12}{'p99':>10}{'claim p50':>12}{'p99':>10}"
          f"{'acked':>8}{'stored':>8}{'dups':>6}{'check':>7}")
    for name, row in report["backends"].items():
        if "skipped" in row:
            print(f"{name:<10}skipped: {row['skipped']}")
            continue
        c = row["count_check"]
        print(f"{name:<10}{row['reviews_per_s']:>10}{row['submit_ms']['p50']:>10.1f}ms{row['submit_ms']['p99']:>8.0f}ms"
              f"{row['claim_ms']['p50']:>10.1f}ms{row['claim_ms']['p99']:>8.0f}ms{c['acknowledged']:>8}{c['stored']:>8}"
              f"{c['duplicate_keys']:>6}{'ok' if c['ok'] else 'FAIL':>7}")
        if row["errors"]:
            print(f"{'':<10}non-201 answers: {row['errors']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

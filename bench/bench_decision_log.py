"""The decision log's cost on the serving path: the Serve graph over HTTP with the log off and on, side by side.

Same model, items and load in one run, the configurations alternated (off, SQLite, PostgreSQL, off, ...) and
the best of each kept, so a noisy moment on a shared machine does not decide the ratio. With the log on,
every answer waits for its record's commit (group commit: concurrent requests share a transaction; SQLite
WAL with synchronous=FULL, or a local PostgreSQL server started by ``tests/pg_server.py``, skipped with the
reason where it is not installed), which is what makes an answered decision survive a killed replica.
Prints a table and writes ``bench/results/decision_log.json``.

    .venv/bin/python -m bench.bench_decision_log [--requests 192] [--concurrency 1 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path

from bench.bench_serving import _http_load, build_checkpoint, make_items, save_report, use_serve_settings


def run_config(checkpoint: str, items: list[dict], levels: list[int], port: int, log: str | None) -> dict:
    from ray import serve

    from deployments.app import build_app

    args = {"checkpoint": checkpoint, **({"decision_log": log} if log else {})}
    serve.run(build_app(args), name="bench", route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    asyncio.run(_http_load(url, items[:16], 4, "lean"))  # warm-up
    results = {c: asyncio.run(_http_load(url, items, c, "lean")) for c in levels}
    serve.delete("bench")
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=192)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=2, help="off/on alternations; the best of each is kept")
    parser.add_argument("--port", type=int, default=8124)
    args = parser.parse_args(argv)

    use_serve_settings()
    import ray
    from ray import serve

    from tripwire.compliance.decision_log import DecisionLog

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pg_server import SKIP_REASON, create_database, find_postgres_bin, postgres_server

    runs: dict[str, list[dict]] = {"off": [], "sqlite": [], "postgres": []}
    skipped = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        checkpoint = build_checkpoint(Path(tmp))
        items = make_items(args.requests, Path(tmp))
        server = stack.enter_context(postgres_server()) if find_postgres_bin() is not None else None
        if server is None:
            runs.pop("postgres")
            skipped["postgres"] = SKIP_REASON
        ray.init(num_cpus=2, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        for round_ in range(args.rounds):
            runs["off"].append(run_config(checkpoint, items, args.concurrency, args.port, None))
            stores = {"sqlite": str(Path(tmp) / f"log-{round_}.db")}
            if server is not None:
                stores["postgres"] = create_database(server, f"decision_log_{round_}")
            for name, url in stores.items():
                runs[name].append(run_config(checkpoint, items, args.concurrency, args.port, url))
                log = DecisionLog(url)
                logged, verified = log.head()[0], log.verify().ok
                log.close()
                expected = args.requests * len(args.concurrency) + 16
                assert logged == expected and verified, f"{name}: {logged} records (expected {expected}), verified {verified}"
        serve.shutdown()
        ray.shutdown()

    best = {name: {c: max((run[c] for run in rows), key=lambda r: r["throughput_rps"]) for c in args.concurrency}
            for name, rows in runs.items()}
    print(f"\n{'decision log':<14}{'conc':>5}{'rps':>9}{'p50 ms':>10}{'p99 ms':>10}")
    for name in best:
        for c, row in best[name].items():
            print(f"{name:<14}{c:>5}{row['throughput_rps']:>9}{row['p50_ms']:>10}{row['p99_ms']:>10}")
    for name, reason in skipped.items():
        print(f"{name:<14}skipped: {reason}")
    summary = {}
    for name in (n for n in best if n != "off"):
        for c in args.concurrency:
            summary[f"{name}_throughput_vs_off_at_{c}"] = round(best[name][c]["throughput_rps"]
                                                                / best["off"][c]["throughput_rps"], 3)
            summary[f"{name}_added_p50_ms_at_{c}"] = round(best[name][c]["p50_ms"] - best["off"][c]["p50_ms"], 2)
    report = {"machine": "2 CPU cores (CI kind)", "requests": args.requests, "mix": "text+image", "rounds": args.rounds,
              "stores": {"sqlite": "WAL, synchronous=FULL", "postgres": "local server, durable defaults (fsync on)"},
              "skipped": skipped, "best": best, "runs": runs, "summary": summary}
    save_report(report, "decision_log.json")
    return report


if __name__ == "__main__":
    main()

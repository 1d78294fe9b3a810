"""The human-review commands of ``tripwire``: ``review-ui``, ``queue``, ``feedback`` and ``loop``.

Each opens the review store named by ``--store`` or the review config (``deployments/configs/review/settings.yaml``;
default: SQLite at ``runs/review/review.db``), so one flag switches every command to PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def _config(args: argparse.Namespace):
    import dataclasses

    from tripwire.review.config import ReviewConfig

    config = ReviewConfig.load(args.config)
    if args.store:
        config = dataclasses.replace(config, store=args.store)
    if getattr(args, "decision_log", None):
        config = dataclasses.replace(config, decision_log=args.decision_log)
    return config


def open_configured_store(args: argparse.Namespace):
    """The store of ``--store`` / ``--config`` over the config's taxonomy and policy clauses."""
    from tripwire.review.store import open_configured_store

    config = _config(args)
    return config, open_configured_store(config)


def review_ui(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from tripwire.compliance.decision_log import DecisionLog
    from tripwire.review.app import create_app

    config, store = open_configured_store(args)
    log = DecisionLog(config.decision_log) if config.decision_log else None
    counts = store.counts()
    print(f"[review] store {store.url}: {counts['pending']} pending, {counts['adjudication']} in adjudication, "
          f"{counts['resolved']} resolved; {len(store.reviewers())} reviewer(s)", flush=True)
    if not store.reviewers():
        print("[review] no reviewers yet: `tripwire queue add-reviewer NAME --role admin` prints a token", flush=True)
    print(f"[review] reviewer app on http://{args.host}:{args.port}/ (Ctrl+C stops)", flush=True)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    try:
        uvicorn.run(create_app(store, config, log), host=args.host, port=args.port, log_level="warning")
    finally:
        store.close()
        if log is not None:
            log.close()
    return 0


def _budget(pairs: list[str] | None) -> dict[str, int]:
    from tripwire.common.config import ConfigError

    budget = {}
    for pair in pairs or []:
        category, _, count = pair.partition("=")
        if not count.isdigit():
            raise ConfigError(f"--budget: {pair!r} must be CATEGORY=COUNT")
        budget[category] = int(count)
    return budget


def queue(args: argparse.Namespace) -> int:
    from tripwire.common.config import ConfigError

    config, store = open_configured_store(args)
    try:
        if args.action == "add-reviewer":
            if not args.name:
                raise ConfigError("queue add-reviewer: NAME (--name) is required")
            token = store.add_reviewer(args.name, args.role, (args.days or config.token_ttl_days) * 86400.0)
            print(f"[queue] {args.role} {args.name}: token {token} (valid {args.days or config.token_ttl_days:g} days)")
            return 0
        if args.action == "revoke":
            if not args.name:
                raise ConfigError("queue revoke: NAME (--name) is required")
            ended = store.revoke(args.name)
            print(f"[queue] {args.name}: token revoked and {ended} signed-in session(s) ended; "
                  "`tripwire queue add-reviewer` issues a new token")
            return 0
        if args.action == "status":
            return _status(store)
        if args.action == "check":
            problems = store.check_consistency()
            print(f"[queue] {store.url}: " + ("consistent" if not problems else f"{len(problems)} problem(s)"))
            for problem in problems:
                print(f"  {problem}")
            return 1 if problems else 0
        if not args.scan:
            raise ConfigError(f"queue {args.action}: --scan is required")
        return _add(args, store) if args.action == "add" else _sample(args, store)
    finally:
        store.close()


def _status(store) -> int:
    counts = store.counts()
    ages = store.pending_ages()
    oldest = f"{max(ages) / 3600:.1f} h" if ages else "-"
    print(f"[queue] {store.url}: {counts['pending']} pending, {counts['adjudication']} in adjudication, "
          f"{counts['resolved']} resolved, {counts['golden']} golden; oldest open item {oldest}; "
          f"{len(store.reviews())} review(s) from {len(store.reviewers())} reviewer(s)")
    return 0


def _add(args: argparse.Namespace, store) -> int:
    from tripwire.review.intake import queue_items
    from tripwire.scan.output import scan_manifest
    from tripwire.scan.output import read_results, read_review_candidates

    manifest = args.manifest or scan_manifest(args.scan)
    rows = read_results(args.scan) if args.golden else read_review_candidates(args.scan)
    items = queue_items(rows, manifest, "golden" if args.golden else "scan", args.batch, golden=args.golden,
                        scan_out=None if args.golden else args.scan)
    new = store.enqueue(items)
    kind = "hidden golden item(s)" if args.golden else "review candidate(s)"
    print(f"[queue] {new} new {kind} from {args.scan} ({len(items) - new} already queued) -> {store.url}")
    return 0


def _sample(args: argparse.Namespace, store) -> int:
    from tripwire.model.checkpoint import CheckpointManifest
    from tripwire.common.config import ConfigError, from_dict
    from tripwire.policy import Policy
    from tripwire.review.intake import manifest_meta, picked_items
    from tripwire.scan.output import scan_manifest
    from tripwire.review.sampling import SamplingConfig, sample
    from tripwire.scan.output import read_results

    settings: dict[str, Any] = {"strategy": args.strategy, "seed": args.seed, "reach_field": args.reach_field,
                                "pool_factor": args.pool_factor}
    budget = _budget(args.budget)
    settings.update({"budget": budget} if budget else {"total": args.total})
    config = from_dict(SamplingConfig, {**settings, "exclude": sorted(store.queued_ids())}, "sampling")
    if not (args.policy or args.checkpoint):
        raise ConfigError("queue sample: pass --checkpoint (its policy's thresholds) or --policy")
    policy = CheckpointManifest.read(args.checkpoint).policy(args.policy) if args.checkpoint else Policy.load(args.policy)
    rows = read_results(args.scan)
    manifest = args.manifest or (scan_manifest(args.scan) if args.enqueue or config.reach_field
                                 or args.second_checkpoint else None)
    second = _second_scores(args, config.strategy, manifest)
    # Reach is each item's meta field (e.g. views) in the manifest the scan read; results carry no meta.
    meta = manifest_meta(manifest, (r["id"] for r in rows)) if config.reach_field else None
    picks = sample(rows, policy, config, second_scores=second, meta=meta)
    for pick in picks[:args.show]:
        print(f"  {pick.item_id:24s} {pick.category:24s} priority {pick.priority:.3f}  {pick.reason}")
    if len(picks) > args.show:
        print(f"  ... {len(picks) - args.show} more")
    if args.enqueue:
        items = picked_items(rows, picks, manifest, args.batch)
        print(f"[queue] {store.enqueue(items)} sampled item(s) queued ({config.strategy}) -> {store.url}")
    else:
        print(f"[queue] {len(picks)} pick(s) ({config.strategy}); add --enqueue to queue them")
    return 0


def _second_scores(args: argparse.Namespace, strategy: str, manifest: str | None) -> dict | None:
    """The second model's scores for ``--strategy disagreement``: from its scan (``--second-scan``), or from a
    scan of the same manifest with ``--second-checkpoint`` (into ``--second-out``; run again, it resumes)."""
    import hashlib

    from tripwire.common.config import ConfigError
    from tripwire.review.sampling import second_model_scores
    from tripwire.scan.output import read_results

    given = [flag for flag, value in (("--second-checkpoint", args.second_checkpoint),
                                      ("--second-scan", args.second_scan)) if value]
    if strategy != "disagreement":
        if given:
            raise ConfigError(f"queue sample: {given[0]} is used by --strategy disagreement only "
                              f"(the strategy is {strategy!r})")
        return None
    if len(given) != 1:
        raise ConfigError("queue sample: --strategy disagreement needs the second model: --second-checkpoint "
                          "(it scans the manifest now) or --second-scan (its scan of the same manifest), one of them")
    out = args.second_scan
    if args.second_checkpoint:
        from pipelines.scan import make_job, run
        from tripwire.model.checkpoint import CheckpointManifest

        second = CheckpointManifest.read(args.second_checkpoint)
        key = hashlib.sha256(json.dumps(second.raw, sort_keys=True, default=str).encode()).hexdigest()[:12]
        out = args.second_out or f"{args.scan.rstrip('/')}.second-{key}"
        print(f"[queue] scanning {manifest} with the second model {second.version} -> {out}", flush=True)
        run(make_job(args.second_checkpoint, manifest, out))
    rows = read_results(out)
    if not rows:
        raise ConfigError(f"queue sample: {out} holds no scan results of the second model")
    return second_model_scores(rows)


def feedback(args: argparse.Namespace) -> int:
    from tripwire.review.export import export_feedback
    from tripwire.storage.sql import redacted_url

    _, store = open_configured_store(args)
    try:
        snapshot = export_feedback(store.items(), store.reviews(), store.categories, args.out, redacted_url(store.url),
                                   args.catalogue)
    finally:
        store.close()
    state = "new snapshot" if snapshot["new"] else "unchanged since snapshot"
    print(f"[feedback] {state} v{snapshot['version']}: {snapshot['items']} item(s) -> {snapshot['path']}")
    print(f"[feedback]   left out: {snapshot['left_out'] or 'nothing'}; golden sets checked: "
          f"{snapshot['golden_sets_checked'] or 'none registered'}")
    return 0


def loop(args: argparse.Namespace) -> int:
    from pipelines.loop import load, run

    cfg = load(args.config, {"round": args.round, "reviews": args.reviews, "store": args.store})
    started = time.perf_counter()
    summary = run(cfg)
    if summary["stage"] == "awaiting_reviews":
        return 0
    print(f"[loop] {time.perf_counter() - started:.0f}s; macro figures: {json.dumps(summary['macro'])[:400]}")
    return 0 if summary["promoted"] in (True, None) else 1

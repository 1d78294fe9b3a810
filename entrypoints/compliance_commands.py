"""The decision log and compliance commands of ``tripwire``: ``audit`` and ``compliance``.

``audit`` keeps the log honest: ``verify`` the chain (and its signed checkpoints), ``checkpoint`` (sign and
print the head, for publishing), ``prune`` (retention), ``log-scan`` (a scan's decisions into the log).
``compliance`` reads it: ``sor`` (DSA statements of reasons), ``report`` (a transparency report),
``appeal`` (file a user's appeal), ``sync`` (log reviewer outcomes the reviewer app could not).

Every command takes ``--store``: the log's database (SQLite path or postgresql:// URL; by default the review
store's, ``runs/review/review.db``).
"""

from __future__ import annotations

import argparse
import os
import time

KEY_ENV = "TRIPWIRE_LOG_KEY"


def _store(args: argparse.Namespace) -> str:
    from tripwire.review.config import DEFAULT_STORE

    return args.store or DEFAULT_STORE


def _key(args: argparse.Namespace, required: bool) -> bytes | None:
    """The checkpoint signing key: ``--key-file``, else the TRIPWIRE_LOG_KEY environment variable."""
    from tripwire.common.config import ConfigError

    if getattr(args, "key_file", None):
        with open(args.key_file, "rb") as handle:
            key = handle.read().strip()
    else:
        key = os.environ.get(KEY_ENV, "").encode() or None
    if required and not key:
        raise ConfigError(f"a signing key is needed: --key-file PATH or the {KEY_ENV} environment variable")
    return key


def _head(value: str | None) -> tuple[int, str] | None:
    from tripwire.common.config import ConfigError

    if not value:
        return None
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise ConfigError(f"--head: {value!r} must be SEQ:SHA256 (as `tripwire audit checkpoint` prints it)")
    return int(seq), digest


def audit(args: argparse.Namespace) -> int:
    from tripwire.compliance.logs import open_log
    from tripwire.compliance.parquet_log import ParquetDecisionLog
    from tripwire.common.config import ConfigError
    from tripwire.storage.sql import redacted_url

    where = redacted_url(_store(args))
    log = open_log(_store(args))
    try:
        if isinstance(log, ParquetDecisionLog) and (args.action == "checkpoint" or getattr(args, "key_file", None)):
            raise ConfigError(f"{args.action}: a Parquet log has no signed checkpoints (publish its head; "
                              "verify it with --head)")
        if args.action == "verify":
            result = log.verify(_head(args.head), _key(args, required=False))
            if result.ok:
                print(f"[audit] {where}: OK, {result.checked} record(s); head {result.head[0]}:{result.head[1]}")
                return 0
            print(f"[audit] {where}: FAILED at record {result.first_bad}: {result.reason} "
                  f"({result.checked} record(s) before it verified)")
            return 1
        if args.action == "checkpoint":
            checkpoint = log.checkpoint(_key(args, required=True))
            print(f"[audit] {where}: checkpoint {checkpoint.seq}:{checkpoint.hash} signature {checkpoint.signature} "
                  "(publish SEQ:HASH; `tripwire audit verify --head SEQ:HASH` checks against it)")
            return 0
        if args.action == "prune":
            if args.retention_days is None or args.retention_days <= 0:
                raise ConfigError("prune: --retention-days N (> 0) is required")
            try:
                deleted = log.prune(time.time() - args.retention_days * 86400.0)
            except ValueError as exc:
                raise ConfigError(f"prune: {exc}") from None
            first = next(iter(log.records()), None)
            rest = f"the rest verifies from record {first.seq}" if first else "no record is left"
            print(f"[audit] {where}: {deleted} record(s) older than {args.retention_days:g} day(s) pruned; {rest}")
            return 0
        if args.action == "log-scan":
            from tripwire.compliance.scan_log import log_scan
            from tripwire.policy import Policy

            if not args.scan:
                raise ConfigError("log-scan: --scan OUT (a tripwire scan output folder) is required")
            policy = Policy.load(args.policy) if args.policy else None
            added = log_scan(args.scan, log, policy, include_allowed=args.include_allowed)
            print(f"[audit] {where}: {added} decision(s) of scan {args.scan} logged")
            return 0
    finally:
        log.close()
    raise ConfigError(f"audit: unknown action {args.action!r}")


def _period(args: argparse.Namespace) -> tuple[float, float]:
    from tripwire.compliance.cases import period
    from tripwire.common.config import ConfigError

    if not args.from_date or not args.to_date:
        raise ConfigError(f"{args.action}: --from YYYY-MM-DD and --to YYYY-MM-DD are required")
    try:
        return period(args.from_date, args.to_date)
    except ValueError as exc:
        raise ConfigError(f"--from/--to: {exc}") from None


def _review_store(args: argparse.Namespace):
    from tripwire.review.config import ReviewConfig
    from tripwire.review.store import open_configured_store

    import dataclasses

    config = ReviewConfig.load(args.config)
    return open_configured_store(dataclasses.replace(config, store=args.review_store or args.store or config.store))


def compliance(args: argparse.Namespace) -> int:
    from tripwire.compliance.parquet_log import is_parquet_log
    from tripwire.common.config import ConfigError
    from tripwire.compliance.decision_log import DecisionLog

    if args.action in ("sor", "report") and not args.out:
        raise ConfigError(f"{args.action}: --out DIR is required")
    url = _store(args)
    if is_parquet_log(url):
        raise ConfigError(f"--store: {url} is a Parquet log; give the database log as --store and Parquet logs "
                          "as --scan-log")
    scan_logs = list(args.scan_log or [])
    # sor and report open the logs they read themselves; appeal and sync append to this one.
    log = DecisionLog(url) if args.action in ("appeal", "sync") else None
    try:
        if args.action == "sor":
            from tripwire.compliance.dsa import DsaMapping
            from tripwire.compliance.statement_export import export_statements

            start, end = _period(args)
            summary = export_statements(url, start, end, args.out, DsaMapping.load(args.mapping), scan_logs)
            print(f"[compliance] statements of reasons {args.from_date}..{args.to_date}: {_sor_line(summary)} -> {args.out}")
            return 0
        if args.action == "report":
            from tripwire.compliance.report import report_from_log
            from tripwire.compliance.report_page import write_report

            start, end = _period(args)
            path = write_report(report_from_log(url, start, end, scan_logs), args.out)
            print(f"[compliance] transparency report {args.from_date}..{args.to_date} -> {path}")
            return 0
        if args.action == "appeal":
            from tripwire.compliance.appeals import AppealError, file_appeal

            if not args.puid or not args.statement:
                raise ConfigError("appeal: --puid and --statement are required")
            store = _review_store(args)
            try:
                filed = file_appeal(store, log, args.puid, args.statement)
            except AppealError as exc:
                raise ConfigError(f"appeal: {exc}") from None
            finally:
                store.close()
            state = "already filed" if filed["duplicate"] else "filed"
            print(f"[compliance] appeal of {args.puid} {state}: review item {filed['item_id']}")
            return 0
        if args.action == "sync":
            from tripwire.compliance.outcomes import sync_outcomes

            store = _review_store(args)
            try:
                added = sync_outcomes(store, log)
            finally:
                store.close()
            print(f"[compliance] {added} reviewer outcome(s) logged")
            return 0
    finally:
        if log is not None:
            log.close()
    raise ConfigError(f"compliance: unknown action {args.action!r}")


def _sor_line(summary: dict) -> str:
    return (f"{summary.get('exported', 0)} exported in {len(summary.get('files', []))} batch file(s), "
            f"{summary.get('skipped_already_exported', 0)} already exported")

"""Reading a window of moderation results for the drift monitor (:mod:`tripwire.monitoring.drift`).

A window is either

* a scan's output folder (``<out>/results/action=<action>/part-*.parquet``, see
  :mod:`tripwire.scan.output`; the action is the partition folder's name), or
* a JSONL file of results the HTTP API served, one JSON object per line as ``POST /v1/moderate`` answers
  (``{"id", "scores": {...}, "decision": {"action": ...}, "modalities": [...], ...}``); a line may also
  carry the action as a top-level ``action``. Compressed files (``.gz``, ...) are read as such.

Either may be any fsspec URI. Only what drift needs is kept, as rows ``{"id", "scores", "action",
"modalities"}``: from Parquet only the ``id``, ``scores`` and ``modalities`` columns are read. Memory is
O(items x categories) floats (plus each item's id and modality names).
"""

from __future__ import annotations

import json
import logging
import numbers
from typing import Any

import fsspec

from tripwire.common.config import ConfigError
from tripwire.monitoring.drift import row_action
from tripwire.storage.parquet import read_table
from tripwire.scan.output import PARTITION, RESULTS

logger = logging.getLogger(__name__)

_COLUMNS = ["id", "scores", "modalities"]


def read_window(uri: str) -> list[dict[str, Any]]:
    """The rows of one window: a scan output folder or a JSONL file of served results.

    Returns:
        Rows ``{"id", "scores" (category -> float or None), "action", "modalities" (list of names)}``.

    Raises:
        ConfigError: the path does not exist, a folder is not a scan output, or a JSONL line is not a
            result (naming the line number).
    """
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        raise ConfigError(f"{uri}: does not exist (expected a scan output folder or a JSONL file of results)")
    rows = _read_scan_output(uri, fs, path) if fs.isdir(path) else _read_jsonl(uri)
    logger.info("window %s: %d items", uri, len(rows))
    return rows


def _read_scan_output(uri: str, fs, path: str) -> list[dict[str, Any]]:
    folder = f"{path.rstrip('/')}/{RESULTS}"
    if not fs.isdir(folder):
        raise ConfigError(f"{uri}: is a folder but not a scan output (no {RESULTS}/ folder in it)")
    rows = []
    for file in sorted(fs.glob(f"{folder}/{PARTITION}=*/part-*.parquet")):
        action = file.rsplit(f"{PARTITION}=", 1)[1].split("/", 1)[0]
        with fs.open(file, "rb") as handle:
            table = read_table(handle, columns=_COLUMNS)
        for item_id, scores, modalities in zip(*(table.column(c).to_pylist() for c in _COLUMNS)):
            rows.append({"id": item_id, "scores": scores or {}, "action": action, "modalities": list(modalities or [])})
    return rows


def _read_jsonl(uri: str) -> list[dict[str, Any]]:
    rows = []
    with fsspec.open(uri, "rt", encoding="utf-8", compression="infer") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                result = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{uri}: line {number}: not JSON ({exc.msg})") from None
            rows.append(_result_row(result, uri, number))
    return rows


def _result_row(result: Any, uri: str, number: int) -> dict[str, Any]:
    where = f"{uri}: line {number}"
    if not isinstance(result, dict) or not isinstance(result.get("scores"), dict):
        raise ConfigError(f"{where}: not a moderation result (expected a JSON object with 'scores')")
    scores = result["scores"]
    for category, score in scores.items():
        if score is not None and (isinstance(score, bool) or not isinstance(score, numbers.Real)):
            raise ConfigError(f"{where}: scores.{category}: expected a number, got {score!r}")
    action = row_action(result)
    if action is None:
        raise ConfigError(f"{where}: no action (expected 'decision.action' or 'action')")
    modalities = result.get("modalities", [])
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        raise ConfigError(f"{where}: modalities: expected a list of names, got {modalities!r}")
    return {"id": result.get("id"), "scores": scores, "action": action, "modalities": modalities}

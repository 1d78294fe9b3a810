"""DSA statements of reasons (Art. 17, 24(5)) for the DSA Transparency Database, built from the decision log.

One statement per *enforced* case (:mod:`tripwire.compliance.cases`: the effective action, the reviewers'
where people decided, restricts the content), in the API's field names, filled through a
:class:`~tripwire.compliance.dsa.DsaMapping`:

* the decision fields come from the case's effective action (``restrict``, ``block``);
* ``category``, its keywords and the ``decision_ground`` with its texts come from the *acting reason*
  (:func:`acting_reason`): the strictest reason the policy gave, or for a decision people made, the
  strictest reason whose category the reviewers confirmed;
* ``automated_decision`` is FULLY when the model and policy decided, PARTIALLY when they referred the
  content to people who decided; detection is always automated and on Tripwire's own initiative.

Statements carry no content and no personal data (the API forbids it): the facts name model and policy
versions, categories, scores, thresholds and modalities, never the item, its author or the reviewers.

:func:`export_statements` writes the API's batch bodies (``{"statements": [...]}``, at most 100) as files
for a submitter, and records each exported puid in a ledger table, ``sor_exports``, in the log's database,
so a later export of an overlapping period skips them (the API rejects a reused puid).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import json
import logging
import os
import re
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import jsonschema
from referencing import Registry, Resource

from tripwire.compliance.cases import Case, cases, utc_date
from tripwire.compliance.dsa import (AUTOMATED_DECISION_FULLY, AUTOMATED_DECISION_PARTIALLY,
                                     DECISION_GROUND_ILLEGAL, EEA_COUNTRIES, MAX_DECISION_FACTS, MAX_EXPLANATION,
                                     SCHEMA_VERSION, DsaMapping, GroundMapping, fill)
from tripwire.compliance.logs import LogSet
from tripwire.compliance.parquet_log import is_parquet_log
from tripwire.compliance.records import DECISION
from tripwire.policy import default_resource
from tripwire.storage.sql import Tables

logger = logging.getLogger(__name__)

SCHEMA_FILE = "dsa_sor.schema.json"
MAX_BATCH = 100  # statements per POST /api/v1/statements
DEFAULT_GROUND = "terms_of_service"  # a policy rule's ground when it names none (tripwire.policy.CategoryRule)
MIN_CONTENT_DATE = datetime.date(2000, 1, 1)
MIN_APPLICATION_DATE = datetime.date(2020, 1, 1)
END_DATES = ("end_date_account_restriction", "end_date_monetary_restriction", "end_date_service_restriction",
             "end_date_visibility_restriction")
AUTOMATED_DECISIONS = {"fully": AUTOMATED_DECISION_FULLY, "partially": AUTOMATED_DECISION_PARTIALLY}
DECISION_FIELDS = ("decision_visibility", "decision_monetary", "decision_provision", "decision_account")
TRUNCATED = " [truncated]"
LEDGER_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS sor_exports (puid TEXT PRIMARY KEY, export_id TEXT NOT NULL, batch TEXT NOT NULL, "
    "exported_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sor_exports_by_batch ON sor_exports (batch)",
]
LEDGER_LOOKUP_CHUNK = 500  # puids per "IN (...)" query: far below SQLite's and PostgreSQL's parameter limits
BATCH_FILE = re.compile(r"^statements-(?P<export_id>.+)-(?P<number>[0-9]{4,})\.json$")
LOCK_FILE = ".sor-export.lock"


class StatementError(ValueError):
    """A statement that the Transparency Database would reject (or could not be built): names the puid and
    the failing field."""

    def __init__(self, puid: str | None, field: str, message: str, where: str = ""):
        self.puid, self.field = puid, field
        subject = f"statement {puid}: " if puid else ("" if where else "statement (no puid): ")
        super().__init__(f"{where}{subject}{field}: {message}")


# -- building one statement ---------------------------------------------------------------------------
def acting_reason(case: Case) -> dict[str, Any]:
    """The reason a statement gives: a ``reasons`` entry (category, score, threshold, action, ground).

    * Automated decisions: the strictest reason whose action is the decision's (the policy sorts reasons
      strictest first, then by score), else the first reason.
    * Decisions people made: the first (highest-scored) reason whose category the reviewers labelled 1;
      if they confirmed none of the model's categories but still restricted, the model's top reason (it
      is what brought the content to them); if the model gave no reason, the reviewers' highest-scored
      label, with the default ground (claiming illegality needs a policy rule that says so).

    Raises:
        StatementError: when nothing names a category.
    """
    reasons = [r for r in case.decision.get("reasons") or [] if r.get("category")]
    if case.human_decided:
        labels = (case.review or {}).get("labels") or {}
        confirmed = [r for r in reasons if _is_positive(labels.get(r["category"]))]
        if confirmed:
            return confirmed[0]
        if reasons:
            return reasons[0]
        return _reason_from_labels(case, labels)
    matching = [r for r in reasons if r.get("action") == case.action]
    if matching or reasons:
        return (matching or reasons)[0]
    raise StatementError(case.puid, "category", f"the {case.action} decision gives no reason (no category)")


def _is_positive(label: Any) -> bool:
    try:
        return int(label) == 1
    except (TypeError, ValueError):
        return False


def _reason_from_labels(case: Case, labels: Mapping[str, Any]) -> dict[str, Any]:
    scores = case.decision.get("scores") or {}
    labelled = sorted((c for c, v in labels.items() if _is_positive(v)), key=lambda c: -float(scores.get(c, 0.0)))
    if not labelled:
        raise StatementError(case.puid, "category", "reviewers restricted the content but labelled no category, "
                                                    "and the decision gives no reason")
    category = labelled[0]
    return {"category": category, "score": scores.get(category), "threshold": None, "action": case.action,
            "ground": DEFAULT_GROUND}


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _market_text(market: str | None) -> str:
    return f"market {market}" if market else "all markets"


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word boundary, marked as truncated (never mid-word where a
    space is near, never over the limit)."""
    if len(text) <= limit:
        return text
    cut = text[:limit - len(TRUNCATED)]
    space = cut.rfind(" ")
    if space >= len(cut) - 200:
        cut = cut[:space]
    return cut.rstrip() + TRUNCATED


def territorial_scope(market: str | None) -> list[str]:
    """Where the restriction applies: the decision's market when it is an EEA country, else the whole EEA
    (a decision under the global or a non-EEA market's policy restricts the content everywhere)."""
    market = (market or "").upper()
    return [market] if market in EEA_COUNTRIES else list(EEA_COUNTRIES)


def content_language(language: str | None) -> str | None:
    """The API's upper-case ISO 639-1 code, or None (omitted) for anything that is not a 2-letter code."""
    if isinstance(language, str) and len(language) == 2 and language.isascii() and language.isalpha():
        return language.upper()
    return None


def _template_values(case: Case, reason: Mapping[str, Any], label: str) -> dict[str, str]:
    return {"label": label, "category": str(reason["category"]), "action": str(reason.get("action") or case.action),
            "score": _number(reason.get("score")), "threshold": _number(reason.get("threshold")),
            "market": _market_text(case.decision.get("market")),
            "policy_version": str(case.decision.get("policy_version") or "unknown")}


def _ground_fields(case: Case, ground: GroundMapping, legal_ground_override: str | None,
                   values: Mapping[str, str]) -> dict[str, str]:
    # A decision people made says so in the explanation, which otherwise describes the model's part.
    people = f" Human review then decided to {case.action} the content." if case.human_decided else ""
    if ground.decision_ground == DECISION_GROUND_ILLEGAL:
        return {"illegal_content_legal_ground": fill(legal_ground_override or ground.illegal_content_legal_ground,
                                                     values),
                "illegal_content_explanation": _clip(fill(ground.illegal_content_explanation, values) + people,
                                                     MAX_EXPLANATION)}
    fields = {"incompatible_content_ground": fill(ground.incompatible_content_ground, values),
              "incompatible_content_explanation": _clip(fill(ground.incompatible_content_explanation, values)
                                                        + people, MAX_EXPLANATION)}
    if ground.incompatible_content_illegal is not None:
        fields["incompatible_content_illegal"] = ground.incompatible_content_illegal
    return fields


def _content_types(case: Case, mapping: DsaMapping) -> list[str]:
    modalities = list(case.decision.get("content_types") or [])
    if not modalities:
        raise StatementError(case.puid, "content_type", "the decision logged no content_types")
    unmapped = sorted({m for m in modalities if m not in mapping.content_types})
    if unmapped:
        raise StatementError(case.puid, "content_type", f"modalities {unmapped} have no mapping in content_types")
    return list(dict.fromkeys(mapping.content_types[m] for m in modalities))  # unique, in logged order


def _source_type(case: Case, mapping: DsaMapping) -> str:
    source = case.decision.get("source")
    if source not in mapping.source_types:
        raise StatementError(case.puid, "source_type", f"detection source {source!r} has no mapping in source_types")
    return mapping.source_types[source]


def _drivers(case: Case, reasons: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Category -> the modality that raised its score most, where the log still has it: a reason's own
    ``driven_by`` or the decision's ``attribution`` (which :func:`~tripwire.compliance.cases.cases` slims
    away, so usually none)."""
    attribution = case.decision.get("attribution") or {}
    drivers = {}
    for reason in reasons:
        category = reason["category"]
        driver = reason.get("driven_by") or (attribution.get(category) or {}).get("driven_by")
        if driver:
            drivers[category] = str(driver)
    return drivers


def _label(mapping: DsaMapping, category: str) -> str:
    entry = mapping.categories.get(category)
    return entry.label if entry is not None else category


def decision_facts(case: Case, mapping: DsaMapping) -> str:
    """The plain-language facts and circumstances (at most 5000 characters, truncated at a word)."""
    body = case.decision
    action = mapping.actions[case.action]
    reasons = [r for r in body.get("reasons") or [] if r.get("category")]
    if case.human_decided:
        reviewers = int((case.review or {}).get("reviewers") or 0)
        who = f"{reviewers} human reviewer{'s' if reviewers != 1 else ''}" if reviewers else "human reviewers"
        parts = [f"Automated moderation referred this content to human review, and {who} decided to "
                 f"{case.action} it: {action.description}."]
    else:
        parts = [f"Automated moderation decided to {case.action} this content: {action.description}."]
    parts.append(f"The content was scored by moderation model {body.get('model_version') or 'unknown'} under "
                 f"enforcement policy {body.get('policy_version') or 'unknown'} ({_market_text(body.get('market'))}).")
    if reasons:
        acted = [f"{_label(mapping, r['category'])} ({r['category']}) scored {_number(r.get('score'))}, at or above "
                 f"the {r.get('action', 'policy')} threshold {_number(r.get('threshold'))}" for r in reasons]
        parts.append("Category scores that reached a policy threshold: " + "; ".join(acted) + ".")
    for category, modality in _drivers(case, reasons).items():
        parts.append(f"The {modality} part of the content contributed most to the {_label(mapping, category)} score.")
    parts.append(f"Content types assessed: {', '.join(body.get('content_types') or ['unknown'])}.")
    if case.human_decided:
        parts.append(_review_facts(case, mapping, reasons))
    parts.append("The content was detected by automated means on the provider's own initiative "
                 f"({'a scan of posted content' if body.get('source') == 'scan' else 'moderation at upload'}).")
    return _clip(" ".join(parts), MAX_DECISION_FACTS)


def _review_facts(case: Case, mapping: DsaMapping, reasons: Sequence[Mapping[str, Any]]) -> str:
    labels = (case.review or {}).get("labels") or {}
    confirmed = [c for c, v in labels.items() if _is_positive(v)]
    if confirmed:
        return "Reviewers confirmed: " + ", ".join(_label(mapping, c) for c in confirmed) + "."
    return "Reviewers did not confirm a specific category the model flagged."


def _build(case: Case, mapping: DsaMapping) -> tuple[dict[str, Any], str]:
    """The statement and the taxonomy category it was filed under."""
    if not case.enforced:
        raise StatementError(case.puid, "decision_visibility",
                             f"action {case.action!r} restricts nothing: no statement of reasons is owed")
    reason = acting_reason(case)
    category = mapping.categories.get(reason["category"])
    if category is None:
        raise StatementError(case.puid, "category", f"taxonomy category {reason['category']!r} has no DSA mapping")
    ground_name = reason.get("ground") or DEFAULT_GROUND
    ground = mapping.grounds.get(ground_name)
    if ground is None:
        raise StatementError(case.puid, "decision_ground", f"policy ground {ground_name!r} has no DSA mapping")
    values = _template_values(case, reason, category.label)
    out: dict[str, Any] = dict(mapping.actions[case.action].fields())
    out["decision_ground"] = ground.decision_ground
    out.update(_ground_fields(case, ground, category.illegal_content_legal_ground, values))
    url = mapping.reference_url(ground_name)
    if url:
        out["decision_ground_reference_url"] = url
    out["content_type"] = _content_types(case, mapping)
    if "CONTENT_TYPE_OTHER" in out["content_type"]:
        out["content_type_other"] = mapping.content_type_other
    out["category"] = category.category
    if category.category_specification:
        out["category_specification"] = list(category.category_specification)
    if category.category_specification_other:
        out["category_specification_other"] = category.category_specification_other
    out["territorial_scope"] = territorial_scope(case.decision.get("market"))
    language = content_language(case.decision.get("language"))
    if language:
        out["content_language"] = language
    # Posted date when the source knew it, else the day it was detected (it existed by then).
    out["content_date"] = case.decision.get("content_date") or utc_date(float(case.decision["detected_at"]))
    out["application_date"] = utc_date(case.applied_at)
    out["decision_facts"] = decision_facts(case, mapping)
    out["source_type"] = _source_type(case, mapping)
    out["automated_detection"] = "Yes" if case.decision.get("automated_detection", True) else "No"
    out["automated_decision"] = AUTOMATED_DECISIONS[case.automated_decision]
    out["puid"] = case.puid
    return out, str(reason["category"])


def statement(case: Case, mapping: DsaMapping) -> dict[str, Any]:
    """One statement of reasons for an enforced case, in the API's field names (not yet validated).

    Raises:
        StatementError: the case is not enforced, or the mapping does not cover it.
    """
    return _build(case, mapping)[0]


# -- validation ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The bundled JSON Schema (draft 2020-12) of one statement; ``$defs.batch`` is the batch body."""
    return json.loads(Path(default_resource(SCHEMA_FILE)).read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def _validators() -> tuple[jsonschema.Draft202012Validator, jsonschema.Draft202012Validator]:
    document = schema()
    registry = Registry().with_resource(document["$id"], Resource.from_contents(document))
    one = jsonschema.Draft202012Validator(document, registry=registry)
    batch = jsonschema.Draft202012Validator({"$ref": f"{document['$id']}#/$defs/batch"}, registry=registry)
    return one, batch


def _field_of(error: jsonschema.ValidationError, depth: int = 0) -> str:
    """The statement field an error is about (``depth``: path elements before the statement's own)."""
    path = list(error.absolute_path)[depth:]
    if path:
        return str(path[0]) + "".join(f"[{p}]" for p in path[1:])
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required":
        return ",".join(p for p in error.validator_value if p not in instance) or "(statement)"
    if error.validator == "anyOf":
        return "/".join(DECISION_FIELDS)
    if error.validator == "additionalProperties":
        return ",".join(sorted(set(instance) - set(error.schema.get("properties", {})))) or "(statement)"
    return "(statement)"


def _condition_of(error: jsonschema.ValidationError) -> str:
    """For a field the schema's ``allOf`` conditionals require: the condition, in words."""
    path = list(error.absolute_schema_path)
    if "allOf" not in path or "then" not in path:
        return ""
    rule = schema()["allOf"][path[path.index("allOf") + 1]]["if"]["properties"]
    (name, test), = rule.items()
    if "const" in test:
        return f" when {name} is {test['const']}"
    return f" when {name} contains {test['contains']['const']}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message_of(error: jsonschema.ValidationError) -> str:
    """What is wrong, without echoing long values (a 5000-character text, the 69 keywords)."""
    if error.validator == "anyOf" and not list(error.absolute_path):
        return f"at least one of {', '.join(DECISION_FIELDS)} is required"
    if error.validator == "additionalProperties":
        return "not a field the API accepts here"
    if error.validator == "required":
        return "required" + _condition_of(error)
    if error.validator == "enum":
        return f"{_short(error.instance)} is not a value of the {SCHEMA_VERSION} schema"
    if error.validator == "maxLength":
        return f"{len(error.instance)} characters, at most {error.validator_value} allowed"
    if error.validator in ("minItems", "maxItems"):
        bound = "at least" if error.validator == "minItems" else "at most"
        return f"{len(error.instance)} item(s), {bound} {error.validator_value} allowed"
    if error.validator == "pattern":
        return f"{_short(error.instance)} does not match {error.validator_value}"
    return error.message if len(error.message) <= 200 else error.message[:200] + "..."


def _raise_first(errors: list[jsonschema.ValidationError], puid: str | None, depth: int = 0, where: str = "") -> None:
    if not errors:
        return
    errors.sort(key=lambda e: [str(p) for p in e.absolute_path])
    first = errors[0]
    message = _message_of(first)
    if len(errors) > 1:
        others = "; ".join(f"{_field_of(e, depth)}: {_message_of(e)}" for e in errors[1:5])
        message += f" (and {len(errors) - 1} more: {others}{'; ...' if len(errors) > 5 else ''})"
    raise StatementError(puid, _field_of(first, depth), message, where)


def _puid_of(value: Any) -> str | None:
    puid = value.get("puid") if isinstance(value, dict) else None
    return puid if isinstance(puid, str) else None


def _check_dates(statement_: Mapping[str, Any], where: str = "") -> None:
    """The date rules JSON Schema cannot express: real calendar dates, the minimums, end after start."""
    puid = _puid_of(statement_)
    dates = {}
    for name in ("content_date", "application_date", *END_DATES):
        if name in statement_:
            try:
                dates[name] = datetime.date.fromisoformat(statement_[name])
            except (TypeError, ValueError):
                raise StatementError(puid, name, f"{statement_[name]!r} is not a Y-m-d date", where) from None
    for name, minimum in (("content_date", MIN_CONTENT_DATE), ("application_date", MIN_APPLICATION_DATE)):
        if name in dates and dates[name] < minimum:
            raise StatementError(puid, name, f"{dates[name]} is before {minimum}, the earliest the API accepts",
                                 where)
    for name in END_DATES:
        if name in dates and "application_date" in dates and dates[name] < dates["application_date"]:
            raise StatementError(puid, name, f"{dates[name]} is before application_date {dates['application_date']}",
                                 where)


def validate(statement_: Mapping[str, Any]) -> None:
    """Checks one statement against the API's rules (the bundled schema, then the date rules).

    Raises:
        StatementError: naming the puid and the first failing field (the message lists a few more).
    """
    one, _ = _validators()
    _raise_first(list(one.iter_errors(statement_)), _puid_of(statement_))
    _check_dates(statement_)


def validate_batch(body: Mapping[str, Any]) -> None:
    """Checks a ``POST /api/v1/statements`` body: ``{"statements": [...]}`` with 1 to 100 valid statements,
    no puid twice (the API takes all or none: one bad statement fails the batch).

    Raises:
        StatementError: naming the statement's position (``statements[i]``, the API's ``statement_i``), its
        puid and the failing field.
    """
    _, batch = _validators()
    envelope, per_statement = [], {}
    for error in batch.iter_errors(body):
        path = list(error.absolute_path)
        if len(path) >= 2 and path[0] == "statements" and isinstance(path[1], int):
            per_statement.setdefault(path[1], []).append(error)
        else:
            envelope.append(error)
    _raise_first(envelope, None, where="batch: ")
    statements = body["statements"]
    for i in sorted(per_statement):
        _raise_first(per_statement[i], _puid_of(statements[i]), depth=2, where=f"statements[{i}] (statement_{i}): ")
    seen = set()
    for i, statement_ in enumerate(statements):
        _check_dates(statement_, where=f"statements[{i}] (statement_{i}): ")
        if statement_["puid"] in seen:
            raise StatementError(statement_["puid"], "puid", "appears twice in the batch",
                                 f"statements[{i}] (statement_{i}): ")
        seen.add(statement_["puid"])


# -- the export ledger --------------------------------------------------------------------------------
class ExportLedger(Tables):
    """Which puids were exported, by which export and in which batch file: the ``sor_exports`` table in the
    decision log's database (SQLite or PostgreSQL). Connections are per thread, as the log's are."""

    schema = LEDGER_SCHEMA

    def exported(self, puids: Iterable[str]) -> set[str]:
        """Those of ``puids`` an earlier export recorded."""
        found: set[str] = set()
        for chunk in _chunks(list(puids), LEDGER_LOOKUP_CHUNK):
            marks = ", ".join("?" for _ in chunk)
            found.update(row[0] for row in self._rows(f"SELECT puid FROM sor_exports WHERE puid IN ({marks})", chunk))
        return found

    def all_puids(self) -> set[str]:
        return {row[0] for row in self._rows("SELECT puid FROM sor_exports")}

    def has_batch(self, batch: str) -> bool:
        return bool(self._rows("SELECT 1 FROM sor_exports WHERE batch = ? LIMIT 1", (batch,)))

    def record(self, export_id: str, batch: str, puids: Sequence[str]) -> None:
        """Records one batch file's puids in one transaction (all or none). A puid recorded before (another
        export ran at the same time) fails the whole batch, so no puid is ever recorded twice."""
        now = time.time()
        try:
            with self.db.write(self.conn):
                for puid in puids:
                    self.conn.execute(self.db.sql("INSERT INTO sor_exports (puid, export_id, batch, exported_at) "
                                                  "VALUES (?, ?, ?, ?)"), (puid, export_id, batch, now))
        except self.db.integrity_errors as exc:
            raise RuntimeError(f"{batch}: a puid in it was exported by a concurrent export; this file is "
                               "left unrecorded and the next export removes it") from exc


def exported_puids(log_url: str, puids: Iterable[str] | None = None) -> set[str]:
    """The puids whose statements an export recorded (of ``puids``, or all): what was issued, for reports."""
    ledger = ExportLedger(log_url)
    try:
        return ledger.all_puids() if puids is None else ledger.exported(puids)
    finally:
        ledger.close()


# -- the export ---------------------------------------------------------------------------------------
def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _new_export_id() -> str:
    """Sortable by time, unique across concurrent runs, and safe in a file name."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def _write_json(path: Path, value: Any) -> None:
    """Writes ``value`` whole or not at all: a crash leaves the old file or none, never half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """One export at a time per output folder (removing unrecorded files must not race a running export)."""
    with open(out_dir / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{out_dir}: another statements export is writing here") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_unrecorded(out_dir: Path, ledger: ExportLedger, log: LogSet) -> list[str]:
    """Removes batch files an earlier export wrote but crashed before recording (see
    :func:`export_statements`): a file is removed only when its export has no summary, no ledger row names
    it and every puid in it is a decision of this log, so another log's files in the folder stay."""
    removed = []
    for tmp in out_dir.glob(".statements-*.json.tmp"):
        tmp.unlink()
    for path in sorted(out_dir.glob("statements-*.json")):
        match = BATCH_FILE.match(path.name)
        if not match or (out_dir / f"sor-summary-{match['export_id']}.json").exists() or ledger.has_batch(path.name):
            continue
        try:
            puids = [s["puid"] for s in json.loads(path.read_text(encoding="utf-8"))["statements"]]
        except (ValueError, KeyError, TypeError):
            logger.warning("%s: not a statements batch; left alone", path)
            continue
        if all(log.find(DECISION, puid) is not None for puid in puids):
            path.unlink()
            removed.append(path.name)
            logger.warning("%s: written by an export that stopped before recording it; removed, its %d "
                           "statements are exported again", path.name, len(puids))
    return removed


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def export_statements(log_url: str, start: float, end: float, out_dir: str | Path,
                      mapping: DsaMapping, scan_logs: Sequence[str] = ()) -> dict[str, Any]:
    """Writes the statements of reasons owed for the decisions made in ``[start, end)`` (Unix seconds,
    :func:`tripwire.compliance.cases.period`) as API batch bodies, skipping puids exported before.

    Steps: every statement still owed is built and validated first, so a statement the API would reject
    stops the export before any file is written (puids exported before are not rebuilt: a later mapping
    change does not reopen them). Then, per batch of at most 100, the file
    ``out_dir/statements-<export_id>-<NNNN>.json`` (exactly the ``POST /api/v1/statements`` body) is
    written whole (temporary file, fsync, rename) and only then its puids are recorded in ``sor_exports``.
    A crash between the two leaves a file with no ledger entry, never a ledger entry without a file: the
    next export into the same folder removes such a file and exports its statements again in its own
    files, so each puid ends up in exactly one recorded file. Finally ``out_dir/sor-summary-<export_id>.json``
    (also returned) records the period, mapping version, counts, files and what was skipped.

    ``log_url`` is the database log (it also holds the ledger); ``scan_logs`` are scans' Parquet logs read
    with it (:class:`tripwire.compliance.logs.LogSet`).

    Memory: the period's cases (:func:`~tripwire.compliance.cases.cases`) plus one batch of statements.
    One export at a time per ``out_dir`` (a lock file); ``out_dir`` is a local folder, one per log.

    Raises:
        StatementError: a statement fails validation (nothing written) or cannot be built.
        RuntimeError: another export holds ``out_dir``, or ran concurrently on the same ledger.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    export_id = _new_export_id()
    if is_parquet_log(log_url):
        raise ValueError(f"{log_url}: statements need the database log (it holds the export ledger); pass "
                         "Parquet logs as scan_logs")
    log, ledger = LogSet([log_url, *scan_logs]), ExportLedger(log_url)
    try:
        with _exclusive(out):
            enforced = [case for case in cases(log.records(), start, end) if case.enforced]
            head = log.head()
            removed = _remove_unrecorded(out, ledger, log)
            done = ledger.exported(case.puid for case in enforced)
            pending = [case for case in enforced if case.puid not in done]
            for case in pending:  # all of them valid before the first file (one statement in memory at a time)
                validate(statement(case, mapping))
            counts, files = _write_batches(pending, mapping, out, export_id, ledger)
            summary = {
                "export_id": export_id, "exported_at": _iso(time.time()),
                "period": {"start": _iso(start), "end": _iso(end), "end_is_exclusive": True},
                "mapping_version": mapping.version, "schema": mapping.schema,
                "taxonomy_version": mapping.taxonomy_version,
                "log_head": {"seq": head[0], "hash": head[1]},
                **({"scan_log_heads": {url: {"seq": h[0], "hash": h[1]} for url, h in log.heads().items()
                                       if url != log_url}} if scan_logs else {}),
                "enforced_cases": len(enforced), "exported": len(pending), "skipped_already_exported": len(done),
                "files": files, "unrecorded_files_removed": removed,
                **{f"by_{name}": dict(sorted(counter.items())) for name, counter in counts.items()},
            }
            _write_json(out / f"sor-summary-{export_id}.json", summary)
    finally:
        ledger.close()
        log.close()
    logger.info("statements export %s: %d exported in %d file(s), %d already exported before", export_id,
                summary["exported"], len(files), summary["skipped_already_exported"])
    return summary


def _write_batches(pending: Sequence[Case], mapping: DsaMapping, out: Path, export_id: str,
                   ledger: ExportLedger) -> tuple[dict[str, Counter], list[str]]:
    counts = {name: Counter() for name in ("category", "taxonomy_category", "automated_decision", "decision_ground")}
    files = []
    for number, chunk in enumerate(_chunks(pending, MAX_BATCH), start=1):
        built = [_build(case, mapping) for case in chunk]
        body = {"statements": [statement_ for statement_, _ in built]}
        validate_batch(body)
        name = f"statements-{export_id}-{number:04d}.json"
        _write_json(out / name, body)
        ledger.record(export_id, name, [case.puid for case in chunk])  # after the file: see export_statements
        files.append(name)
        for statement_, taxonomy_category in built:
            counts["category"][statement_["category"]] += 1
            counts["taxonomy_category"][taxonomy_category] += 1
            counts["automated_decision"][statement_["automated_decision"]] += 1
            counts["decision_ground"][statement_["decision_ground"]] += 1
        logger.info("%s: %d statements", name, len(chunk))
    return counts, files

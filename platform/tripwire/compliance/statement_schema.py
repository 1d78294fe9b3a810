"""Statements of reasons checked against the DSA Transparency Database API's JSON Schema (bundled, draft
2020-12) and its date rules; the first problem is raised naming the statement's puid and the field.
"""

from __future__ import annotations

import datetime
import functools
import json
from pathlib import Path
from typing import Any, Mapping

import jsonschema
from referencing import Registry, Resource

from tripwire.compliance.dsa import SCHEMA_VERSION
from tripwire.policy import default_resource
from tripwire.compliance.statements import (DECISION_FIELDS, END_DATES, MIN_APPLICATION_DATE, MIN_CONTENT_DATE,
                                            SCHEMA_FILE, StatementError)


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

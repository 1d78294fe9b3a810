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
Each is checked against the API's schema (:mod:`tripwire.compliance.statement_schema`) and exported in
batches with a ledger (:mod:`tripwire.compliance.statement_export`).
"""

from __future__ import annotations

import datetime
from typing import Any, Mapping, Sequence

from tripwire.common.progress import clock
from tripwire.compliance.cases import Case, utc_date
from tripwire.compliance.dsa import (AUTOMATED_DECISION_FULLY, AUTOMATED_DECISION_PARTIALLY, DECISION_GROUND_ILLEGAL,
                                     EEA_COUNTRIES, MAX_DECISION_FACTS, MAX_EXPLANATION, DsaMapping, GroundMapping,
                                     fill)


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
    for category, where in (body.get("where") or {}).items():
        parts.append(f"At {clock(where['start_s'])}-{clock(where['end_s'])} the {where.get('signal', 'media')} "
                     f"scored highest for {_label(mapping, category)}.")
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

"""DSA statements of reasons from the decision log: every exported statement passes the API's rules (the
bundled schema plus the date rules), batches hold at most 100, only enforced decisions get one (automated:
FULLY, decided by reviewers: PARTIALLY), a re-export (and one after a crash between file and ledger) never
exports a puid twice, and the mapping loader rejects what the 2025 schema would."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from helpers import resolved_item
from tripwire.compliance import dsa
from tripwire.compliance import statement_export, statement_schema
from tripwire.compliance import statements as sor
from tripwire.compliance.cases import cases, day_start, period
from tripwire.compliance.dsa import DsaMapping
from tripwire.compliance.records import decision_body, review_outcome_body
from tripwire.common.config import ConfigError
from tripwire.compliance.decision_log import DecisionLog
from tripwire.policy import Policy, Taxonomy, default_resource
from tripwire.moderation.result import ModerationResult

POLICY = Policy.load()
MAPPING = DsaMapping.load()
START, END = period("2026-11-01", "2026-11-30")
DAY = day_start("2026-11-03")
# Scores that the bundled policy enforces: (scores, expected action, expected ground)
ENFORCED = [
    ({"hate": 0.75, "harassment": 0.2}, "restrict", "illegal_content"),
    ({"harassment": 0.85}, "restrict", "terms_of_service"),
    ({"sexual": 0.96}, "block", "terms_of_service"),
    ({"illicit": 0.90, "violence": 0.55}, "block", "illegal_content"),
    ({"violence/graphic": 0.65}, "restrict", "terms_of_service"),
    ({"self_harm": 0.62}, "restrict", "terms_of_service"),
]


def result(item_id: str, scores: dict[str, float], market: str | None = None, model_version: str = "tw-test-1"):
    """A result shaped like the moderation core's (tripwire.moderation.moderator.Moderator.result)."""
    decision = POLICY.decide(scores, market).to_dict()
    return ModerationResult.from_json(
        {"id": item_id, "scores": dict(scores), "flagged": decision["flagged"], "decision": decision,
         "attribution": {c: {"driven_by": "text", "contributions": {"text": 0.3}} for c in scores},
         "evidence": {}, "modalities": ["text"], "model_version": model_version,
         "policy_version": decision["policy_version"]})


def decision(puid: str, scores: dict[str, float], at: float, market: str | None = None, source: str = "serving",
             content_types=("text",), language: str | None = "en", **extra):
    body = decision_body(result(puid, scores, market, extra.pop("model_version", "tw-test-1")), source=source,
                         policy=POLICY, detected_at=at, decided_at=at + 0.2, content_hash="sha256:0",
                         content_types=list(content_types), language=language, **extra)
    return ("decision", puid, body)


def review(puid: str, original_entry, action: str, labels: dict[str, int], at: float):
    item = resolved_item(puid, action, labels, at + 3600.0, created_at=at, resolved_by="alice,bob")
    return ("review_outcome", puid, review_outcome_body(item, original_entry[2], reviewers=2))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def log_url(request, tmp_path):
    return str(tmp_path / "log.db") if request.param == "sqlite" else request.getfixturevalue("pg_database")


@pytest.fixture
def sqlite_url(tmp_path):
    return str(tmp_path / "log.db")


def append(url: str, entries) -> None:
    log = DecisionLog(url)
    try:
        log.append(entries)
    finally:
        log.close()


def populate(url: str, enforced: int = 250) -> dict[str, list[str]]:
    """``enforced`` enforced automated decisions, plus allowed, review-pending and reviewed ones."""
    entries, puids = [], {"automated": [], "allowed": [], "pending": [], "partially": [], "lifted": []}
    for i in range(enforced):
        scores, _, _ = ENFORCED[i % len(ENFORCED)]
        entries.append(decision(f"srv-auto-{i}", scores, DAY + 60.0 * i, market=("DE", "US", None)[i % 3]))
        puids["automated"].append(f"srv-auto-{i}")
    for i in range(5):
        entries.append(decision(f"srv-allow-{i}", {"hate": 0.1}, DAY + i))
        entries.append(decision(f"srv-pending-{i}", {"harassment": 0.6}, DAY + i))  # review band, unresolved
        puids["allowed"].append(f"srv-allow-{i}")
        puids["pending"].append(f"srv-pending-{i}")
    reviewed = decision("scan-rev-restrict", {"hate": 0.6, "harassment": 0.55}, DAY + 10, source="scan")
    lifted = decision("scan-rev-allow", {"harassment": 0.6}, DAY + 11, source="scan")
    entries += [reviewed, lifted, review("scan-rev-restrict", reviewed, "restrict", {"harassment": 1, "hate": 0}, DAY + 20),
                review("scan-rev-allow", lifted, "allow", {"harassment": 0}, DAY + 21)]
    puids["partially"].append("scan-rev-restrict")
    puids["lifted"].append("scan-rev-allow")
    # Outside the period: never exported with it.
    entries.append(decision("srv-october", {"sexual": 0.99}, day_start("2026-10-15")))
    append(url, entries)
    return puids


def batch_files(out: Path) -> list[Path]:
    return sorted(out.glob("statements-*.json"))


def exported_statements(out: Path) -> list[dict]:
    return [s for path in batch_files(out) for s in json.loads(path.read_text())["statements"]]


def one_case(url: str, puid: str):
    log = DecisionLog(url)
    try:
        return next(c for c in cases(log.records(), START, END) if c.puid == puid)
    finally:
        log.close()


# -- the export ---------------------------------------------------------------------------------------
def test_every_exported_statement_validates_and_batches_hold_at_most_100(sqlite_url, tmp_path):
    puids = populate(sqlite_url)
    out = tmp_path / "sor"
    summary = statement_export.export_statements(sqlite_url, START, END, out, MAPPING)
    files = batch_files(out)
    sizes = [len(json.loads(p.read_text())["statements"]) for p in files]
    assert sizes == [100, 100, 51] and summary["files"] == [p.name for p in files]
    for path in files:
        body = json.loads(path.read_text())
        assert set(body) == {"statements"}
        statement_schema.validate_batch(body)
        for statement in body["statements"]:
            statement_schema.validate(statement)
    exported = {s["puid"] for s in exported_statements(out)}
    assert exported == set(puids["automated"]) | set(puids["partially"])
    assert not exported & set(puids["allowed"] + puids["pending"] + puids["lifted"] + ["srv-october"])
    assert summary["exported"] == 251 and summary["skipped_already_exported"] == 0
    assert summary["by_automated_decision"] == {"AUTOMATED_DECISION_FULLY": 250, "AUTOMATED_DECISION_PARTIALLY": 1}
    assert sum(summary["by_category"].values()) == 251 and summary["mapping_version"] == MAPPING.version
    assert summary["period"]["start"] == "2026-11-01T00:00:00Z" and summary["period"]["end"] == "2026-12-01T00:00:00Z"
    assert json.loads((out / f"sor-summary-{summary['export_id']}.json").read_text()) == summary


def test_statement_fields_follow_the_decision(sqlite_url):
    populate(sqlite_url, enforced=6)
    by_puid = {}
    log = DecisionLog(sqlite_url)
    for case in cases(log.records(), START, END):
        if case.enforced:
            by_puid[case.puid] = sor.statement(case, MAPPING)
    log.close()
    hate = by_puid["srv-auto-0"]  # hate 0.75 restrict in DE (illegal ground)
    assert hate["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_DEMOTED"]
    assert hate["decision_ground"] == dsa.DECISION_GROUND_ILLEGAL
    assert "2008/913/JHA" in hate["illegal_content_legal_ground"] and "incompatible_content_ground" not in hate
    assert hate["category"] == "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH"
    assert hate["category_specification"] == ["KEYWORD_HATE_SPEECH"]
    assert hate["territorial_scope"] == ["DE"] and hate["content_language"] == "EN"
    assert hate["content_type"] == ["CONTENT_TYPE_TEXT"] and hate["source_type"] == "SOURCE_VOLUNTARY"
    assert hate["automated_detection"] == "Yes" and hate["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert hate["content_date"] == hate["application_date"] == "2026-11-03"
    assert "tw-test-1" in hate["decision_facts"] and POLICY.version in hate["decision_facts"]
    assert "hate speech (hate) scored 0.750" in hate["decision_facts"] and "restrict threshold 0.500" in hate["decision_facts"]
    harassment = by_puid["srv-auto-1"]  # terms of service, market US: the whole EEA
    assert harassment["decision_ground"] == dsa.DECISION_GROUND_INCOMPATIBLE
    assert harassment["incompatible_content_ground"].startswith("Tripwire Terms of Service")
    assert "illegal_content_legal_ground" not in harassment
    assert harassment["territorial_scope"] == list(dsa.EEA_COUNTRIES)
    assert by_puid["srv-auto-2"]["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]  # sexual block
    assert by_puid["srv-auto-2"]["category"] == "STATEMENT_CATEGORY_OTHER_VIOLATION_TC"
    for statement in by_puid.values():
        statement_schema.validate(statement)


def test_a_review_band_decision_reviewers_restricted_is_partially_automated(sqlite_url):
    populate(sqlite_url, enforced=0)
    case = one_case(sqlite_url, "scan-rev-restrict")
    statement = sor.statement(case, MAPPING)
    statement_schema.validate(statement)
    assert statement["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"
    # The model's top reason was hate; the reviewers confirmed harassment only: that is the reason given.
    assert statement["category"] == "STATEMENT_CATEGORY_CYBER_VIOLENCE"
    assert statement["decision_ground"] == dsa.DECISION_GROUND_INCOMPATIBLE
    assert statement["application_date"] == "2026-11-03" and "2 human reviewers" in statement["decision_facts"]
    assert "Human review then decided to restrict" in statement["incompatible_content_explanation"]
    with pytest.raises(sor.StatementError, match="no statement of reasons is owed"):
        sor.statement(one_case(sqlite_url, "scan-rev-allow"), MAPPING)
    with pytest.raises(sor.StatementError):
        sor.statement(one_case(sqlite_url, "srv-pending-0"), MAPPING)


def test_reexporting_the_same_period_writes_nothing_new(log_url, tmp_path):
    populate(log_url, enforced=120)
    out = tmp_path / "sor"
    first = statement_export.export_statements(log_url, START, END, out, MAPPING)
    files = batch_files(out)
    assert first["exported"] == 121 and len(files) == 2
    again = statement_export.export_statements(log_url, START, END, out, MAPPING)
    assert again["exported"] == 0 and again["files"] == [] and again["skipped_already_exported"] == 121
    assert batch_files(out) == files
    # New decisions later in the period: only they are exported by the next run.
    append(log_url, [decision("srv-late", {"sexual": 0.97}, DAY + 86400.0)])
    third = statement_export.export_statements(log_url, START, END, out, MAPPING)
    assert third["exported"] == 1 and third["skipped_already_exported"] == 121
    puids = [s["puid"] for s in exported_statements(out)]
    assert len(puids) == len(set(puids)) == 122
    assert statement_export.exported_puids(log_url) == set(puids)
    assert statement_export.exported_puids(log_url, ["srv-late", "srv-allow-0"]) == {"srv-late"}


def test_a_crash_between_file_and_ledger_is_exported_once_on_the_next_run(sqlite_url, tmp_path, monkeypatch):
    populate(sqlite_url, enforced=250)
    out = tmp_path / "sor"
    record = statement_export.ExportLedger.record
    calls = []

    def crash_on_second(self, export_id, batch, puids):
        calls.append(batch)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed after writing the file, before recording it")
        record(self, export_id, batch, puids)

    monkeypatch.setattr(statement_export.ExportLedger, "record", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        statement_export.export_statements(sqlite_url, START, END, out, MAPPING)
    assert len(batch_files(out)) == 2  # the second file exists, unrecorded
    monkeypatch.setattr(statement_export.ExportLedger, "record", record)
    summary = statement_export.export_statements(sqlite_url, START, END, out, MAPPING)
    assert summary["unrecorded_files_removed"] == [calls[1]] and summary["skipped_already_exported"] == 100
    puids = [s["puid"] for s in exported_statements(out)]
    assert len(puids) == len(set(puids)) == 251


def test_an_invalid_statement_stops_the_export_before_any_file(sqlite_url, tmp_path):
    populate(sqlite_url, enforced=3)
    append(sqlite_url, [decision("srv-ancient", {"sexual": 0.99}, DAY, content_date="1999-12-31")])
    out = tmp_path / "sor"
    with pytest.raises(sor.StatementError) as raised:
        statement_export.export_statements(sqlite_url, START, END, out, MAPPING)
    assert raised.value.puid == "srv-ancient" and raised.value.field == "content_date"
    assert batch_files(out) == [] and not list(out.glob("sor-summary-*.json"))


# -- validation ---------------------------------------------------------------------------------------
@pytest.fixture
def valid(sqlite_url):
    populate(sqlite_url, enforced=2)
    illegal = sor.statement(one_case(sqlite_url, "srv-auto-0"), MAPPING)
    incompatible = sor.statement(one_case(sqlite_url, "srv-auto-1"), MAPPING)
    statement_schema.validate(illegal)
    statement_schema.validate(incompatible)
    return illegal, incompatible


def mutated(statement, **changes):
    out = copy.deepcopy(statement)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


@pytest.mark.parametrize("which, changes, field", [
    (0, {"illegal_content_explanation": None}, "illegal_content_explanation"),
    (0, {"illegal_content_legal_ground": None}, "illegal_content_legal_ground"),
    (1, {"incompatible_content_ground": None}, "incompatible_content_ground"),
    (0, {"decision_visibility": ["DECISION_VISIBILITY_OTHER"]}, "decision_visibility_other"),
    (0, {"decision_monetary": "DECISION_MONETARY_OTHER"}, "decision_monetary_other"),
    (0, {"content_type": ["CONTENT_TYPE_OTHER"]}, "content_type_other"),
    (0, {"puid": "has spaces!"}, "puid"),
    (0, {"puid": "p" * 501}, "puid"),
    (0, {"category": "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT"}, "category"),  # dropped in 2025
    (0, {"category_specification": ["KEYWORD_NOT_A_KEYWORD"]}, "category_specification[0]"),
    (0, {"decision_visibility": ["DECISION_VISIBILITY_CONTENT_HIDDEN"]}, "decision_visibility[0]"),
    (0, {"automated_decision": "AUTOMATED_DECISION_MAYBE"}, "automated_decision"),
    (0, {"decision_facts": "x" * 5001}, "decision_facts"),
    (0, {"decision_facts": None}, "decision_facts"),
    (0, {"content_language": "en"}, "content_language"),
    (0, {"territorial_scope": ["US"]}, "territorial_scope[0]"),
    (0, {"content_date": "03/11/2026"}, "content_date"),
    (0, {"content_date": "1999-12-31"}, "content_date"),
    (0, {"application_date": "2019-12-31"}, "application_date"),
    (0, {"application_date": "2026-02-30"}, "application_date"),
    (0, {"end_date_visibility_restriction": "2026-11-02"}, "end_date_visibility_restriction"),
    (0, {"automated_detection": True}, "automated_detection"),
    (0, {"moderation_score": 0.9}, "moderation_score"),
    (0, {"decision_visibility": None}, "decision_visibility/decision_monetary/decision_provision/decision_account"),
])
def test_a_statement_the_api_would_reject_fails_validation_naming_the_field(valid, which, changes, field):
    statement = mutated(valid[which], **changes)
    with pytest.raises(sor.StatementError) as raised:
        statement_schema.validate(statement)
    assert raised.value.field == field
    assert raised.value.puid == statement["puid"]
    assert field in str(raised.value)


def test_other_values_with_their_texts_and_a_dash_underscore_puid_pass(valid):
    statement_schema.validate(mutated(valid[0], decision_visibility=["DECISION_VISIBILITY_OTHER"], decision_visibility_other="x",
                         puid="a-b_C9", end_date_visibility_restriction="2026-12-01", decision_facts="y" * 5000))


def test_batches_are_1_to_100_statements_with_unique_puids(valid):
    statement = valid[0]
    ok = [mutated(statement, puid=f"p-{i}") for i in range(100)]
    statement_schema.validate_batch({"statements": ok})
    with pytest.raises(sor.StatementError, match="batch"):
        statement_schema.validate_batch({"statements": ok + [mutated(statement, puid="p-100")]})
    with pytest.raises(sor.StatementError, match="batch"):
        statement_schema.validate_batch({"statements": []})
    with pytest.raises(sor.StatementError, match="batch"):
        statement_schema.validate_batch({"statements": ok[:1], "extra": 1})
    with pytest.raises(sor.StatementError, match="appears twice") as raised:
        statement_schema.validate_batch({"statements": [ok[0], ok[1], ok[0]]})
    assert "statements[2]" in str(raised.value)
    bad = ok[:3] + [mutated(ok[3], illegal_content_explanation=None)]
    with pytest.raises(sor.StatementError) as raised:
        statement_schema.validate_batch({"statements": bad})
    assert raised.value.puid == "p-3" and raised.value.field == "illegal_content_explanation"
    assert "statement_3" in str(raised.value)


def test_decision_facts_are_truncated_safely(sqlite_url):
    append(sqlite_url, [decision("srv-long", {"hate": 0.95}, DAY, model_version="m " * 3000)])
    statement = sor.statement(one_case(sqlite_url, "srv-long"), MAPPING)
    assert len(statement["decision_facts"]) <= 5000 and statement["decision_facts"].endswith("[truncated]")
    statement_schema.validate(statement)


def test_language_content_types_and_dates_from_the_decision(sqlite_url):
    append(sqlite_url, [decision("srv-mm", {"sexual": 0.99}, DAY, language="eng", content_types=("image", "text"),
                                 content_date="2025-06-01", market="gr")])
    statement = sor.statement(one_case(sqlite_url, "srv-mm"), MAPPING)
    assert "content_language" not in statement
    assert statement["content_type"] == ["CONTENT_TYPE_IMAGE", "CONTENT_TYPE_TEXT"]
    assert statement["content_date"] == "2025-06-01" and statement["territorial_scope"] == ["GR"]
    statement_schema.validate(statement)


# -- the mapping ---------------------------------------------------------------------------------------
def test_the_bundled_mapping_covers_the_bundled_taxonomy_and_policy():
    taxonomy = Taxonomy.load()
    MAPPING.check_taxonomy(taxonomy.names, taxonomy.version)
    assert {rule.ground for rule in POLICY.categories.values()} <= set(MAPPING.grounds)


def test_the_schema_file_repeats_the_module_enumerations():
    properties = statement_schema.schema()["properties"]
    for name, values in [("category", dsa.STATEMENT_CATEGORY), ("decision_ground", dsa.DECISION_GROUND),
                         ("source_type", dsa.SOURCE_TYPE), ("automated_decision", dsa.AUTOMATED_DECISION),
                         ("decision_monetary", dsa.DECISION_MONETARY), ("decision_provision", dsa.DECISION_PROVISION),
                         ("decision_account", dsa.DECISION_ACCOUNT)]:
        assert properties[name]["enum"] == list(values), name
    for name, values in [("decision_visibility", dsa.DECISION_VISIBILITY), ("content_type", dsa.CONTENT_TYPE),
                         ("category_specification", dsa.KEYWORDS), ("territorial_scope", dsa.EEA_COUNTRIES)]:
        assert properties[name]["items"]["enum"] == list(values), name
    assert len(dsa.KEYWORDS) == 69 and len(dsa.STATEMENT_CATEGORY) == 16 and len(dsa.EEA_COUNTRIES) == 30


def bundled() -> dict:
    return yaml.safe_load(Path(default_resource("dsa_mapping.yaml")).read_text())


def write(tmp_path, data) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_unmapped_taxonomy_category_is_rejected(tmp_path):
    data = bundled()
    del data["categories"]["self_harm"]
    mapping = DsaMapping.load(write(tmp_path, data))
    with pytest.raises(ConfigError, match=r"categories: .*self_harm.* no DSA mapping"):
        mapping.check_taxonomy(Taxonomy.load().names)
    with pytest.raises(ConfigError, match="taxonomy_version"):
        MAPPING.check_taxonomy(Taxonomy.load().names, "2027.1.0")


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["categories"]["hate"].update(category="STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT"),
     "categories.hate.category"),
    (lambda d: d["categories"]["hate"].update(category_specification=["KEYWORD_HATE"]),
     r"categories.hate.category_specification\[0\]"),
    (lambda d: d["categories"]["violence"].pop("category_specification_other"),
     "categories.violence.category_specification_other"),
    (lambda d: d["actions"]["block"].update(decision_visibility=["DECISION_VISIBILITY_GONE"]),
     r"actions.block.decision_visibility\[0\]"),
    (lambda d: d["actions"]["block"].update(decision_visibility=["DECISION_VISIBILITY_OTHER"]),
     "actions.block.decision_visibility_other"),
    (lambda d: d["actions"].pop("block"), "actions: restrictive action"),
    (lambda d: d["actions"].update(review={"description": "x", "decision_visibility": ["DECISION_VISIBILITY_CONTENT_LABELLED"]}),
     "actions: .*review"),
    (lambda d: d["grounds"]["illegal_content"].pop("illegal_content_explanation"),
     "grounds.illegal_content.illegal_content_explanation"),
    (lambda d: d["grounds"]["terms_of_service"].update(decision_ground="DECISION_GROUND_TOS"),
     "grounds.terms_of_service.decision_ground"),
    (lambda d: d["grounds"]["terms_of_service"].update(incompatible_content_explanation="{user} broke the rules"),
     "grounds.terms_of_service.incompatible_content_explanation: unknown placeholder"),
    (lambda d: d["content_types"].update(text="CONTENT_TYPE_WORDS"), "content_types.text"),
    (lambda d: d["source_types"].pop("scan"), "source_types"),
    (lambda d: d["source_types"].update(scan="SOURCE_SCAN"), "source_types.scan"),
    (lambda d: d.update(schema="2024-01-01"), "schema"),
])
def test_the_mapping_loader_rejects_unknown_values_naming_the_field(tmp_path, edit, field):
    data = bundled()
    edit(data)
    with pytest.raises(ConfigError, match=field):
        DsaMapping.load(write(tmp_path, data))


def test_a_statement_names_where_in_long_media_the_evidence_is(sqlite_url):
    """Long media's worst window per category (the sentence in it that scored highest) is logged as times only, and
    the statement says when: no words of the content."""
    scored = result("srv-long", {"harassment": 0.9}, "DE")
    window = {"start_s": 750.0, "end_s": 780.0, "score": 0.9, "excerpt": "what was said",
              "span": {"start_s": 751.5, "end_s": 760.25, "score": 0.9}}
    scored = scored.replace(evidence={"windows": {"window_s": 30.0, "hop_s": 25.0, "count": 200, "duration_s": 5000.0,
                                                  "worst": {"harassment": [window]}}},
                            attribution={"harassment": {"driven_by": "speech", "contributions": {"speech": 0.5}}})
    body = decision_body(scored, source="scan", policy=POLICY, detected_at=DAY, decided_at=DAY + 1,
                         content_hash="sha256:0", content_types=["audio"], language="en")
    assert body["where"] == {"harassment": {"start_s": 751.5, "end_s": 760.25, "signal": "speech"}}
    append(sqlite_url, [("decision", "srv-long", body)])
    facts = sor.statement(one_case(sqlite_url, "srv-long"), MAPPING)["decision_facts"]
    assert "At 12:31-12:40 the speech scored highest for harassment" in facts and "what was said" not in facts

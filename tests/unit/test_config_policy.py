"""Taxonomy and policy files: loading, validation errors that name the field, and decisions."""

from __future__ import annotations

import textwrap

import pytest

from tripwire.config import ConfigError
from tripwire.policy import Action, Policy, Taxonomy


def write(tmp_path, text):
    path = tmp_path / "file.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_default_taxonomy_and_policy_load_and_agree():
    taxonomy, policy = Taxonomy.load(), Policy.load()
    policy.check_taxonomy(taxonomy)
    assert {"hate", "harassment", "sexual", "violence", "self_harm", "illicit", "violence/graphic"} <= set(taxonomy.names)
    assert taxonomy.categories[taxonomy.index("violence/graphic")].parent == "violence"


@pytest.mark.parametrize("body, field", [
    ("version: '1'\ncategories:\n  - {name: hate, colour: red}\n", "colour"),
    ("version: '1'\ncategories:\n  - {name: violence/graphic}\n", "parent 'violence'"),
    ("version: '1'\ncategories:\n  - {name: hate}\n  - {name: hate}\n", "duplicate"),
    ("version: '1'\ncategories: hate\n", "Taxonomy.categories: expected a list"),
    ("categories:\n  - {name: hate}\n", "Taxonomy.version: required"),
    ("version: '1'\ncategories: [\n", "not valid YAML"),
])
def test_bad_taxonomy_files_name_the_problem(tmp_path, body, field):
    with pytest.raises(ConfigError, match=field):
        Taxonomy.load(write(tmp_path, body))


@pytest.mark.parametrize("rules, message", [
    ("hate: {review: high}", r"categories\.hate\.review: .*number"),
    ("hate: {review: 0.9, block: 0.5}", "block: threshold 0.5 is below review"),
    ("hate: {review: 1.5}", r"outside \[0, 1\]"),
    ("hate: {review: 0.5, ban: 0.9}", r"unknown field\(s\) \['ban'\]"),
    ("hate: {review: 0.5, ground: vibes}", "ground"),
])
def test_bad_policy_rules_name_the_field(tmp_path, rules, message):
    path = write(tmp_path, f"version: '1'\ntaxonomy_version: '2026.11.0'\ncategories:\n  {rules}\n")
    with pytest.raises(ConfigError, match=message):
        Policy.load(path)


def test_policy_market_overrides_validated(tmp_path):
    path = write(tmp_path, """\
        version: '1'
        taxonomy_version: '2026.11.0'
        categories: {hate: {review: 0.5}}
        markets: {de: {hate: {review: 0.2}}}
    """)
    with pytest.raises(ConfigError, match="markets.de"):
        Policy.load(path)


def test_policy_must_match_model_taxonomy(tmp_path):
    policy = Policy.load(write(tmp_path, "version: '1'\ntaxonomy_version: 'old'\ncategories: {hate: {review: 0.5}}\n"))
    with pytest.raises(ConfigError, match="taxonomy_version"):
        policy.check_taxonomy(Taxonomy.load())


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        Policy.load(tmp_path / "nope.yaml")


def test_decide_takes_strictest_action_with_reasons():
    policy = Policy.load()
    decision = policy.decide({"hate": 0.95, "harassment": 0.6, "sexual": 0.1})
    assert decision.action == "block"
    assert decision.flagged == ["hate", "harassment"]
    assert decision.reasons[0].category == "hate" and decision.reasons[0].threshold == 0.90
    assert decision.reasons[1].action == "review"
    assert policy.decide({"hate": 0.1, "sexual": 0.2}).action == "allow"


def test_market_override_changes_threshold():
    policy = Policy.load()
    assert policy.decide({"hate": 0.85}).action == "restrict"
    de = policy.decide({"hate": 0.85}, market="de")
    assert de.action == "block" and de.market == "DE" and de.reasons[0].threshold == 0.80


def test_omitted_action_is_never_taken():
    rule = Policy.load().categories["harassment"]  # review + restrict only
    assert rule.action_for(0.99) == (Action.RESTRICT, 0.80)

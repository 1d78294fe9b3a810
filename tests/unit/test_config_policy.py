"""Taxonomy and policy files: loading, validation errors that name the field, and decisions."""

from __future__ import annotations

import textwrap

import pytest

from tripwire.common.config import ConfigError
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


def test_a_signal_not_evaluated_for_a_category_can_at_most_send_to_review():
    policy = Policy.load()
    # The bundled policy: text, and text read in pictures, are evaluated; image, audio, video, speech and nudity not.
    assert policy.trusted("sexual") == {"text", "image_text"}
    full = {"sexual": 0.99, "hate": 0.1}
    held = policy.decide(full, None, {"sexual": 0.1})  # the evaluated signals alone say nothing
    assert held.action == "review" and held.reasons[0].score == 0.99 and held.reasons[0].threshold == 0.50
    # The evaluated signals alone reach block: they decide, and the reason gives their score.
    by_text = policy.decide(full, None, {"sexual": 0.96})
    assert by_text.action == "block" and by_text.reasons[0].score == 0.96
    # The evaluated signals alone reach restrict while all of them together would block: restrict.
    assert policy.decide(full, None, {"sexual": 0.75}).action == "restrict"
    # Below the review band, the evaluated signals' review stands even when the whole score is lower.
    assert policy.decide({"sexual": 0.2}, None, {"sexual": 0.55}).action == "review"
    assert policy.decide({"sexual": 0.2}, None, {"sexual": 0.3}).action == "allow"
    # A rule without a review band: an unevaluated signal's block becomes nothing.
    no_review = {"version": "1", "taxonomy_version": "2026.11.0", "categories": {"illicit": {"block": 0.5}}}
    from tripwire.common.config import from_dict
    assert from_dict(Policy, no_review).decide({"illicit": 0.9}, None, {"illicit": 0.0}).action == "allow"
    # No evaluated signal at all (None) is not a score of 0, which a threshold of 0 would act on.
    block_all = {"version": "1", "taxonomy_version": "2026.11.0", "categories": {"illicit": {"review": 0.0, "block": 0.0}}}
    assert from_dict(Policy, block_all).decide({"illicit": 0.9}, None, {"illicit": None}).action == "review"


@pytest.mark.parametrize("signals, message", [
    ("{pictures: {categories: [hate], evaluated_on: x}}", r"signals\.pictures: not a signal"),
    ("{image: {categories: [nudity], evaluated_on: x}}", r"signals\.image\.categories: \['nudity'\]"),
    ("{image: {categories: [hate], evaluated_on: ''}}", "evaluated_on: name the golden set"),
])
def test_bad_signal_entries_name_the_field(tmp_path, signals, message):
    path = write(tmp_path, f"version: '1'\ntaxonomy_version: '2026.11.0'\ncategories: {{hate: {{review: 0.5}}}}\n"
                           f"signals: {signals}\n")
    with pytest.raises(ConfigError, match=message):
        Policy.load(path)


# -- training configs ---------------------------------------------------------------------------------
def test_every_shipped_training_config_loads():
    from tripwire.common.config import load_yaml
    from tripwire.training.config import TrainConfig

    from helpers import REPO

    for name in ("demo", "tiny", "olid"):  # the training configs (others in the folder are for other jobs)
        assert load_yaml(TrainConfig, REPO / "pipelines" / "configs" / f"{name}.yaml").run_name == name


def test_a_semantic_error_in_a_nested_config_names_its_path():
    from tripwire.common.config import from_dict
    from tripwire.training.config import TrainConfig

    with pytest.raises(ConfigError, match=r"^TrainConfig\.fit\.mixed_precision: 'fp8' must be"):
        from_dict(TrainConfig, {"fit": {"mixed_precision": "fp8"}})
    with pytest.raises(ConfigError, match=r"^TrainConfig\.data\.cache_preprocessed: no allowed type matches 'yes'"):
        from_dict(TrainConfig, {"data": {"cache_preprocessed": "yes"}})


def test_train_loop_config_round_trips_through_plain_data():
    from tripwire.common.config import from_dict, to_dict
    from tripwire.training.config import TrainConfig, TrainLoopConfig

    taxonomy = Taxonomy.load()
    loop = TrainLoopConfig(train=TrainConfig(run_name="r"), taxonomy=taxonomy, data_fingerprint="abc",
                           policy_version="p", pos_weight=[1.0] * len(taxonomy.names), quarantine_dir="/q",
                           num_rows=10)
    plain = to_dict(loop)
    assert from_dict(TrainLoopConfig, plain) == loop
    with pytest.raises(ConfigError, match=r"TrainLoopConfig\.data_fingerprint: required field is missing"):
        from_dict(TrainLoopConfig, {k: v for k, v in plain.items() if k != "data_fingerprint"})
    with pytest.raises(ConfigError, match="pos_weight: 1 values for"):
        from_dict(TrainLoopConfig, {**plain, "pos_weight": [1.0]})


# -- data.cache_preprocessed ----------------------------------------------------------------------------
def test_bytes_per_row_counts_the_models_modalities_only():
    from tripwire.training.cache import bytes_per_row
    from tripwire.model.safety_model import ComponentConfig, ModelConfig
    from tripwire.data.preprocess import (AudioPreprocessing, ImagePreprocessing, PreprocessingConfig, TextPreprocessing,
                                     VideoPreprocessing)

    pre = PreprocessingConfig(text=TextPreprocessing(max_length=32), image=ImagePreprocessing(size=48),
                              audio=AudioPreprocessing(n_mels=64), video=VideoPreprocessing(num_frames=8))
    text = 2 * 32 * 8
    image = 3 * 48 * 48 * 4
    audio = 64 * pre.audio.num_frames * 4
    video = 8 * image
    full = ModelConfig(preprocessing=pre)
    assert bytes_per_row(full) == text + image + audio + video
    text_only = ModelConfig(encoders={"text": ComponentConfig("hf_text")}, preprocessing=pre)
    assert bytes_per_row(text_only) == text


def test_the_demo_config_is_cached_automatically():
    from tripwire.common.config import load_yaml
    from tripwire.training.cache import bytes_per_row, decide_cache
    from tripwire.training.config import TrainConfig

    from helpers import REPO

    cfg = load_yaml(TrainConfig, REPO / "pipelines" / "configs" / "demo.yaml")
    assert cfg.data.cache_preprocessed == "auto"
    row = bytes_per_row(cfg.model)
    assert 270_000 < row < 280_000  # about 275 KB a row
    decision = decide_cache(cfg.data.cache_preprocessed, 2400, row, cfg.data.cache_budget_mb)
    assert decision.cache and "fits data.cache_budget_mb=4096" in decision.reason


@pytest.mark.parametrize("setting, rows, row_bytes, budget_mb, cache, reason", [
    ("auto", 1000, 2**20, 1000, True, "auto: 1000 rows x 1024 KiB = 1000 MiB fits data.cache_budget_mb=1000"),
    ("auto", 1001, 2**20, 1000, False, "auto: 1001 rows x 1024 KiB = 1001 MiB exceeds data.cache_budget_mb=1000"),
    ("auto", 0, 2**20, 0, True, "fits"),
    (True, 10**9, 2**20, 1, True, "data.cache_preprocessed=true"),
    (False, 1, 1, 4096, False, "data.cache_preprocessed=false"),
])
def test_cache_decision(setting, rows, row_bytes, budget_mb, cache, reason):
    from tripwire.training.cache import decide_cache

    decision = decide_cache(setting, rows, row_bytes, budget_mb)
    assert decision.cache is cache and reason in decision.reason


def test_cache_setting_is_validated():
    from tripwire.training.cache import decide_cache
    from tripwire.training.config import DataConfig

    with pytest.raises(ValueError, match="cache_preprocessed"):
        decide_cache("sometimes", 1, 1, 1)
    with pytest.raises(ConfigError, match="cache_budget_mb"):
        DataConfig(cache_budget_mb=-1)


def test_an_evaluated_score_within_float_noise_of_the_items_is_not_called_its_own_decision():
    """A served and an in-process result differ in the 7th decimal place: both must tell the same story."""
    from tripwire.moderation.moderator import Moderator

    policy = Policy.load()
    scores = {c: 0.01 for c in policy.categories}
    scores["harassment"] = 0.9
    trusted = {"harassment": 0.9 - 1e-7}
    decision = policy.decide(scores, None, trusted)
    assert decision.action == "restrict"
    assert Moderator.unevaluated(scores, trusted, decision, None, frozenset({"text", "image"}), policy) == {}
    apart = {"harassment": 0.85}  # the evaluated signals' own score decides: said so
    decided = policy.decide(scores, None, apart)
    why = Moderator.unevaluated(scores, apart, decided, None, frozenset({"text", "image"}), policy)
    assert why["harassment"]["why"] == "decided by the evaluated signals' own score"

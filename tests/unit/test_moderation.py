"""The moderation core: complete results, and every registered encoder through both of its paths (whole, as
in training and the in-process scorer, and split as Serve runs it)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime

import pytest

from helpers import assert_same_result, save_tiny_checkpoint
from tripwire.model import ENCODERS
from tripwire.model.safety_model import ComponentConfig
from tripwire.moderation.moderator import Moderator
from tripwire.policy import Action, Policy, Taxonomy
from tripwire.data.sample import read_manifest
from tripwire.moderation.result import ModerationResult

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)

# The video encoders; the other modalities' encoders are in every contract model.
VIDEO_ENCODERS = {"frame_pool": {}, "video_cnn": {"channels": [4, 8], "out_dim": 16}}


@pytest.fixture(scope="module", params=sorted(VIDEO_ENCODERS))
def checkpoint(request, tiny_model_config, tmp_path_factory):
    encoders = dict(tiny_model_config.encoders, video=ComponentConfig(request.param, VIDEO_ENCODERS[request.param]))
    config = dataclasses.replace(tiny_model_config, encoders=encoders)
    return save_tiny_checkpoint(config, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    samples = list(read_manifest(str(tiny_corpus)))
    return samples, str(tiny_corpus.parent)


def test_contract_models_cover_every_registered_encoder(tiny_model_config):
    covered = {c.name for m, c in tiny_model_config.encoders.items() if m != "video"} | set(VIDEO_ENCODERS)
    assert covered == set(ENCODERS.names())
    for name, cls in ENCODERS:
        assert cls.serving_upstream is None or cls.serving_upstream in ("text", "image", "audio"), name


def test_every_encoder_gives_the_same_results_whole_and_split_for_serving(checkpoint, corpus):
    samples, base = corpus
    whole = Moderator.local(checkpoint).moderate_sync(samples, base)
    split = Moderator.local(checkpoint, follow_serving_split=True).moderate_sync(samples, base)
    assert len(whole) == len(samples)
    for sample, a, b in zip(samples, whole, split):
        assert_same_result(b, a, where=f"{sample.id} {sample.modalities}")


def test_a_result_is_complete_and_follows_the_policy(checkpoint, corpus):
    samples, base = corpus
    moderator = Moderator.local(checkpoint)
    categories = Taxonomy.load().names
    mixes = set()
    for sample, result in zip(samples, moderator.moderate_sync(samples, base)):
        mixes.add(tuple(sample.modalities))
        assert result.id == sample.id and sorted(result.scores) == sorted(categories)
        assert all(0.0 <= s <= 1.0 for s in result.scores.values())
        policy, market = Policy.load(), sample.meta.get("market")
        held = result.evidence.get("unevaluated_signals", {})
        expected = policy.decide(result.scores, market, {c: v["evaluated_score"] for c, v in held.items()})
        assert result.decision == expected and result.flagged == expected.flagged
        for category, why in held.items():  # only a signal evaluated on real content restricts or blocks
            assert set(why["signals"]) == set(result.modalities) - policy.trusted(category) != set()
            assert policy.rule(category, market).action_for(result.scores[category])[0].label == why["would_have"]
            if why["would_have"] in ("restrict", "block") and why["took"] in ("allow", "review") and \
                    why["evaluated_score"] is not None:
                assert policy.rule(category, market).action_for(why["evaluated_score"])[0] <= Action.REVIEW
        assert set(sample.modalities) <= set(result.modalities)
        for category in categories:
            assert result.attribution[category]["driven_by"] in result.modalities
        if "video" in sample.modalities:
            frames = result.evidence["video_top_frames"]
            assert 1 <= len(frames) <= 3 and all(f["timestamp_s"] >= 0 for f in frames)
        assert result.model_version.startswith("contract@") and result.policy_version == expected.policy_version
        assert result.latency_ms is None  # only a caller that timed the stages gets them
        # One writer and one reader per format: the API's JSON and a scan's Parquet row give the result back.
        assert ModerationResult.from_json(result.to_json()) == result
        assert ModerationResult.from_row(result.to_row(NOW)) == result
    assert len(mixes) >= 6


def test_policy_swaps_live_and_must_fit_the_taxonomy(checkpoint, corpus):
    from tripwire.common.config import ConfigError, from_dict, read_yaml
    from tripwire.policy import default_resource

    samples, base = corpus
    moderator = Moderator.local(checkpoint)
    strict = read_yaml(default_resource("policy.yaml"))
    strict.update(version="all-review", markets={},
                  categories={c: {"review": 0.0} for c in strict["categories"]})
    moderator.set_policy(from_dict(Policy, strict))
    [result] = moderator.moderate_sync(samples[:1], base)
    assert result.action == "review" and result.policy_version == "all-review"
    wrong = dict(strict, taxonomy_version="1999.1")
    with pytest.raises(ConfigError, match="taxonomy"):
        moderator.set_policy(from_dict(Policy, wrong))
    assert moderator.policy.version == "all-review"


def test_a_signal_not_evaluated_on_real_content_never_restricts_or_blocks(checkpoint, corpus):
    """Under a policy that blocks every score, an item whose score rests on encoders the policy names no real
    evaluation for is held at review, and its evidence names them; once the policy names the image encoder
    as evaluated, image-only items block too."""
    from tripwire.common.config import from_dict, read_yaml
    from tripwire.policy import default_resource

    samples, base = corpus
    block_all = read_yaml(default_resource("policy.yaml"))
    block_all.update(version="block-all", markets={}, categories={c: {"review": 0.0, "block": 0.0}
                                                                  for c in block_all["categories"]})
    moderator = Moderator.local(checkpoint, policy=from_dict(Policy, block_all))
    results = dict(zip((s.id for s in samples), moderator.moderate_sync(samples, base)))
    for sample in samples:
        result = results[sample.id]
        mix = set(result.modalities)  # a video's soundtrack counts as audio
        if mix == {"text"}:
            assert result.action == "block" and "unevaluated_signals" not in result.evidence
        elif "text" not in mix:  # nothing evaluated: every category held at review, saying why
            assert result.action == "review" and set(result.evidence["unevaluated_signals"]) == set(result.scores)
            why = result.evidence["unevaluated_signals"]["sexual"]
            assert why["signals"] == sorted(mix) and why["would_have"] == "block" and why["took"] == "review"
            assert why["evaluated_score"] is None
            assert "not evaluated on real content for sexual" in why["why"]
    trusted_image = dict(block_all, version="image-evaluated", signals={
        **block_all["signals"], "image": {"categories": list(block_all["categories"]), "evaluated_on": "photos@1"}})
    moderator.set_policy(from_dict(Policy, trusted_image))
    image_only = [s for s in samples if s.modalities == ["image"]]
    assert image_only
    for result in moderator.moderate_sync(image_only, base):
        assert result.action == "block" and "unevaluated_signals" not in result.evidence
    # A live policy update between scoring and deciding: the batch is decided by the policy it was scored for.
    mixed = [s for s in samples if "text" in s.modalities and "image" in s.modalities][:2]
    prepared = [moderator.prepare(s, base) for s in mixed]
    scored = asyncio.run(moderator.score(prepared))
    moderator.set_policy(from_dict(Policy, block_all))
    decided = [moderator.result(s.id, p, x) for s, p, x in zip(mixed, prepared, scored)]
    assert all(r.policy_version == "image-evaluated" for r in decided)


def test_bad_media_is_a_media_error_naming_the_field(checkpoint):
    from tripwire.data.media import MediaError
    from tripwire.data.sample import Sample

    moderator = Moderator.local(checkpoint)
    with pytest.raises(MediaError) as info:
        moderator.moderate_sync([Sample(id="x", image=b"not an image")])
    assert info.value.field == "image" and info.value.reason == "corrupt"
    with pytest.raises(MediaError, match="empty"):
        moderator.prepare(Sample(id="nothing"))


"""Text normalisation: emoji and hashtag rewriting, config validation, and its place in preprocessing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tripwire.common.config import ConfigError, from_dict, to_dict
from tripwire.data.preprocess import PreprocessingConfig, Preprocessor, TextPreprocessing
from tripwire.data.textnorm import emoji_names, hashtag_words, normalize


def test_emoji_names_words_runs_flags_and_modifiers():
    assert emoji_names("so funny 😂😂 😂") == "so funny face with tears of joy"
    assert emoji_names("👍🏽 ok") == "thumbs up sign ok"  # skin tone dropped
    assert emoji_names("🇺🇸🇺🇸 rally") == "flag rally"
    assert emoji_names("❤️ you") == "heavy black heart you"  # variation selector dropped
    assert emoji_names("© 2019, 25°C") == "© 2019, 25°C"  # symbols the vocabulary knows stay
    assert emoji_names("no emoji at all  here") == "no emoji at all  here"  # untouched when nothing to do


def test_hashtag_words_split_case_and_digits():
    assert hashtag_words("#BuildTheWall now") == "build the wall now"
    assert hashtag_words("#USAToday2020 #maga") == "usa today 2020 maga"
    assert hashtag_words("C# and # alone") == "C# and # alone"


def test_unknown_step_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="normalize: unknown text normalizer.*'emojis'"):
        TextPreprocessing(normalize=("emojis",))
    with pytest.raises(ConfigError, match="normalize"):
        from_dict(PreprocessingConfig, {"text": {"normalize": ["hashtag_words", "nope"]}})


def test_steps_survive_the_manifest_round_trip():
    cfg = from_dict(PreprocessingConfig, {"text": {"normalize": ["emoji_names", "hashtag_words"]}})
    again = from_dict(PreprocessingConfig, json.loads(json.dumps(to_dict(cfg))))
    assert again.text.normalize == ("emoji_names", "hashtag_words") == cfg.text.normalize


def test_preprocessor_tokenises_normalised_text(tiny_model_config):
    plain = Preprocessor(tiny_model_config.preprocessing, modalities=["text"])
    social = Preprocessor(dataclasses.replace(
        tiny_model_config.preprocessing,
        text=dataclasses.replace(tiny_model_config.preprocessing.text, normalize=("emoji_names", "hashtag_words")),
    ), modalities=["text"])
    tweet = "you are a joke 🤣🙄 #BuildTheWall"
    unk = plain.tokenizer.unk_token_id
    assert unk in plain.text([tweet])["input_ids"][0]  # the raw tweet's emojis are invisible to the model
    ids = social.text([tweet])["input_ids"][0]
    assert unk not in ids
    expected = plain.text([normalize(tweet, ("emoji_names", "hashtag_words"))])["input_ids"][0]
    assert (ids == expected).all()

"""The request schemas reject exactly what the server rejects, and the OpenAI ``input`` parser keeps its
behaviour for typed parts (what the HTTP API now hands it) and for plain mappings."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from deployments.api import (CONTENT_FIELDS, IMAGE_DATA_URL_FORMAT, MEDIA_FORMATS, BatchRequest, ImageURLPart,
                             ModerateRequest, OpenAIModerationRequest, TextPart, error_field)
from tripwire.data.media import MediaError
from tripwire.serving.openai_compat import MAX_INPUTS, parse_input
from tripwire.data.synthetic import encode_image

PNG = encode_image(__import__("numpy").zeros((4, 4, 3), dtype="uint8"), "PNG")
PNG_URL = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"


def first_error(model, body) -> tuple[str, str]:
    """The first validation error as the API's error handler reports it: (field, reason)."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    error = caught.value.errors()[0]
    # Pydantic's location starts at the model; the API's adds "body" first (stripped again by error_field).
    return error_field(("body", *error["loc"])) or ("item" if error["type"] == "empty" else "body"), error["type"]


@pytest.mark.parametrize("body", [{}, {name: None for name in CONTENT_FIELDS},
                                  {"id": "x", "market": "DE", "text": None, "image": None, "audio": None,
                                   "video": None, "language": "en", "content_type": "post"}])
def test_an_item_without_content_is_refused_naming_the_item(body):
    assert first_error(ModerateRequest, body) == ("item", "empty")


def test_an_empty_batch_item_is_refused_naming_its_index():
    assert first_error(BatchRequest, {"items": [{"text": "fine"}, {"text": None}]}) == ("items.1", "empty")


@pytest.mark.parametrize("field", CONTENT_FIELDS)
def test_any_one_content_field_makes_an_item(field):
    assert getattr(ModerateRequest.model_validate({field: ""}), field) == ""


@pytest.mark.parametrize("market, ok", [("DE", True), ("de", True), ("Germany", False), ("00", False),
                                        ("D", False), ("DE\n", False)])
def test_market_is_iso_alpha_2(market, ok):
    if ok:
        assert ModerateRequest.model_validate({"text": "x", "market": market}).market == market
    else:
        assert first_error(ModerateRequest, {"text": "x", "market": market}) == ("market", "string_pattern_mismatch")


def test_schema_says_what_the_validator_checks():
    schema = ModerateRequest.model_json_schema()
    assert [branch["required"] for branch in schema["anyOf"]] == [[name] for name in CONTENT_FIELDS]
    for name, fmt in MEDIA_FORMATS.items():
        assert {"type": "string", "format": fmt} in schema["properties"][name]["anyOf"]
    assert "maxLength" not in str(schema["properties"]["text"])  # the limit is config: 413, not the schema
    assert schema["properties"]["market"]["anyOf"][0]["pattern"] == "^[A-Za-z]{2}$"
    url = OpenAIModerationRequest.model_json_schema()["$defs"]["ImageURL"]["properties"]["url"]
    assert url["format"] == IMAGE_DATA_URL_FORMAT


@pytest.mark.parametrize("value, field, reason", [
    ([{}], "input.0", "union_tag_not_found"),
    ([{"type": "video", "video": "x"}], "input.0", "union_tag_invalid"),
    ([{"type": "text"}], "input.0.text", "missing"),
    ([{"type": "text", "text": "a", "extra": 1}], "input.0.extra", "extra_forbidden"),
    ([{"type": "image_url", "image_url": {}}], "input.0.image_url.url", "missing"),
    ([{"type": "image_url", "image_url": {"url": PNG_URL}}] * 2, "input", "too_many_images"),
    ([], "input", "too_short"),
    (["a"] * (MAX_INPUTS + 1), "input", "too_long"),
    (["a", {"type": "text", "text": "b"}], "input.0", "model_attributes_type"),
    (5, "input", "list_type"),
    (None, "input", "list_type"),
])
def test_openai_input_is_a_string_strings_or_typed_parts(value, field, reason):
    assert first_error(OpenAIModerationRequest, {"input": value}) == (field, reason)


def test_typed_parts_are_accepted_and_parsed_like_their_mappings():
    parts = [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": PNG_URL}},
             {"type": "text", "text": "there"}]
    request = OpenAIModerationRequest.model_validate({"input": parts, "model": "m"})
    assert [type(p) for p in request.input] == [TextPart, ImageURLPart, TextPart]
    assert parse_input(request.input) == parse_input(parts) == [{"text": "hello\nthere", "image": PNG}]
    image_only = OpenAIModerationRequest.model_validate({"input": parts[1:2]})
    assert parse_input(image_only.input) == [{"text": None, "image": PNG}]


def test_strings_stay_strings():
    assert OpenAIModerationRequest.model_validate({"input": "hi"}).input == "hi"
    many = OpenAIModerationRequest.model_validate({"input": ["a", "b"]}).input
    assert parse_input(many) == [{"text": "a", "image": None}, {"text": "b", "image": None}]


def test_remote_image_urls_are_valid_parts_but_never_fetched():
    request = OpenAIModerationRequest.model_validate(
        {"input": [{"type": "image_url", "image_url": {"url": "http://example.com/x.png"}}]})
    with pytest.raises(MediaError) as caught:
        parse_input(request.input)
    assert (caught.value.field, caught.value.reason) == ("input[0].image_url.url", "disallowed_uri")


IMAGE_PART = {"type": "image_url", "image_url": {"url": PNG_URL}}
TEXT_PART = {"type": "text", "text": "t"}


@pytest.mark.parametrize("model, body", [
    (ModerateRequest, {}), (ModerateRequest, {"text": None, "image": None}), (ModerateRequest, {"text": ""}),
    (ModerateRequest, {"image": "aGk=", "market": "de"}), (ModerateRequest, {"video": "aGk=", "market": "DEU"}),
    (ModerateRequest, {"audio": "aGk=", "id": "x" * 257}), (ModerateRequest, {"text": "x", "colour": "red"}),
    (BatchRequest, {"items": [{"text": "a"}, {"audio": None}]}), (BatchRequest, {"items": [{"text": "a"}]}),
    (BatchRequest, {"items": []}),
    (OpenAIModerationRequest, {"input": [{}]}), (OpenAIModerationRequest, {"input": []}),
    (OpenAIModerationRequest, {"input": ""}), (OpenAIModerationRequest, {"input": ["a", "b"]}),
    (OpenAIModerationRequest, {"input": [TEXT_PART, IMAGE_PART, TEXT_PART]}),
    (OpenAIModerationRequest, {"input": [IMAGE_PART]}),
    (OpenAIModerationRequest, {"input": [TEXT_PART] * 3}),
    (OpenAIModerationRequest, {"input": [IMAGE_PART, TEXT_PART, IMAGE_PART]}),
    (OpenAIModerationRequest, {"input": ["a", TEXT_PART]}),
    (OpenAIModerationRequest, {"input": [TEXT_PART] * (MAX_INPUTS + 1)}),
    (OpenAIModerationRequest, {"input": "a", "model": None}), (OpenAIModerationRequest, {"model": "m"}),
])
def test_the_json_schema_accepts_exactly_what_the_model_accepts(model, body):
    """The published schema (what clients and fuzzers read) and pydantic (what the server enforces) agree."""
    import jsonschema

    try:
        model.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert jsonschema.Draft202012Validator(model.model_json_schema()).is_valid(body) == accepted


@pytest.mark.parametrize("model, body, field", [
    (ModerateRequest, {"text": "\ud800"}, "text"), (ModerateRequest, {"text": "x", "id": "\udc00"}, "id"),
    (ModerateRequest, {"text": "x", "language": "a\ud800"}, "language"),
    (BatchRequest, {"items": [{"text": "x", "content_type": "\udfff"}]}, "items.0.content_type"),
    (OpenAIModerationRequest, {"input": "\ud800"}, "input"),
    (OpenAIModerationRequest, {"input": ["fine", "\ud800"]}, "input.1"),
    (OpenAIModerationRequest, {"input": [{"type": "text", "text": "\ud800"}]}, "input.0.text"),
    (OpenAIModerationRequest, {"input": "x", "model": "\ud800"}, "model"),
])
def test_lone_surrogates_are_refused_naming_the_field(model, body, field):
    """JSON can escape them; they are no text (the tokenizer raised on them, and echoing one broke the
    answer's UTF-8 encoding: 500s)."""
    assert first_error(model, body) == (field, "string_unicode")
    # A pair, as JSON escapes a character outside the BMP, is one character: fine.
    assert ModerateRequest.model_validate(json.loads('{"text": "\\ud83d\\ude00"}')).text == "\U0001f600"


def moderation_result(flagged: tuple[str, ...] = ()):
    """A Tripwire result over the bundled taxonomy (what the moderation core answers)."""
    from tripwire.moderation.result import ModerationResult
    from tripwire.policy import Taxonomy

    names = Taxonomy.load().names
    return ModerationResult.from_json(
        {"id": "x", "scores": {c: (0.9 if c in flagged else 0.02) for c in names}, "flagged": list(flagged),
         "decision": {"action": "block" if flagged else "allow", "reasons": [], "flagged": list(flagged),
                      "policy_version": "p", "market": None},
         "attribution": {c: {"driven_by": "text", "contributions": {"text": 0.5}} for c in names},
         "evidence": {}, "modalities": ["text"], "model_version": "m"})


def test_unscored_categories_are_marked_not_checked_never_scored_zero():
    """sexual/minors (and the other categories Tripwire does not score) answered 0.0 / false: a client read
    "checked and clean". They are null, never flagged, and listed in Tripwire's extension field."""
    from deployments.api import OpenAIModerationResponse
    from tripwire.serving.openai_compat import OpenAICategoryMap, to_openai_response

    mapping = OpenAICategoryMap.load()
    unscored = [name for name, target in mapping.categories.items() if target is None]
    assert "sexual/minors" in unscored and mapping.unscored == unscored
    response = to_openai_response([moderation_result(("hate",))], mapping, "m")
    OpenAIModerationResponse.model_validate(response)  # the documented schema (which forbids other fields)
    [result] = response["results"]
    assert result["tripwire"] == {"unscored_categories": unscored}
    for name in unscored:
        assert result["category_scores"][name] is None and result["categories"][name] is False
        assert result["category_applied_input_types"][name] == []
    scored = [name for name in mapping.categories if name not in unscored]
    assert all(isinstance(result["category_scores"][name], float) for name in scored)
    assert result["categories"]["hate"] is True and result["category_scores"]["hate"] == 0.9 and result["flagged"]
    assert set(result["categories"]) == set(result["category_scores"]) == set(mapping.categories)


def test_the_openai_sdk_parses_unscored_categories_and_the_extension():
    """The official SDK (its own response parsing) over the body the endpoint sends: a client using it sees
    None for an unscored category, and the extension as an extra field."""
    import httpx
    import openai

    from tripwire.serving.openai_compat import OpenAICategoryMap, to_openai_response

    body = to_openai_response([moderation_result(), moderation_result(("violence",))], OpenAICategoryMap.load(), "m")
    server = httpx.MockTransport(lambda request: httpx.Response(200, json=body))  # stands in for the network
    client = openai.OpenAI(base_url="http://tripwire/v1", api_key="unused", max_retries=0,
                           http_client=httpx.Client(transport=server))
    clean, violent = client.moderations.create(input=["a", "b"]).results
    assert clean.category_scores.sexual_minors is None and clean.categories.sexual_minors is False
    assert clean.category_scores.hate == pytest.approx(0.02) and not clean.flagged
    assert clean.tripwire["unscored_categories"] == clean.model_extra["tripwire"]["unscored_categories"]
    assert "sexual/minors" in clean.tripwire["unscored_categories"]
    assert violent.categories.violence is True and violent.flagged


def test_an_image_over_the_limit_is_refused_before_it_is_decoded():
    parts = [{"type": "text", "text": "t"}, {"type": "image_url", "image_url": {"url": PNG_URL}}]
    assert parse_input(parts, max_image_bytes=len(PNG))[0]["image"] == PNG
    with pytest.raises(MediaError) as caught:
        parse_input(parts, max_image_bytes=len(PNG) - 1)
    assert (caught.value.field, caught.value.reason) == ("input[1].image_url.url", "too_large")

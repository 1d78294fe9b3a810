"""The HTTP API's contract: request and response schemas (the OpenAPI document), the FastAPI app, and
the error handlers that give every failure the same JSON body naming the field at fault.

(No ``from __future__ import annotations`` here: FastAPI must see the request models' real types.)
"""

import math
from typing import Annotated, Any, Iterable, Literal, Mapping, Union

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tripwire.compliance.idempotency import RequestIdConflict
from tripwire.data.media import MediaError, MediaLimits
from tripwire.serving.openai_compat import MAX_INPUTS

MAX_BATCH_ITEMS = 32
# Rejected calls are told to come back after this long (Serve's backpressure config and our 503s).
OVERLOADED = {"status_code": 503, "retry_after_s": 1}


# The media fields' string formats. A JSON schema cannot say "the base64 of a decodable PNG", so each
# media field names a format of its own that carries that meaning (described in the document); a fuzzer
# registers a generator per format that makes real media (tests/schemathesis_hooks.py).
MEDIA_FORMATS = {"image": "tripwire-image", "audio": "tripwire-audio", "video": "tripwire-video"}
IMAGE_DATA_URL_FORMAT = "tripwire-image-data-url"
CONTENT_FIELDS = ("text", "image", "audio", "video")
_MEDIA_KINDS = {"image": "image (PNG, JPEG, ...)", "audio": "audio (WAV, FLAC, OGG, ...)",
                "video": "video (MP4, WebM, ...)"}


def _media_field(kind: str) -> Any:
    return Field(default=None, description=(
        f"{_MEDIA_KINDS[kind]}: the file's bytes in base64, or a ``data:<mime>;base64,`` URI "
        f"(format ``{MEDIA_FORMATS[kind]}``: must decode as {kind}; corrupt media gets 422). A URI "
        "(``s3://``, ``file://``, ...) only where the deployment allow-lists its prefix (``uri_allow_list``, "
        "empty by default: 422 ``disallowed_uri``). Over the size or duration limits: 413."))


def _media_string(kind: str) -> Any:
    return Annotated[str, WithJsonSchema({"type": "string", "format": MEDIA_FORMATS[kind]})]


ImageData, AudioData, VideoData = (_media_string(kind) for kind in ("image", "audio", "video"))


def _unicode(value: str) -> str:
    # JSON can escape lone surrogates ("\ud800"): no Unicode text, and they broke deep inside (the
    # tokenizer's TypeError, or UTF-8 encoding of an answer echoing them: a 500). Refused here, as
    # pydantic's own constrained strings (max_length) refuse them. Media fields need no check: base64
    # decoding refuses any non-ASCII character.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("string_unicode", "not valid Unicode text (a lone surrogate)") from None
    return value


Text = Annotated[str, AfterValidator(_unicode)]
Key = Annotated[str, Field(max_length=256), AfterValidator(_unicode)]  # ids (the length check first)
# ISO 3166-1 alpha-2; either case (the policy upper-cases it).
Market = Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]


class ModerateRequest(BaseModel):
    """One item to moderate: at least one of ``text``, ``image``, ``audio``, ``video`` (not null)."""

    # The "at least one content field" rule, in the schema (anyOf) as in the validator below, so the
    # document rejects exactly what the server does.
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "anyOf": [{"required": [name], "properties": {name: {"type": "string"}}} for name in CONTENT_FIELDS]})

    id: Key | None = Field(default=None, description="caller's item id, echoed back")
    request_id: Key | None = Field(default=None, description=(
        "idempotency key, bound to the request it is first used with: the same request_id with the same "
        "request (every other field equal) gets the first answer again (from any replica when the decision "
        "log is on); with a different request it is refused with 409 ``request_id_reused``, never answered"))
    # No maxLength: the limit is the deployment's preprocessing config (10,000 characters by default);
    # over it the answer is 413.
    text: Text | None = Field(default=None, description="text; over the configured limit (10,000 characters by "
                                                       "default): 413")
    image: ImageData | None = _media_field("image")
    audio: AudioData | None = _media_field("audio")
    video: VideoData | None = _media_field("video")
    market: Market | None = Field(default=None, description="ISO 3166-1 alpha-2 market (selects policy overrides)")
    language: Text | None = None
    content_type: Text | None = None

    @model_validator(mode="after")
    def _has_content(self) -> "ModerateRequest":
        if all(getattr(self, name) is None for name in CONTENT_FIELDS):
            # The error handler names the field "item" (this error's location is the item itself).
            raise PydanticCustomError("empty", "the item has no text, image, audio or video")
        return self


LONG_MEDIA_FIELDS = ("audio", "video")
ASYNC_ROUTE = "/v1/jobs"
# A job's media: a URI the deployment allow-lists, of a file that decodes (the format says so; a fuzzer draws
# such URIs, tests/schemathesis_hooks.py).
MEDIA_URI_FORMAT = "tripwire-media-uri"
MediaURI = Annotated[str, AfterValidator(_unicode), WithJsonSchema({"type": "string", "format": MEDIA_URI_FORMAT,
                                                                     "maxLength": 4096})]


class JobRequest(BaseModel):
    """Long media to moderate asynchronously: exactly one of ``audio`` or ``video``, by URI."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": [name], "properties": {name: {"type": "string"}}} for name in LONG_MEDIA_FIELDS]})

    id: Key | None = Field(default=None, description="caller's item id, echoed back in the result")
    audio: MediaURI | None = Field(default=None, max_length=4096, description=(
        "the audio file's URI (``s3://``, ``file://``, ...), under a prefix the deployment allow-lists "
        "(``uri_allow_list``; otherwise 422 ``disallowed_uri``); inline bytes are not taken here. Longer than the "
        "windows' ``max_seconds`` or larger than their ``max_bytes``: 413"))
    video: MediaURI | None = Field(default=None, max_length=4096, description=(
        "a video file's URI, as for audio: its soundtrack is scored in windows (its frames are not)"))
    text: Text | None = Field(default=None, description="the item's title or description, scored with it")
    market: Market | None = Field(default=None, description="ISO 3166-1 alpha-2 market (selects policy overrides)")
    language: Text | None = None
    content_type: Text | None = None

    @model_validator(mode="after")
    def _one_medium(self) -> "JobRequest":
        given = [name for name in LONG_MEDIA_FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise PydanticCustomError("one_medium", "a job takes exactly one of audio or video (a URI)")
        return self


class JobProgress(BaseModel):
    done_s: float | None = Field(description="seconds of the media scored so far")
    total_s: float | None = Field(description="the media's length where its container states it")
    fraction: float | None


class JobStatus(BaseModel):
    """A job: its status, progress and, when done, the whole result (as /v1/moderate would answer it, without
    latency; its evidence lists the worst windows per category with their times)."""

    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    progress: JobProgress | None
    attempts: int = Field(description="how many times a replica took it up (more than one: a replica was lost)")
    created_at: float
    updated_at: float
    result: dict[str, Any] | None = Field(default=None, description="when done: the moderation result")
    error: dict[str, Any] | None = Field(default=None, description="when failed: field, reason and message")


class JobAccepted(BaseModel):
    job_id: str
    status: Literal["queued"]
    location: str = Field(description="where to poll: GET this path")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ModerateRequest] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: Text


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, WithJsonSchema({"type": "string", "format": IMAGE_DATA_URL_FORMAT})] = Field(
        description="a ``data:<mime>;base64,`` URL of an image (PNG, JPEG, ...); remote URLs are never "
                    "fetched (422 ``disallowed_uri``), corrupt images get 422")


class ImageURLPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["image_url"]
    image_url: ImageURL


Part = Annotated[TextPart | ImageURLPart, Field(discriminator="type")]
# The tags pydantic puts in an error's location for the branch of ``input`` it tried (dropped again by
# the error handler, so a field reads ``input.0.text``).
_INPUT_SHAPES = ("string", "strings", "parts")
_PART_TYPES = ("text", "image_url")


def _one_image(parts: list[Any]) -> list[Any]:
    if sum(isinstance(part, ImageURLPart) for part in parts) > 1:
        raise PydanticCustomError("too_many_images", "one image_url part per input (one item)")
    return parts


def _input_shape(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and all(isinstance(entry, str) for entry in value):
        return "strings"
    return "parts"


ModerationInput = Annotated[Union[
    Annotated[Text, Tag("string")],
    Annotated[list[Text], Field(min_length=1, max_length=MAX_INPUTS), Tag("strings")],
    # One multimodal item: text parts (joined) and at most one image. In the schema: text parts only, or
    # exactly one image part (the same as "minContains: 0, maxContains: 1", which fuzzers read as "no
    # image parts at all" and so never try one).
    Annotated[list[Part], Field(min_length=1, max_length=MAX_INPUTS, json_schema_extra={"anyOf": [
        {"items": {"properties": {"type": {"const": "text"}}}},
        {"contains": {"type": "object", "properties": {"type": {"const": "image_url"}}, "required": ["type"]},
         "maxContains": 1}]}), AfterValidator(_one_image), Tag("parts")],
], Discriminator(_input_shape)]


class OpenAIModerationRequest(BaseModel):
    """The OpenAI moderation request body."""

    model_config = ConfigDict(extra="forbid")

    input: ModerationInput = Field(description=(
        "a string (one item), a non-empty array of strings (one item each), or a non-empty array of typed "
        "parts (one multimodal item: its text parts joined, at most one image_url part). Text over the "
        "configured limit (10,000 characters by default): 413."))
    model: Text | None = Field(default=None, description="echoed back (default: the served model's version)")


class _Documented(BaseModel):
    """Response schemas: they document the answers in the OpenAPI document, and tests validate real answers
    against them (an undocumented field fails)."""

    model_config = ConfigDict(extra="forbid")


class DecisionReason(_Documented):
    category: str
    score: float
    threshold: float
    action: str
    ground: str = Field(description="the policy ground the rule enforces")


class DecisionBody(_Documented):
    action: str = Field(description="allow, review, restrict or block: the strictest over the categories")
    reasons: list[DecisionReason]
    flagged: list[str]
    policy_version: str
    market: str | None


class CategoryAttribution(_Documented):
    driven_by: str | None = Field(description="the modality that raised this category's score most")
    contributions: dict[str, float] = Field(description="modality -> leave-one-modality-out score contribution")


class ModerateResponse(_Documented):
    """The answer for one item (documents the response; the endpoint returns it already serialized)."""

    id: str
    request_id: str | None = None
    puid: str | None = Field(default=None, description="the decision's id in the decision log (when the log is on): "
                                                       "appeals and statements of reasons refer to it")
    scores: dict[str, float] = Field(description="category -> calibrated score in [0, 1]")
    flagged: list[str]
    decision: DecisionBody
    attribution: dict[str, CategoryAttribution]
    evidence: dict[str, Any] = Field(description="video_top_frames (timestamps) and audio_top_window, when present")
    modalities: list[str]
    model_version: str
    policy_version: str
    latency_ms: dict[str, float] = Field(description="per stage, as this request saw them")


class ItemError(_Documented):
    field: str
    reason: str
    message: str
    async_route: str | None = Field(default=None, description=(
        "for audio or video over the synchronous limits (413): the asynchronous job API that takes it"))


class ErrorResponse(_Documented):
    error: ItemError


# Every error answer has the same JSON body, naming the field at fault. Each scoring endpoint documents
# every status it can answer (a fuzzer checks: tests/integration/test_openapi_fuzz.py).
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
# 503 can come from any route: the ingress's own queue bound is enforced by Serve's proxy before the app
# runs, and that answer is plain text (naming the bound), not the JSON body; the ingress's 503s are JSON.
OVERLOADED_RESPONSE = {503: {
    "model": ErrorResponse, "headers": _RETRY_AFTER,
    "description": "overloaded (a queue bound was hit) or a replica was lost; retry after Retry-After seconds",
    "content": {"text/plain": {"schema": {"type": "string"}}}}}
ERROR_RESPONSES = {
    413: {"model": ErrorResponse, "description": (
        "text or media over the configured limits (size, pixels, duration; audio or video over them names "
        "``async_route``, the job API that takes long media), or a request body over the "
        "endpoint's limit (``field: body``, the message names the limit in bytes; refused from its "
        "Content-Length, or once that many bytes were read)")},
    422: {"model": ErrorResponse, "description": (
        "invalid request: a body that is not JSON (or not UTF-8), wrong type, unknown field, an item "
        "without content, media that does not decode, a modality the served model does not score (see "
        "GET /v1/model), a URI not on the allow-list (disallowed_uri)")},
    **OVERLOADED_RESPONSE,
}
JOB_RESPONSES = {**ERROR_RESPONSES, 404: {"model": ErrorResponse, "description": (
    "no such job, or this deployment takes no jobs (its args set no ``jobs_store``)")}}
# /v1/moderate also answers 409 (a batch answers it per item, in a 200).
REQUEST_ID_RESPONSES = {**ERROR_RESPONSES, 409: {"model": ErrorResponse, "description": (
    "``request_id_reused``: the request_id was already used with a different request (idempotency keys are "
    "bound to the request they are first used with); send a new request_id")}}


class BatchItemFailure(_Documented):
    id: str | None
    error: ItemError


class BatchResponse(_Documented):
    results: list[ModerateResponse | BatchItemFailure]


class TripwireModerationExtension(_Documented):
    unscored_categories: list[str] = Field(description=(
        "OpenAI categories Tripwire does not score (not checked: their score is null, never flagged); "
        "'false' for them means 'not checked', not 'clean'"))


class OpenAIModerationResult(_Documented):
    flagged: bool
    categories: dict[str, bool] = Field(description="true where flagged; false for unscored categories too "
                                                    "(see ``tripwire.unscored_categories``)")
    category_scores: dict[str, float | None] = Field(description=(
        "calibrated score in [0, 1]; null for a category Tripwire does not score (not checked, which is not "
        "a score of 0)"))
    category_applied_input_types: dict[str, list[str]]
    tripwire: TripwireModerationExtension = Field(description=(
        "Tripwire's extension of the OpenAI result (the openai SDK keeps it as an extra field)"))


class OpenAIModerationResponse(_Documented):
    id: str
    model: str
    results: list[OpenAIModerationResult]


api = FastAPI(title="Tripwire", version="0.1.0", responses=OVERLOADED_RESPONSE,
              description="Multimodal content moderation: scores per policy category and a policy decision.")

# -- request body limits: a body is refused (413) from its Content-Length, or once more than the limit has
# been read, so a replica never holds more of one than the limit (the endpoints would read it whole).
SCORING_PATHS = ("/v1/moderate", "/v1/moderate/batch", "/v1/moderations")
_OTHER_FIELDS_BYTES = 8 * 1024  # ids, market, language, content_type, field names and JSON punctuation


def _json_chars(chars: int) -> int:
    """The most bytes ``chars`` characters take in JSON: ``\\uXXXX\\uXXXX`` for a character outside the BMP."""
    return 12 * chars


def _base64_json(size: int) -> int:
    """The most bytes ``size`` bytes of media take as a base64 JSON string: a data: URI header, and "/" escaped
    as "\\/" by some encoders (one in 64 base64 characters on average; 5% margin)."""
    return math.ceil(4 * math.ceil(size / 3) * 1.05) + 256


def body_limits(limits: MediaLimits, modalities: Iterable[str], max_body_bytes: int | None = None) -> dict[str, int]:
    """Each scoring endpoint's body limit in bytes, from the served model's media limits: the largest body
    a request within them can take (text, then each served modality's media, inline in base64).

    ``/v1/moderate``: one item. ``/v1/moderate/batch``: ``MAX_BATCH_ITEMS`` items' text and one item's
    media. ``/v1/moderations``: ``MAX_INPUTS`` texts and one image. ``max_body_bytes`` (the app's
    ``max_body_mb``) lowers every one of them to at most that.
    """
    served = set(modalities)
    text = _json_chars(limits.max_text_chars) + _OTHER_FIELDS_BYTES
    media = sum(_base64_json(getattr(limits, f"max_{m}_bytes")) for m in ("image", "audio", "video") if m in served)
    derived = {"/v1/moderate": text + media, "/v1/moderate/batch": MAX_BATCH_ITEMS * text + media,
               "/v1/moderations": MAX_INPUTS * text + _base64_json(limits.max_image_bytes),
               ASYNC_ROUTE: text + 2 * _json_chars(4096) + _OTHER_FIELDS_BYTES}  # a job's media is a URI
    if max_body_bytes is None:
        return derived
    return {path: min(limit, max_body_bytes) for path, limit in derived.items()}


# Set by the ingress replica from its model (set_body_limits); the middleware reads it per request.
_BODY_LIMITS: dict[str, int] = body_limits(MediaLimits(), ("text", "image", "audio", "video"))


def set_body_limits(limits: Mapping[str, int]) -> None:
    """This process's body limits (path -> bytes); the ingress sets them from its model on start."""
    _BODY_LIMITS.clear()
    _BODY_LIMITS.update(limits)


def _too_large(limit: int, path: str, size: str) -> JSONResponse:
    return _error(413, "body", "too_large", f"the request body is {size} > the limit of {limit} bytes for "
                                            f"POST {path}")


class BodyLimit:
    """ASGI middleware: a scoring endpoint's body is read here, at most its limit (``_BODY_LIMITS``) and no
    further, then handed on whole; over the limit the answer is 413 and the rest is never read. A declared
    ``Content-Length`` over the limit is refused before anything is read."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        path = _route_path(scope)
        limit = _BODY_LIMITS.get(path)
        if limit is None:
            return await self.app(scope, receive, send)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            return await _too_large(limit, path, f"{declared} bytes (Content-Length)")(scope, receive, send)
        body, more, disconnected = bytearray(), True, False
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                return await _too_large(limit, path, f"over {limit} bytes (read so far: {len(body)})")(
                    scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if disconnected:
                return {"type": "http.disconnect"}
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: only a disconnect comes

        return await self.app(scope, replay, send)


def _route_path(scope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):].startswith("/"):
        return path[len(root):]
    return path


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


api.add_middleware(BodyLimit)


def _error(status: int, field: str, reason: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, headers=headers,
                        content={"error": {"field": field, "reason": reason, "message": message}})


def error_field(loc: tuple) -> str:
    """An error location -> the caller's field, without the names pydantic gives union branches."""
    names: list[str] = []
    for i, part in enumerate(loc):
        if i == 0 and part == "body":
            continue
        if i and loc[i - 1] == "input" and part in _INPUT_SHAPES:
            continue  # which shape of OpenAI ``input`` was tried
        if i > 1 and loc[i - 2] == "parts" and isinstance(loc[i - 1], int) and part in _PART_TYPES:
            continue  # which part type (the discriminator's value)
        names.append(str(part))
    return ".".join(names)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    reason = first.get("type", "invalid")
    if reason == "json_invalid":  # FastAPI's location is the character offset, not a field
        return _error(422, "body", reason, f"the body is not JSON: {first.get('ctx', {}).get('error', 'invalid')}")
    # An error of the whole item (no content field) is located at the item: named "item" when it is the body.
    field = error_field(tuple(first.get("loc", ()))) or ("item" if reason == "empty" else "body")
    return _error(422, field, reason, first.get("msg", "invalid request"))


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's and FastAPI's own errors, in the project's body too (their default is ``{"detail"}``)."""
    if exc.status_code == 400:
        # FastAPI's "There was an error parsing the body": bytes that do not decode as text (not UTF-8).
        # A 422 like any other body that is not JSON, so clients handle one status for it.
        return _error(422, "body", "invalid_body", "the body is not a JSON document in UTF-8")
    field, reason = {404: ("path", "not_found"), 405: ("method", "method_not_allowed")}.get(
        exc.status_code, ("request", "http_error"))
    return _error(exc.status_code, field, reason, str(exc.detail), headers=exc.headers)


@api.exception_handler(BackPressureError)
async def _overloaded(request: Request, exc: BackPressureError) -> JSONResponse:
    response = _error(503, "service", "overloaded", "too many requests queued; retry later")
    response.headers["Retry-After"] = str(OVERLOADED["retry_after_s"])
    return response


@api.exception_handler(RayActorError)
@api.exception_handler(ActorUnavailableError)
async def _replica_lost(request: Request, exc: Exception) -> JSONResponse:
    # A replica died mid-request (Serve is replacing it): tell the caller to retry, never a bare 500.
    response = _error(503, "service", "replica_unavailable", f"a model replica was lost: {type(exc).__name__}")
    response.headers["Retry-After"] = "1"
    return response


@api.exception_handler(RequestIdConflict)
async def request_id_reused(request: Request, exc: RequestIdConflict) -> JSONResponse:
    return _error(409, "request_id", "request_id_reused", str(exc))


@api.exception_handler(MediaError)
async def _media_error(request: Request, exc: MediaError) -> JSONResponse:
    status = 413 if exc.reason in ("too_large", "too_long") else 422
    if status == 413 and exc.field in LONG_MEDIA_FIELDS and request.url.path != ASYNC_ROUTE:
        # Long audio and video are taken, by URI, by the asynchronous job API.
        return JSONResponse(status_code=413, content={"error": {
            "field": exc.field, "reason": exc.reason, "async_route": ASYNC_ROUTE,
            "message": f"{exc}; media over the synchronous limit goes through the asynchronous job API: POST "
                       f"{ASYNC_ROUTE} with its URI, then GET {ASYNC_ROUTE}/{{job_id}}"}})
    return _error(status, exc.field, exc.reason, str(exc))

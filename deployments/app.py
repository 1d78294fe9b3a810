"""The Tripwire Serve application: HTTP ingress -> per-modality encoders (concurrently) -> fusion -> policy
(applied in the ingress).

Build it from a checkpoint with ``build_app({"checkpoint": "runs/demo/model"})`` or run a Serve config:
``serve run deployments/configs/dev.yaml``. Each deployment loads only its own component from the
checkpoint, so replicas of one encoder scale independently of the others (edit the YAML, not code).

(No ``from __future__ import annotations`` here: FastAPI must see the request models' real types.)
"""

import asyncio
import os
import time
import uuid
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from tripwire.batching import BusyAwareBatchWait
from tripwire.checkpoint import CheckpointManifest, checkpoint_uri, load_encoders, load_fusion, load_preprocessor
from tripwire.config import ConfigError, from_dict, read_yaml
from tripwire.media import MediaError
from tripwire.openai_compat import OpenAICategoryMap, parse_input, to_openai_response
from tripwire.policy import Policy
from tripwire.sample import Sample, decode_base64, read_media, uri_allowed
from tripwire.scoring import LockedPreprocessor, decide, encode_batch, explain, fuse_batch, top_time_window
from tripwire.serving_metrics import ApiMetrics

DEFAULT_BATCH_SIZE = 16
# The wait when a replica is idle: 0, since batches fill while a replica is busy (tripwire/batching.py).
DEFAULT_BATCH_WAIT_S = 0.0
MAX_BATCH_ITEMS = 32
# Deployments behind the ingress write no per-call access log: the ingress logs each HTTP request and
# counts it in /metrics, and a log line per internal call showed in the replicas' profiles (py-spy)
# on every hop. A Serve config can turn it back on per deployment (logging_config.enable_access_log).
INTERNAL_CALL_LOGGING = {"enable_access_log": False}
# Every deployment's queue is bounded (never unbounded memory under overload). A request over the bound
# is rejected at once with 503 and ``Retry-After``: by Serve itself when the ingress is full (plain-text
# reason), by the ingress as a JSON error when a model deployment is (``_overloaded``).
MAX_QUEUED_REQUESTS = 256
OVERLOADED = {"status_code": 503, "retry_after_s": 1}


class ModerateRequest(BaseModel):
    """One item to moderate; media fields carry base64 (or ``data:...;base64,`` URIs)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=256, description="caller's item id, echoed back")
    request_id: str | None = Field(default=None, max_length=256,
                                   description="idempotency key: a repeated request_id gets the first answer again")
    text: str | None = None
    image: str | None = Field(default=None, description="base64 image (PNG, JPEG, ...), or an allow-listed URI")
    audio: str | None = Field(default=None, description="base64 audio (WAV, FLAC, OGG, ...), or an allow-listed URI")
    video: str | None = Field(default=None, description="base64 video (MP4, WebM, ...), or an allow-listed URI")
    market: str | None = Field(default=None, min_length=2, max_length=2, description="ISO 3166 alpha-2 market")
    language: str | None = None
    content_type: str | None = None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ModerateRequest] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class OpenAIModerationRequest(BaseModel):
    """The OpenAI moderation request body."""

    model_config = ConfigDict(extra="forbid")

    input: str | list[str] | list[dict[str, Any]]
    model: str | None = None


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


class ErrorResponse(_Documented):
    error: ItemError


# Every error answer has the same JSON body, naming the field at fault.
ERROR_RESPONSES = {
    413: {"model": ErrorResponse, "description": "media over the configured limits"},
    422: {"model": ErrorResponse, "description": "invalid request: malformed JSON, wrong type, bad media, disallowed URI"},
    503: {"model": ErrorResponse, "description": "overloaded or a replica was lost; see Retry-After"},
}


class BatchItemFailure(_Documented):
    id: str | None
    error: ItemError


class BatchResponse(_Documented):
    results: list[ModerateResponse | BatchItemFailure]


class OpenAIModerationResult(_Documented):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class OpenAIModerationResponse(_Documented):
    id: str
    model: str
    results: list[OpenAIModerationResult]


api = FastAPI(title="Tripwire", version="0.1.0",
              description="Multimodal content moderation: scores per policy category and a policy decision.")


def _error(status: int, field: str, reason: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"field": field, "reason": reason, "message": message}})


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    return _error(422, ".".join(loc) or "body", first.get("type", "invalid"), first.get("msg", "invalid request"))


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


@api.exception_handler(MediaError)
async def _media_error(request: Request, exc: MediaError) -> JSONResponse:
    status = 413 if exc.reason in ("too_large", "too_long") else 422
    return _error(status, exc.field, exc.reason, str(exc))


# Defined before the deployment classes on purpose: Serve serializes a decorated class when the
# decorator runs, and a module-level helper defined below it would be missing in the replica.
def _resolve(path: str) -> str:
    """Relative checkpoint paths are taken from TRIPWIRE_HOME (default: the current directory)."""
    if "://" in path or os.path.isabs(path):
        return path
    return checkpoint_uri(os.path.join(os.environ.get("TRIPWIRE_HOME", os.getcwd()), path))


def _count_items(calls: list[list[Any]]) -> int:
    """``@serve.batch`` size of a batch of calls that each carry several requests' inputs."""
    return sum(len(call) for call in calls)


def _split_back(results: list[Any], calls: list[list[Any]]) -> list[list[Any]]:
    """The inverse of flattening ``calls``: one list of results per call."""
    out, start = [], 0
    for call in calls:
        out.append(results[start:start + len(call)])
        start += len(call)
    return out


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=32, max_queued_requests=MAX_QUEUED_REQUESTS,
                  backpressure_config=OVERLOADED, logging_config=INTERNAL_CALL_LOGGING)
class ModalityEncoder:
    """One modality's encoder. Each call carries the inputs of one or more requests (the ingress sends
    a batch of concurrent requests in one call), and calls are batched again with ``@serve.batch``,
    so one forward pass serves up to ``max_batch_size`` requests from any number of ingress replicas.

    Args:
        checkpoint: checkpoint URI.
        modality: ``text``, ``image`` or ``audio`` (image also embeds video frames, many rows per request).
        max_batch_size: requests per forward pass.
        batch_wait_timeout_s: how long a partial batch waits for company.
    """

    def __init__(self, checkpoint: str, modality: str, max_batch_size: int = DEFAULT_BATCH_SIZE,
                 batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S):
        torch.set_num_threads(1)
        self.modality = modality
        # A replica given a GPU (ray_actor_options.num_gpus in the Serve config) runs its encoder there.
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.encoder = load_encoders(checkpoint, [modality])[modality].to(self.device)
        # Encoders that can say where in time they fired (audio) return that as evidence too.
        self.time_profile = hasattr(self.encoder, "forward_with_time_profile")
        self.embed.set_max_batch_size(max_batch_size)
        self.batch_wait = BusyAwareBatchWait(self.embed, batch_wait_timeout_s)

    @serve.batch(max_batch_size=DEFAULT_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S,
                 batch_size_fn=_count_items)
    async def embed(self, calls: list[list[Any]]) -> list[list[Any]]:
        items = [item for call in calls for item in call]
        # The forward pass runs off the event loop (torch releases the GIL), so the replica keeps
        # accepting calls while it computes, and the next batch gathers them meanwhile.
        with self.batch_wait.running():
            embeddings = await asyncio.to_thread(encode_batch, self.encoder, self.modality, items, self.device,
                                                 time_profile=self.time_profile)
        return _split_back(embeddings, calls)

    async def __call__(self, items: list[Any]) -> list[Any]:
        """Embeds several requests' inputs (one list entry per request)."""
        return await self.embed(items)


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=32, max_queued_requests=MAX_QUEUED_REQUESTS,
                  backpressure_config=OVERLOADED, logging_config=INTERNAL_CALL_LOGGING)
class VideoEncoder:
    """Video: frames go to the image encoder deployment (batched with images), then temporal pooling here."""

    def __init__(self, checkpoint: str, image_encoder: DeploymentHandle):
        torch.set_num_threads(1)
        self.video = load_encoders(checkpoint, ["video"])["video"]
        self.video.frame_encoder = None  # frames are embedded by the image deployment; free the copy
        self.image_encoder = image_encoder

    async def __call__(self, clips: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Several requests' sampled frames (K, 3, H, W) each -> their pooled embeddings and frame weights."""
        frame_embeddings = await self.image_encoder.remote(clips)
        out = []
        with torch.no_grad():
            for frames in frame_embeddings:
                pooled, weights = self.video.pool(torch.as_tensor(np.atleast_2d(frames))[None])
                out.append({"embedding": pooled[0].numpy(), "frame_weights": weights[0].numpy()})
        return out


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64, max_queued_requests=MAX_QUEUED_REQUESTS,
                  backpressure_config=OVERLOADED, logging_config=INTERNAL_CALL_LOGGING)
class FusionHead:
    """The fusion head over whichever modality embeddings each request has; batched across requests."""

    def __init__(self, checkpoint: str, max_batch_size: int = DEFAULT_BATCH_SIZE,
                 batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S):
        torch.set_num_threads(1)
        self.fusion = load_fusion(checkpoint)
        self.calibration = CheckpointManifest.read(checkpoint).calibration
        self.fuse.set_max_batch_size(max_batch_size)
        self.batch_wait = BusyAwareBatchWait(self.fuse, batch_wait_timeout_s)

    @serve.batch(max_batch_size=DEFAULT_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S,
                 batch_size_fn=_count_items)
    async def fuse(self, calls: list[list[dict[str, np.ndarray]]]) -> list[list[dict[str, Any]]]:
        requests = [request for call in calls for request in call]
        with self.batch_wait.running():
            fused = await asyncio.to_thread(fuse_batch, self.fusion, requests, self.calibration)
        return _split_back(fused, calls)

    async def __call__(self, embeddings: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
        """Several requests' embeddings (modality -> vector each) -> their scores and attribution."""
        return await self.fuse(embeddings)


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=64, max_queued_requests=MAX_QUEUED_REQUESTS,
                  backpressure_config=OVERLOADED)
@serve.ingress(api)
class Ingress:
    """HTTP front door: validates and preprocesses (bad input never reaches a model), fans out to the
    encoders, fuses, applies the enforcement policy and answers.

    Concurrent requests are scored together: one call per encoder and one to the fusion head carry
    a whole batch (``max_batch_size``, ``batch_wait_timeout_s``), because on a small machine each
    Serve call costs milliseconds of CPU on both sides, more than the fusion head's own work.

    The policy is applied here, in-process, rather than in a deployment of its own: it is a few
    comparisons per category, and a separate deployment cost a sequential hop on every request
    (bench/RESULTS.md). Its ``user_config`` carries the policy, so editing thresholds and redeploying
    the Serve config updates live replicas without a restart. user_config keys (one of): ``policy``
    (the policy YAML's content as a mapping) or ``policy_path``.
    """

    def __init__(self, checkpoint: str, fusion: DeploymentHandle,
                 text: DeploymentHandle | None = None, image: DeploymentHandle | None = None,
                 audio: DeploymentHandle | None = None, video: DeploymentHandle | None = None,
                 openai_categories: str | None = None, uri_allow_list: list[str] | None = None,
                 idempotency_cache_size: int = 10_000, ray_metrics: bool = False,
                 max_batch_size: int = DEFAULT_BATCH_SIZE, batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S):
        torch.set_num_threads(1)
        # The same bound as the encoders' and fusion head's batches, so one call never exceeds theirs.
        self._score.set_max_batch_size(max_batch_size)
        self.batch_wait = BusyAwareBatchWait(self._score, batch_wait_timeout_s)
        self.manifest = CheckpointManifest.read(checkpoint)
        self.preprocessor = LockedPreprocessor(load_preprocessor(checkpoint))
        self.audio_config = self.manifest.preprocessing().audio  # maps audio evidence back to seconds
        self.encoders = {m: h for m, h in {"text": text, "image": image, "audio": audio, "video": video}.items()
                         if h is not None}
        self.fusion = fusion
        self.policy = Policy.load()  # the bundled policy until a user_config names another
        self.policy.check_taxonomy(self.manifest.taxonomy)
        self.openai_map = OpenAICategoryMap.load(openai_categories)
        self.openai_map.check_taxonomy(self.manifest.taxonomy)
        self.metrics = ApiMetrics(export_to_ray=ray_metrics)
        # fsspec URIs in requests are off unless their prefix (scheme + bucket/path) is allow-listed.
        self.uri_allow_list = tuple(uri_allow_list or ())
        self.answers: OrderedDict[str, dict] = OrderedDict()  # request_id -> answer (LRU, per replica)
        self.idempotency_cache_size = idempotency_cache_size

    def reconfigure(self, user_config: dict) -> None:
        if "policy" in user_config:
            policy = from_dict(Policy, user_config["policy"], "policy")
        elif "policy_path" in user_config:
            path = _resolve(user_config["policy_path"])
            policy = from_dict(Policy, read_yaml(path), path)
        else:
            raise ConfigError("user_config: give 'policy' (a mapping) or 'policy_path'")
        policy.check_taxonomy(self.manifest.taxonomy)
        self.policy = policy

    @api.get("/v1/health")
    async def health(self) -> dict:
        return {"status": "ok", "model_version": self.manifest.version}

    @api.get("/v1/model")
    async def model(self) -> dict:
        data = self.manifest.data
        return {"model_version": self.manifest.version, "modalities": self.manifest.modalities,
                "taxonomy": data["taxonomy"], "preprocessing": data["preprocessing"], "metrics": data["metrics"]}

    @api.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(self) -> PlainTextResponse:
        return PlainTextResponse(self.metrics.render().decode(), media_type="text/plain; version=0.0.4")

    # The scoring endpoints return a JSONResponse themselves: FastAPI would otherwise walk each answer with
    # jsonable_encoder, 0.6 ms of ingress CPU per request on the 2-core bench machine (json.dumps: 0.08 ms).
    # ``response_model`` still documents the answer in the OpenAPI document.
    @api.post("/v1/moderate", response_model=ModerateResponse, responses=ERROR_RESPONSES)
    async def moderate(self, request: ModerateRequest) -> JSONResponse:
        return JSONResponse(await self._counted("moderate", self._moderate_request(request)))

    @api.post("/v1/moderate/batch", response_model=BatchResponse, responses=ERROR_RESPONSES)
    async def moderate_batch(self, request: BatchRequest) -> JSONResponse:
        """Up to ``MAX_BATCH_ITEMS`` items, scored concurrently; a bad item gets its own error entry."""

        async def one(item: ModerateRequest) -> dict:
            try:
                return await self._moderate_request(item)
            except MediaError as exc:
                self.metrics.error("moderate_batch", exc.reason)
                return {"id": item.id, "error": {"field": exc.field, "reason": exc.reason, "message": str(exc)}}

        self.metrics.request("moderate_batch")
        return JSONResponse({"results": list(await asyncio.gather(*(one(item) for item in request.items)))})

    @api.post("/v1/moderations", response_model=OpenAIModerationResponse, responses=ERROR_RESPONSES)
    async def openai_moderations(self, request: OpenAIModerationRequest) -> JSONResponse:
        """OpenAI-compatible moderation: ``input`` is a string, strings, or text/image_url parts."""

        async def run() -> dict:
            items = parse_input(request.input)
            results = await asyncio.gather(*(self._moderate(Sample(id=uuid.uuid4().hex, text=i["text"], image=i["image"]), None)
                                             for i in items))
            return to_openai_response(results, self.openai_map, request.model or self.manifest.version)

        return JSONResponse(await self._counted("moderations", run()))

    async def _counted(self, endpoint: str, work) -> dict:
        self.metrics.request(endpoint)
        try:
            return await work
        except MediaError as exc:
            self.metrics.error(endpoint, exc.reason)
            raise
        except BackPressureError:
            self.metrics.error(endpoint, "overloaded")
            raise
        except (RayActorError, ActorUnavailableError):
            self.metrics.error(endpoint, "replica_unavailable")
            raise

    async def _media(self, field: str, value: str) -> bytes:
        if "://" not in value[:64]:
            return decode_base64(field, value)
        if not uri_allowed(value, self.uri_allow_list):
            raise MediaError(field, "disallowed_uri", "this URI is not on the configured allow-list (URIs are off by default)")
        return await asyncio.to_thread(read_media, field, value, None)

    async def _moderate_request(self, request: ModerateRequest) -> dict:
        if request.request_id and request.request_id in self.answers:
            self.answers.move_to_end(request.request_id)
            return self.answers[request.request_id]
        media = {m: await self._media(m, getattr(request, m)) for m in ("image", "audio", "video")
                 if getattr(request, m) is not None}
        sample = Sample(id=request.id or uuid.uuid4().hex, text=request.text, **media,
                        meta={"market": request.market, "language": request.language,
                              "content_type": request.content_type})
        result = await self._moderate(sample, request.market)
        if request.request_id:
            result["request_id"] = request.request_id
            self.answers[request.request_id] = result
            if len(self.answers) > self.idempotency_cache_size:
                self.answers.popitem(last=False)
        return result

    # Two batches in flight: while one is in the fusion head, the encoders already have the next.
    @serve.batch(max_batch_size=DEFAULT_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S, max_concurrent_batches=2)
    async def _score(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Encoders (only those some request needs, concurrently) and fusion for a batch of requests."""
        with self.batch_wait.running():
            return await self._score_now(batch)

    async def _score_now(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        started = time.perf_counter()
        calls, members = [], []
        for modality in ("text", "image", "audio", "video"):
            rows = [i for i, processed in enumerate(batch) if modality in processed]
            if rows:
                calls.append(self.encoders[modality].remote([batch[i][modality] for i in rows]))
                members.append((modality, rows))
        outputs = [{} for _ in batch]
        for (modality, rows), results in zip(members, await asyncio.gather(*calls)):
            for i, result in zip(rows, results):
                outputs[i][modality] = result
        encoded_at = time.perf_counter()
        embeddings = [{m: (r["embedding"] if isinstance(r, dict) else r) for m, r in out.items()} for out in outputs]
        fused = await self.fusion.remote(embeddings)
        encoders_ms, fusion_ms = 1000 * (encoded_at - started), 1000 * (time.perf_counter() - encoded_at)
        return [{"encoded": out, **f, "encoders_ms": encoders_ms, "fusion_ms": fusion_ms}
                for out, f in zip(outputs, fused)]

    async def _moderate(self, sample: Sample, market: str | None) -> dict:
        started = time.perf_counter()
        processed = await asyncio.to_thread(self.preprocessor.sample, sample)
        preprocessed_at = time.perf_counter()
        scored = await self._score(processed)
        scored_at = time.perf_counter()
        results = scored["encoded"]
        decision = decide(self.policy, self.manifest.categories, scored["scores"], market)
        done = time.perf_counter()

        categories = self.manifest.categories
        evidence = {}
        if "video" in results:
            weights = results["video"]["frame_weights"]
            top = np.argsort(-weights)[:3]
            evidence["video_top_frames"] = [{"timestamp_s": round(float(processed["video_timestamps"][i]), 3),
                                             "weight": round(float(weights[i]), 4)} for i in top]
        if isinstance(results.get("audio"), dict):
            audio = self.audio_config
            evidence["audio_top_window"] = top_time_window(
                results["audio"]["time_profile"], processed["audio"].shape[-1], audio.hop_length,
                audio.sample_rate, audio.clip_seconds)
        result = {
            "id": sample.id,
            "scores": {c: float(s) for c, s in zip(categories, scored["scores"])},
            "flagged": decision["flagged"],
            "decision": decision,
            "attribution": explain(categories, scored["scores"], scored["attribution"]),
            "evidence": evidence,
            "modalities": list(results),
            "model_version": self.manifest.version,
            "policy_version": decision["policy_version"],
            # Stages as this request saw them; "batching" is the wait for and return from its batch.
            "latency_ms": {"preprocess": round(1000 * (preprocessed_at - started), 2),
                           "encoders": round(scored["encoders_ms"], 2),
                           "fusion_policy": round(scored["fusion_ms"] + 1000 * (done - scored_at), 2),
                           "batching": round(max(0.0, 1000 * (scored_at - preprocessed_at)
                                                 - scored["encoders_ms"] - scored["fusion_ms"]), 2),
                           "total": round(1000 * (done - started), 2)},
        }
        self.metrics.observe_result(result)
        return result


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve application builder (``import_path: deployments.app:build_app``).

    Args:
        args: ``checkpoint`` (required: path or fsspec URI of a Tripwire checkpoint); optional
            ``max_batch_size`` and ``batch_wait_timeout_s`` for the encoders and fusion head, ``policy``
            (a policy mapping, applied as the Ingress user_config) and ``openai_categories``
            (the OpenAI category mapping file), ``uri_allow_list`` (URI prefixes requests may reference;
            empty by default, so only inline base64 media is accepted), ``ray_metrics`` (also export
            the API metrics through Ray's metrics pipeline, summed across ingress replicas; off by
            default, on in the production config).
    """
    if "checkpoint" not in args:
        raise ConfigError("args.checkpoint: required (a Tripwire checkpoint path or URI)")
    unknown = sorted(set(args) - {"checkpoint", "max_batch_size", "batch_wait_timeout_s", "policy", "openai_categories",
                                  "uri_allow_list", "ray_metrics"})
    if unknown:
        raise ConfigError(f"args: unknown field(s) {unknown}")
    checkpoint = _resolve(str(args["checkpoint"]))
    batching = {k: args[k] for k in ("max_batch_size", "batch_wait_timeout_s") if k in args}
    ingress = Ingress
    if "policy" in args:  # a policy given here becomes the Ingress user_config (live-updatable)
        ingress = Ingress.options(user_config={"policy": args["policy"]})
    modalities = CheckpointManifest.read(checkpoint).modalities
    handles = {}
    for modality in ("text", "image", "audio"):
        if modality in modalities or (modality == "image" and "video" in modalities):
            handles[modality] = ModalityEncoder.options(name=f"{modality.capitalize()}Encoder").bind(
                checkpoint, modality, **batching)
    if "video" in modalities:
        handles["video"] = VideoEncoder.bind(checkpoint, handles["image"])
    openai_categories = _resolve(args["openai_categories"]) if "openai_categories" in args else None
    return ingress.bind(checkpoint, fusion=FusionHead.bind(checkpoint, **batching), **batching,
                        openai_categories=openai_categories, uri_allow_list=args.get("uri_allow_list"),
                        ray_metrics=bool(args.get("ray_metrics", False)), **handles)

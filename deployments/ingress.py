"""The HTTP ingress: validates and preprocesses requests (bad input never reaches a model), hands them to
the moderation core over the model deployments, logs each answer before it is sent, and serves the API's
health, model, metrics and OpenAI-compatible endpoints.

(No ``from __future__ import annotations`` here: FastAPI must see the request models' real types.)
"""

import asyncio
import logging
import time
import uuid
from typing import Any

import torch
from fastapi.responses import JSONResponse, PlainTextResponse
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from fastapi import HTTPException

from deployments.api import (ASYNC_ROUTE, ERROR_RESPONSES, JOB_RESPONSES, OVERLOADED, REQUEST_ID_RESPONSES,
                             BatchRequest, BatchResponse, JobAccepted, JobRequest, JobStatus, ModerateRequest,
                             ModerateResponse, OpenAIModerationRequest, OpenAIModerationResponse, api, body_limits,
                             set_body_limits)
from deployments.args import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_WAIT_S, MAX_QUEUED_REQUESTS, AppArgs
from tripwire.serving.batching import BusyAwareBatchWait
from tripwire.experts import picture_kinds
from tripwire.model.checkpoint import CheckpointManifest
from tripwire.compliance.records import DECISION, decision_body, serving_puid
from tripwire.compliance.writer import LogWriter
from tripwire.common.config import ConfigError, from_dict, read_yaml, to_dict
from tripwire.common.home import from_home
from tripwire.compliance.decision_log import DecisionLog
from tripwire.compliance.idempotency import (REQUEST_HASH, AnswerCache, RequestIdConflict, logged_answer,
                                             request_fingerprint)
from tripwire.data.longform import media_seconds
from tripwire.data.media import MediaError
from tripwire.moderation.moderator import Moderator, ServeBackend, StageTimes
from tripwire.moderation.result import ModerationResult
from tripwire.serving.openai_compat import OpenAICategoryMap, parse_input, to_openai_response
from tripwire.policy import Policy
from tripwire.review.intake import BufferedEnqueuer, serving_item
from tripwire.review.store import open_store
from tripwire.data.sample import Sample, content_digest, content_digest_of, decode_base64, read_media, uri_allowed
from tripwire.serving.jobs import Job, JobStore
from tripwire.serving.metrics import ApiMetrics

logger = logging.getLogger(__name__)


def _queued_sample(item_id: str, request: Any) -> dict[str, Any]:
    """The request as the review queue keeps it: text, media as sent (URIs, or inline bytes as data: URIs)."""
    row: dict[str, Any] = {"id": item_id, "text": request.text,
                           "meta": {k: v for k, v in (("market", request.market), ("language", request.language),
                                                      ("content_type", request.content_type)) if v}}
    for modality in ("image", "audio", "video"):
        value = getattr(request, modality)
        if value is not None:
            inline = "://" not in value[:64] and not value.startswith("data:")
            row[modality] = f"data:application/octet-stream;base64,{value}" if inline else value
    return row


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=64, max_queued_requests=MAX_QUEUED_REQUESTS,
                  backpressure_config=OVERLOADED)
@serve.ingress(api)
class Ingress:
    """HTTP front door: validates and preprocesses (bad input never reaches a model), then the moderation
    core scores each request through the encoder and fusion deployments and applies the policy.

    Concurrent requests are scored together: one call per encoder and one to the fusion head carry
    a whole batch (``max_batch_size``, ``batch_wait_timeout_s``), because on a small machine each
    Serve call costs milliseconds of CPU on both sides, more than the fusion head's own work.

    The policy is applied here, in-process, rather than in a deployment of its own: it is a few
    comparisons per category, and a separate deployment cost a sequential hop on every request
    (bench/RESULTS.md). Its ``user_config`` carries the policy, so editing thresholds and redeploying
    the Serve config updates live replicas without a restart. user_config keys (one of): ``policy``
    (the policy YAML's content as a mapping) or ``policy_path``.

    Args:
        args: the application's arguments, as :func:`build_app` validated them.
        encoders: modality -> the deployment that encodes it.
        fusion: the fusion head's deployment.
        experts: expert kind -> its deployment (the checkpoint's ``experts``).
    """

    def __init__(self, args: AppArgs, encoders: dict[str, DeploymentHandle], fusion: DeploymentHandle,
                 experts: dict[str, DeploymentHandle] | None = None):
        torch.set_num_threads(1)
        self.args = args  # validated once, by build_app
        # The same bound as the encoders' and fusion head's batches, so one call never exceeds theirs.
        self._score.set_max_batch_size(self.args.max_batch_size)
        self.batch_wait = BusyAwareBatchWait(self._score, self.args.batch_wait_timeout_s)
        self.manifest = CheckpointManifest.read(self.args.checkpoint)
        # The checkpoint's policy (its recommended one, else the bundled one) until a user_config names another.
        self.core = Moderator(self.manifest, ServeBackend(encoders, fusion, experts, self.args.max_batch_size),
                              self.manifest.policy())
        openai_categories = self.args.openai_categories
        self.openai_map = OpenAICategoryMap.load(from_home(openai_categories) if openai_categories else None)
        self.openai_map.check_taxonomy(self.manifest.taxonomy)
        self.metrics = ApiMetrics(export_to_ray=self.args.ray_metrics)
        # fsspec URIs in requests are off unless their prefix (scheme + bucket/path) is allow-listed.
        self.uri_allow_list = tuple(self.args.uri_allow_list)
        self.answers = AnswerCache(self.args.idempotency_cache_size)  # request_id -> (fingerprint, answer)
        # Request bodies: at most what a request within the model's media limits can take (or max_body_mb);
        # media is refused over its own limit before it is decoded or, by URI, read past it.
        self.media_limits = self.manifest.spec.preprocessing.limits
        max_body = int(self.args.max_body_mb * 2**20) if self.args.max_body_mb is not None else None
        # Audio is heard, and pictures and frames read, by experts even without the encoder.
        heard = ["audio"] if "speech" in self.manifest.experts else []
        heard += ["image", "video"] if picture_kinds(self.manifest.experts) else []
        set_body_limits(body_limits(self.media_limits, [*self.manifest.modalities, *heard], max_body))
        self.review_queue = None
        if self.args.review_store:
            store = open_store(from_home(self.args.review_store), self.manifest.categories)
            self.review_queue = BufferedEnqueuer(store, self.args.review_buffer, self.args.review_buffer_mb * 2**20)
        self.decision_log = self.log_writer = None
        if self.args.decision_log:
            self.decision_log = DecisionLog(from_home(self.args.decision_log))
            key = None
            if self.args.decision_log_key_file:
                with open(from_home(self.args.decision_log_key_file), "rb") as handle:
                    key = handle.read().strip()
            self.log_writer = LogWriter(self.decision_log, self.args.decision_log_pending,
                                        wait_s=self.args.decision_log_wait_s, checkpoint_key=key,
                                        checkpoint_every=self.args.decision_log_checkpoint_every,
                                        on_outcome=self.metrics.decision_log)
        # Long media: jobs in a store every replica shares, worked by tasks started on this replica's event loop
        # (by its first health check or job request), so a replica that restarts takes up what was left.
        self.jobs = JobStore(from_home(self.args.jobs_store)) if self.args.jobs_store else None
        self.worker_id = uuid.uuid4().hex
        self.job_workers: list[asyncio.Task] = []

    def __del__(self):
        # Serve's graceful shutdown: what is buffered for the review queue and the decision log is written.
        for task in getattr(self, "job_workers", ()):
            task.cancel()
        if getattr(self, "review_queue", None) is not None:
            self.review_queue.close()
            self.review_queue.store.close()
        if getattr(self, "log_writer", None) is not None:
            self.log_writer.close()

    def reconfigure(self, user_config: dict) -> None:
        if "policy" in user_config:
            policy = from_dict(Policy, user_config["policy"], "policy")
        elif "policy_path" in user_config:
            path = from_home(user_config["policy_path"])
            policy = from_dict(Policy, read_yaml(path), path)
        else:
            raise ConfigError("user_config: give 'policy' (a mapping) or 'policy_path'")
        self.core.set_policy(policy)

    async def check_health(self) -> None:
        """Serve's periodic health check; it also starts the job workers on a replica that has not yet."""
        self._start_job_workers()

    @api.get("/v1/health")
    async def health(self) -> dict:
        return {"status": "ok", "model_version": self.manifest.version}

    @api.get("/v1/model")
    async def model(self) -> dict:
        spec = self.manifest.spec
        return {"model_version": self.manifest.version, "modalities": self.manifest.modalities,
                "taxonomy": to_dict(spec.taxonomy), "preprocessing": to_dict(spec.preprocessing), "metrics": spec.metrics}

    @api.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(self) -> PlainTextResponse:
        return PlainTextResponse(self.metrics.render().decode(), media_type="text/plain; version=0.0.4")

    # The scoring endpoints return a JSONResponse themselves: FastAPI would otherwise walk each answer with
    # jsonable_encoder, 0.6 ms of ingress CPU per request on the 2-core bench machine (json.dumps: 0.08 ms).
    # ``response_model`` still documents the answer in the OpenAPI document.
    @api.post("/v1/moderate", response_model=ModerateResponse, responses=REQUEST_ID_RESPONSES)
    async def moderate(self, request: ModerateRequest) -> JSONResponse:
        return JSONResponse((await self._counted("moderate", self._moderate_request(request))).to_json())

    @api.post("/v1/moderate/batch", response_model=BatchResponse, responses=ERROR_RESPONSES)
    async def moderate_batch(self, request: BatchRequest) -> JSONResponse:
        """Up to ``MAX_BATCH_ITEMS`` items, scored concurrently; a bad item gets its own error entry."""

        async def one(item: ModerateRequest) -> dict:
            try:
                return (await self._moderate_request(item)).to_json()
            except MediaError as exc:
                self.metrics.error("moderate_batch", exc.reason)
                return {"id": item.id, "error": {"field": exc.field, "reason": exc.reason, "message": str(exc)}}
            except RequestIdConflict as exc:
                self.metrics.error("moderate_batch", "request_id_reused")
                return {"id": item.id, "error": {"field": "request_id", "reason": "request_id_reused",
                                                 "message": str(exc)}}

        self.metrics.request("moderate_batch")
        return JSONResponse({"results": list(await asyncio.gather(*(one(item) for item in request.items)))})

    @api.post("/v1/moderations", response_model=OpenAIModerationResponse, responses=ERROR_RESPONSES)
    async def openai_moderations(self, request: OpenAIModerationRequest) -> JSONResponse:
        """OpenAI-compatible moderation: ``input`` is a string, strings, or text/image_url parts.

        Every OpenAI category is answered; one Tripwire does not score is marked not checked: a null score,
        never flagged, and listed in each result's ``tripwire.unscored_categories`` (a score of 0.0 would
        read as "checked and clean")."""

        async def run() -> dict:
            items = parse_input(request.input, self.media_limits.max_image_bytes)
            results = await asyncio.gather(*(self._moderate_logged(Sample(id=uuid.uuid4().hex, text=i["text"],
                                                                          image=i["image"]))
                                             for i in items))
            return to_openai_response(results, self.openai_map, request.model or self.manifest.version)

        return JSONResponse(await self._counted("moderations", run()))

    # -- the asynchronous job API for long media ----------------------------------------------------------------
    @api.post(ASYNC_ROUTE, status_code=202, response_model=JobAccepted, responses=JOB_RESPONSES)
    async def submit_job(self, request: JobRequest) -> JSONResponse:
        """Long audio or video by URI: stored as a queued job (it survives the replica), answered at once with
        its id; ``GET /v1/jobs/{job_id}`` gives its progress and, when done, the whole result."""
        jobs = self._job_store()
        self.metrics.request("jobs")
        field = "audio" if request.audio is not None else "video"
        uri = getattr(request, field)
        try:
            if "://" not in uri[:64]:
                raise MediaError(field, "not_a_uri", "a job takes media by URI (inline media: POST /v1/moderate)")
            if not uri_allowed(uri, self.uri_allow_list):
                raise MediaError(field, "disallowed_uri",
                                 "this URI is not on the configured allow-list (URIs are off by default)")
            # The header only: over the windows' limits (or unreadable) is refused now, not found by the job.
            await asyncio.to_thread(media_seconds, field, uri, None, self.manifest.spec.preprocessing.windows)
        except MediaError as exc:
            self.metrics.error("jobs", exc.reason)
            raise
        job = await asyncio.to_thread(jobs.submit, request.model_dump(exclude_none=True))
        self._start_job_workers()
        location = f"{ASYNC_ROUTE}/{job.id}"
        return JSONResponse(status_code=202, headers={"Location": location},
                            content={"job_id": job.id, "status": job.status, "location": location})

    @api.get(ASYNC_ROUTE + "/{job_id}", response_model=JobStatus, responses=JOB_RESPONSES)
    async def job_status(self, job_id: str) -> JSONResponse:
        """A job's status and progress; when done, its whole result (when failed, its error)."""
        job = await asyncio.to_thread(self._job_store().get, job_id)
        self._start_job_workers()  # a replica that has just replaced a lost one takes up its jobs
        if job is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id!r}")
        return JSONResponse(job.to_json())

    def _job_store(self) -> JobStore:
        if self.jobs is None:
            raise HTTPException(status_code=404, detail="this deployment takes no jobs (its args set no jobs_store)")
        return self.jobs

    def _start_job_workers(self) -> None:
        """Starts this replica's job workers where they are not running (called on the replica's event loop)."""
        if self.jobs is None:
            return
        self.job_workers = [t for t in self.job_workers if not t.done()]
        while len(self.job_workers) < self.args.jobs_per_replica:
            self.job_workers.append(asyncio.get_running_loop().create_task(self._work_jobs()))

    async def _work_jobs(self) -> None:
        """Takes up queued jobs (or ones whose replica was lost) one after another, for as long as the replica lives."""
        while True:
            try:
                job = await asyncio.to_thread(self.jobs.claim, self.worker_id, self.args.jobs_lease_s)
            except Exception:
                logger.exception("jobs: cannot read the job store; trying again")
                job = None
            if job is None:
                await asyncio.sleep(self.args.jobs_poll_s)
                continue
            try:
                await self._run_job(job)
            except asyncio.CancelledError:
                raise
            except (RayActorError, ActorUnavailableError, BackPressureError, OSError):
                # A lost model replica, an overloaded one, a store outage: the lease runs out and the job is retried.
                logger.exception("jobs: job %s stopped; it is taken up again once its lease runs out", job.id)
            except Exception as exc:  # a fault that would recur on every retry: the job fails, saying so
                logger.exception("jobs: job %s failed", job.id)
                error = {"field": "job", "reason": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
                try:
                    await asyncio.to_thread(self.jobs.fail, job.id, self.worker_id, error)
                except Exception:
                    logger.exception("jobs: cannot record that job %s failed", job.id)

    async def _run_job(self, job: Job) -> None:
        request = job.request
        sample = Sample(id=request.get("id") or job.id, text=request.get("text"), audio=request.get("audio"),
                        video=request.get("video"),
                        meta={k: request[k] for k in ("market", "language", "content_type") if k in request})
        progress: dict[str, float | None] = {"done_s": None, "total_s": None}

        def told(done_s: float, total_s: float | None) -> None:
            progress.update(done_s=done_s, total_s=total_s)

        async def renew() -> None:
            while True:
                await asyncio.sleep(min(self.args.jobs_lease_s / 4, 2.0))  # the lease, and progress to show
                if not await asyncio.to_thread(self.jobs.renew, job.id, self.worker_id, self.args.jobs_lease_s,
                                               progress["done_s"], progress["total_s"]):
                    logger.warning("jobs: job %s is no longer this replica's", job.id)
                    return

        renewing = asyncio.get_running_loop().create_task(renew())
        detected_at = time.time()
        try:
            result = await self.core.moderate_long(sample, None, request.get("market"), told)
        except MediaError as exc:  # damage the header did not show, found part-way
            self.metrics.error("jobs", exc.reason)
            await asyncio.to_thread(self.jobs.fail, job.id, self.worker_id,
                                    {"field": exc.field, "reason": exc.reason, "message": str(exc)})
            return
        finally:
            renewing.cancel()
        self.metrics.observe_result(result)
        row = {"id": sample.id, "text": sample.text, "meta": dict(sample.meta),
               **{m: request[m] for m in ("audio", "video") if m in request}}
        if self.log_writer is not None:
            digest = await asyncio.to_thread(content_digest_of, sample.text,
                                             {m: getattr(sample, m) for m in ("audio", "video")}, None)
            result = await self._logged(result, sample, detected_at, language=request.get("language"),
                                        content=row if self.args.keep_content else None, digest=digest)
        if self.review_queue is not None and result.action == "review":
            self.review_queue.offer(serving_item(result, row))
        await asyncio.to_thread(self.jobs.finish, job.id, self.worker_id, result.to_json(), progress["done_s"],
                                progress["total_s"])

    async def _counted(self, endpoint: str, work) -> Any:
        self.metrics.request(endpoint)
        try:
            return await work
        except MediaError as exc:
            self.metrics.error(endpoint, exc.reason)
            raise
        except RequestIdConflict:
            self.metrics.error(endpoint, "request_id_reused")
            raise
        except BackPressureError:
            self.metrics.error(endpoint, "overloaded")
            raise
        except (RayActorError, ActorUnavailableError):
            self.metrics.error(endpoint, "replica_unavailable")
            raise

    async def _media(self, field: str, value: str) -> bytes:
        limit = getattr(self.media_limits, f"max_{field}_bytes")  # judged before decoding, or reading a URI
        if "://" not in value[:64]:
            return decode_base64(field, value, limit)
        if not uri_allowed(value, self.uri_allow_list):
            raise MediaError(field, "disallowed_uri", "this URI is not on the configured allow-list (URIs are off by default)")
        return await asyncio.to_thread(read_media, field, value, None, limit)

    async def _moderate_request(self, request: ModerateRequest) -> ModerationResult:
        fingerprint = None
        if request.request_id:
            fingerprint = await self._fingerprint(request)
            answer = await self._answered(request.request_id, fingerprint)  # or RequestIdConflict: 409
            if answer is not None:
                return answer
        media = {m: await self._media(m, getattr(request, m)) for m in ("image", "audio", "video")
                 if getattr(request, m) is not None}
        sample = Sample(id=request.id or uuid.uuid4().hex, text=request.text, **media,
                        meta={"market": request.market, "language": request.language,
                              "content_type": request.content_type})
        detected_at = time.time()
        result = await self._moderate(sample, request.market)
        if request.request_id:
            result = result.replace(request_id=request.request_id)
        if self.log_writer is not None:
            content = _queued_sample(sample.id, request) if self.args.keep_content else None
            result = await self._logged(result, sample, detected_at, request.request_id, request.language, content,
                                        fingerprint)
        if self.review_queue is not None and result.action == "review":
            self.review_queue.offer(serving_item(result, _queued_sample(sample.id, request)))
        if request.request_id:
            self.answers.put(request.request_id, fingerprint, result)
        return result

    async def _fingerprint(self, request: ModerateRequest) -> str:
        """The request's fingerprint (every field but ``request_id``); inline media is hashed off the loop."""
        fields = request.model_dump(exclude={"request_id"})
        if sum(len(v) for v in fields.values() if isinstance(v, str)) > 2**16:
            return await asyncio.to_thread(request_fingerprint, fields)
        return request_fingerprint(fields)

    async def _answered(self, request_id: str, fingerprint: str) -> ModerationResult | None:
        """The first answer to ``request_id`` if it was this same request's: from this replica's cache, else
        (log on) from the decision log, which every replica writes.

        Raises:
            RequestIdConflict: ``request_id`` was first used with a different request.
        """
        answer = self.answers.get(request_id, fingerprint)
        if answer is not None or self.decision_log is None:
            return answer
        record = await asyncio.to_thread(self.decision_log.find, DECISION, serving_puid(request_id))
        if record is None:
            return None
        logged = logged_answer(record.body, request_id, fingerprint)
        if logged is None:
            return None
        answer = ModerationResult.from_json(logged)
        self.answers.put(request_id, fingerprint, answer)
        return answer

    async def _logged(self, result: ModerationResult, sample: Sample, detected_at: float,
                      request_id: str | None = None, language: str | None = None, content: dict | None = None,
                      fingerprint: str | None = None, digest: str | None = None) -> ModerationResult:
        """Logs the decision and waits for its commit (batched with concurrent requests'); returns the answer
        the log holds for this puid: this one, or the first when another replica answered the same
        ``request_id`` first (for the same request: a different one's is a RequestIdConflict)."""
        puid = serving_puid(request_id)
        result = result.replace(puid=puid)
        decided_at = time.time()
        media = {m: getattr(sample, m) for m in ("image", "audio", "video") if getattr(sample, m) is not None}
        # Hashing inline video (tens of MB) would hold the event loop: media is hashed off it.
        if digest is None:
            digest = await asyncio.to_thread(content_digest, sample.text, media) if media \
                else content_digest(sample.text, {})
        body = decision_body(result, source="serving", policy=self.core.policy, detected_at=detected_at,
                             decided_at=decided_at, content_hash=digest,
                             content_types=sample.modalities, language=language, content=content,
                             answer=result.replace(latency_ms=None).to_json())
        if request_id:
            body[REQUEST_HASH] = fingerprint  # a retry, from any replica, is checked against it
        record = await self.log_writer.write(DECISION, puid, body)
        if record is None:
            return result
        if request_id:
            # Concurrent requests with the same request_id: the first logged wins; another request loses (409).
            answer = logged_answer(record.body, request_id, fingerprint)
            if answer is not None and answer != body["answer"]:
                return ModerationResult.from_json(answer)
        return result

    # Two batches in flight: while one is in the fusion head, the encoders already have the next.
    @serve.batch(max_batch_size=DEFAULT_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S, max_concurrent_batches=2)
    async def _score(self, batch: list[dict[str, Any]]) -> list[Any]:
        """The moderation core's model stage (encoders, then fusion) for a batch of concurrent requests."""
        with self.batch_wait.running():
            return await self.core.score(batch)

    async def _moderate_logged(self, sample: Sample) -> ModerationResult:
        """An OpenAI-compatible input scored (no market) and, with the log on, logged."""
        detected_at = time.time()
        result = await self._moderate(sample, None)
        if self.log_writer is None:
            return result
        content = {"id": sample.id, "text": sample.text} if self.args.keep_content else None
        return await self._logged(result, sample, detected_at, content=content)

    async def _moderate(self, sample: Sample, market: str | None) -> ModerationResult:
        started = time.perf_counter()
        # Decoding and preprocessing run off the event loop and concurrently (only tokenizing is locked).
        prepared = await asyncio.to_thread(self.core.prepare, sample)
        prepared_at = time.perf_counter()
        scored = await self._score(prepared)
        result = self.core.result(sample.id, prepared, scored, market,
                                  StageTimes(started, prepared_at, time.perf_counter()))
        self.metrics.observe_result(result)
        return result

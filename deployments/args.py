"""The Serve application's arguments (``args`` in a Serve config), validated once, and the deployments'
defaults a config overrides."""

from dataclasses import dataclass, field
from typing import Any

from tripwire.common.config import ConfigError

DEFAULT_BATCH_SIZE = 16
# The wait when a replica is idle: 0, since batches fill while a replica is busy (tripwire/serving/batching.py).
DEFAULT_BATCH_WAIT_S = 0.0
# Deployments behind the ingress write no per-call access log: the ingress logs each HTTP request and
# counts it in /metrics, and a log line per internal call showed in the replicas' profiles (py-spy)
# on every hop. A Serve config can turn it back on per deployment (logging_config.enable_access_log).
INTERNAL_CALL_LOGGING = {"enable_access_log": False}
# Every deployment's queue is bounded (never unbounded memory under overload). A request over the bound
# is rejected at once with 503 and ``Retry-After``: by Serve itself when the ingress is full (plain-text
# reason), by the ingress as a JSON error when a model deployment is (``deployments.api``).
MAX_QUEUED_REQUESTS = 256


@dataclass(frozen=True)
class AppArgs:
    """The Serve application's ``args`` (``import_path: deployments.app:build_app``), validated once.

    Attributes:
        checkpoint: path or fsspec URI of a Tripwire checkpoint (relative paths: from TRIPWIRE_HOME).
        max_batch_size: requests per forward pass in each encoder and the fusion head.
        batch_wait_timeout_s: how long an idle replica waits for a batch to fill.
        policy: a policy mapping, applied as the Ingress user_config (live-updatable).
        openai_categories: the OpenAI category mapping file (default: the bundled one).
        uri_allow_list: URI prefixes requests may reference (end each with ``/``); empty: only inline media.
        ray_metrics: also export the API metrics through Ray's metrics pipeline (summed over replicas).
        idempotency_cache_size: answers kept per ingress replica for repeated ``request_id``s (each with its
            request's fingerprint: the same request_id with another request is refused, 409).
        max_body_mb: the most MiB a scoring request's body may have (413 beyond, refused before it is read
            whole); None: each endpoint's limit follows from the model's media limits (deployments.api.body_limits).
        review_store: a review store (SQLite path or postgresql:// URL): decisions in the review band are
            queued there for people (never blocking the answer; see tripwire.review.intake). None: off.
        review_buffer: decisions an ingress replica holds for the review store before it drops (and counts) them.
        review_buffer_mb: the most MiB of those decisions' text and inline media it holds.
        decision_log: the decision log's store (SQLite path or postgresql:// URL; it may be the review store):
            every answer is logged before it is sent, and a repeated ``request_id`` with the same request gets
            the logged answer from any replica (tripwire.compliance.writer, tripwire.compliance.idempotency). None: off.
        decision_log_wait_s: the most an answer waits for its record's commit before it is sent unconfirmed.
        decision_log_pending: records an ingress replica holds waiting for their commit (back-pressure beyond).
        keep_content: also log each request's content (off: only its sha256).
        decision_log_key_file: a file holding the key that signs a checkpoint of the log's head every
            ``decision_log_checkpoint_every`` records (None: checkpoints by ``tripwire audit checkpoint`` only).
        jobs_store: the asynchronous job API's store for long media (SQLite path or postgresql:// URL; it may be the
            review store): ``POST /v1/jobs``, ``GET /v1/jobs/{id}`` (tripwire.serving.jobs). None: the API is off (404).
        jobs_per_replica: jobs an ingress replica works on at once.
        jobs_lease_s: how long a replica's claim on a job lasts without renewal; a lost replica's job is taken up by
            another this long after it stopped renewing.
        jobs_poll_s: how often an idle replica looks for queued jobs.
    """

    checkpoint: str
    max_batch_size: int = DEFAULT_BATCH_SIZE
    batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S
    policy: dict[str, Any] | None = None
    openai_categories: str | None = None
    uri_allow_list: list[str] = field(default_factory=list)
    ray_metrics: bool = False
    idempotency_cache_size: int = 10_000
    max_body_mb: float | None = None
    review_store: str | None = None
    review_buffer: int = 1000
    review_buffer_mb: int = 256
    decision_log: str | None = None
    decision_log_wait_s: float = 5.0
    decision_log_pending: int = 10_000
    keep_content: bool = False
    decision_log_key_file: str | None = None
    decision_log_checkpoint_every: int = 10_000
    jobs_store: str | None = None
    jobs_per_replica: int = 1
    jobs_lease_s: float = 60.0
    jobs_poll_s: float = 1.0

    def __post_init__(self):
        if self.max_batch_size < 1:
            raise ConfigError(f"max_batch_size: must be at least 1, got {self.max_batch_size}")
        if self.batch_wait_timeout_s < 0:
            raise ConfigError(f"batch_wait_timeout_s: must be >= 0, got {self.batch_wait_timeout_s}")
        if self.idempotency_cache_size < 0:
            raise ConfigError(f"idempotency_cache_size: must be >= 0, got {self.idempotency_cache_size}")
        if self.max_body_mb is not None and self.max_body_mb <= 0:
            raise ConfigError(f"max_body_mb: must be > 0, got {self.max_body_mb}")
        if self.review_buffer < 1 or self.review_buffer_mb < 1:
            raise ConfigError(f"review_buffer and review_buffer_mb: must be at least 1, got "
                              f"{self.review_buffer} and {self.review_buffer_mb}")
        if self.jobs_per_replica < 1 or self.jobs_lease_s < 5 or self.jobs_poll_s <= 0:
            raise ConfigError(f"jobs_per_replica >= 1, jobs_lease_s >= 5 and jobs_poll_s > 0 are required, got "
                              f"{self.jobs_per_replica}, {self.jobs_lease_s} and {self.jobs_poll_s}")
        if self.decision_log_wait_s <= 0 or self.decision_log_pending < 1 or self.decision_log_checkpoint_every < 1:
            raise ConfigError("decision_log_wait_s must be > 0, decision_log_pending and decision_log_checkpoint_every "
                              f">= 1, got {self.decision_log_wait_s}, {self.decision_log_pending} and "
                              f"{self.decision_log_checkpoint_every}")

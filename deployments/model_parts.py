"""The model's deployments: one per encoder (whole, or a split encoder's head beside its upstream's
deployment), the fusion head, and the speech expert when the checkpoint names one. Each loads only its own component from the checkpoint and batches calls
across requests.

(No ``from __future__ import annotations`` here: Serve and FastAPI read real types.)
"""

import asyncio
from typing import Any

import torch
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.api import OVERLOADED
from deployments.args import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_WAIT_S, INTERNAL_CALL_LOGGING, MAX_QUEUED_REQUESTS
from tripwire.serving.batching import BusyAwareBatchWait
from tripwire.model.checkpoint import CheckpointManifest, load_encoders, load_fusion
from tripwire.experts import load_expert, run_expert
from tripwire.moderation.scoring import encode_batch, fuse_batch, head_batch


def _count_items(calls: list[Any]) -> int:
    """``@serve.batch`` size of a batch of calls that each carry several requests' inputs."""
    return sum(len(call[0] if isinstance(call, tuple) else call) for call in calls)


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
    """One modality's whole encoder. Each call carries the inputs of one or more requests (the ingress sends
    a batch of concurrent requests in one call), and calls are batched again with ``@serve.batch``,
    so one forward pass serves up to ``max_batch_size`` requests from any number of callers. A split
    encoder's deployment calls it with ``rows=True`` (a video's frames through the image encoder): those
    requests get one embedding per row, and share the forward pass with the others.

    Args:
        checkpoint: checkpoint URI.
        modality: the modality whose encoder this replica runs.
        max_batch_size: requests per forward pass.
        batch_wait_timeout_s: how long a partial batch waits for company when the replica is idle.
    """

    def __init__(self, checkpoint: str, modality: str, max_batch_size: int = DEFAULT_BATCH_SIZE,
                 batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S):
        torch.set_num_threads(1)
        self.modality = modality
        # A replica given a GPU (ray_actor_options.num_gpus in the Serve config) runs its encoder there.
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.encoder = load_encoders(checkpoint, [modality])[modality].to(self.device)
        self.embed.set_max_batch_size(max_batch_size)
        self.batch_wait = BusyAwareBatchWait(self.embed, batch_wait_timeout_s)

    @serve.batch(max_batch_size=DEFAULT_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S,
                 batch_size_fn=_count_items)
    async def embed(self, calls: list[tuple[list[Any], bool]]) -> list[list[dict]]:
        items = [item for call, _ in calls for item in call]
        rows = [flag for call, flag in calls for _ in call]
        # The forward pass runs off the event loop (torch releases the GIL), so the replica keeps
        # accepting calls while it computes, and the next batch gathers them meanwhile.
        with self.batch_wait.running():
            outputs = await asyncio.to_thread(encode_batch, self.encoder, self.modality, items, self.device, rows)
        return _split_back(outputs, [call for call, _ in calls])

    async def __call__(self, items: list[Any], rows: bool = False) -> list[dict]:
        """Encodes several requests' inputs (one list entry per request)."""
        return await self.embed((items, rows))


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=32, max_queued_requests=MAX_QUEUED_REQUESTS,
                  backpressure_config=OVERLOADED, logging_config=INTERNAL_CALL_LOGGING)
class SplitEncoder:
    """A split encoder's own part (its ``head``): each request's rows go to the upstream modality's
    deployment (batched there with that modality's own requests), then the head runs here."""

    def __init__(self, checkpoint: str, modality: str, upstream: DeploymentHandle):
        torch.set_num_threads(1)
        self.encoder = load_encoders(checkpoint, [modality])[modality]
        self.encoder.drop_upstream()  # the upstream deployment embeds the rows; free this copy
        self.upstream = upstream

    async def __call__(self, items: list[Any]) -> list[dict]:
        """Several requests' inputs (a stack of rows each) -> their embeddings and evidence."""
        rows = await self.upstream.remote(items, rows=True)
        return head_batch(self.encoder, rows)


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
    async def fuse(self, calls: list[list[dict]]) -> list[list[dict[str, Any]]]:
        requests = [request for call in calls for request in call]
        with self.batch_wait.running():
            fused = await asyncio.to_thread(fuse_batch, self.fusion, requests, self.calibration)
        return _split_back(fused, calls)

    async def __call__(self, embeddings: list[dict]) -> list[dict[str, Any]]:
        """Several requests' embeddings (modality -> vector each) -> their scores and attribution."""
        return await self.fuse(embeddings)


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=16, max_queued_requests=MAX_QUEUED_REQUESTS,
                  backpressure_config=OVERLOADED, logging_config=INTERNAL_CALL_LOGGING)
class ExpertPart:
    """One of the checkpoint's experts (``experts.<kind>``: speech, ocr, nudity): a batch of inputs (16 kHz
    waveforms, RGB pictures) -> its readings as JSON (transcripts with word times, text lines with boxes,
    nudity probabilities with regions). Deployed as ``SpeechExpert``, ``OcrExpert``, ``NudityExpert``. One call
    keeps one core busy (``cpu_threads``); reserve that in the Serve config (``ray_actor_options.num_cpus``) and
    scale replicas, or give them a GPU and a larger model's ``model_dir``, like any encoder."""

    def __init__(self, checkpoint: str, kind: str, max_batch_size: int = DEFAULT_BATCH_SIZE,
                 batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S):
        self.kind = kind
        self.expert = load_expert(kind, CheckpointManifest.read(checkpoint).experts[kind])
        self.run.set_max_batch_size(max_batch_size)
        self.batch_wait = BusyAwareBatchWait(self.run, batch_wait_timeout_s)

    @serve.batch(max_batch_size=DEFAULT_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S, batch_size_fn=_count_items)
    async def run(self, calls: list[list[Any]]) -> list[list[dict]]:
        inputs = [item for call in calls for item in call]
        with self.batch_wait.running():
            readings = await asyncio.to_thread(run_expert, self.kind, self.expert, inputs)
        return _split_back([r.to_json() for r in readings], calls)

    async def __call__(self, inputs: list[Any]) -> list[dict]:
        """Several requests' inputs -> their readings."""
        return await self.run(inputs)

"""The Tripwire Serve application: HTTP ingress -> per-modality encoders (concurrently) -> fusion -> policy
(applied in the ingress).

Build it from a checkpoint with ``build_app({"checkpoint": "runs/demo/model"})`` or run a Serve config:
``serve run deployments/configs/dev.yaml``. Each deployment loads only its own component from the
checkpoint, so replicas of one encoder scale independently of the others (edit the YAML, not code).
Which deployments exist follows from the checkpoint's encoders and how each declares it splits for
serving (``Encoder.serving_upstream``): a whole encoder gets a :class:`ModalityEncoder`; a split one
(video frames through the image encoder) gets a :class:`SplitEncoder` holding only its head, which sends
its rows to the upstream encoder's deployment. Each expert the checkpoint names gets an :class:`ExpertPart`
(transcripts and text read in pictures, scored by the text encoder's deployment; nudity probabilities). The
ingress hands every request to the moderation core
(:class:`tripwire.moderation.moderator.Moderator`) over a :class:`~tripwire.moderation.moderator.ServeBackend`.

This module is the builder; the arguments are in ``args.py``, the model's deployments in ``model_parts.py``,
the ingress in ``ingress.py``.
"""

import dataclasses
from typing import Any

from ray import serve

from deployments.args import (DEFAULT_BATCH_SIZE, DEFAULT_BATCH_WAIT_S, INTERNAL_CALL_LOGGING, MAX_QUEUED_REQUESTS,
                              AppArgs)
from deployments.ingress import Ingress
from deployments.model_parts import ExpertPart, FusionHead, ModalityEncoder, SplitEncoder
from tripwire.common.config import from_dict
from tripwire.common.home import from_home
from tripwire.model import ENCODERS
from tripwire.experts import EXPERT_KINDS
from tripwire.model.checkpoint import CheckpointManifest

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_BATCH_WAIT_S", "INTERNAL_CALL_LOGGING", "MAX_QUEUED_REQUESTS", "AppArgs",
           "ExpertPart", "FusionHead", "Ingress", "ModalityEncoder", "SplitEncoder", "build_app"]


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve application builder (``import_path: deployments.app:build_app``); ``args`` are :class:`AppArgs`.

    Raises:
        ConfigError: naming the field, for unknown or mistyped arguments (before anything is deployed).
    """
    app_args = from_dict(AppArgs, dict(args), "args")
    checkpoint = from_home(app_args.checkpoint)
    app_args = dataclasses.replace(app_args, checkpoint=checkpoint)
    batching = {"max_batch_size": app_args.max_batch_size, "batch_wait_timeout_s": app_args.batch_wait_timeout_s}
    manifest = CheckpointManifest.read(checkpoint)
    specs = {m: ENCODERS.get(manifest.encoders[m].name) for m in manifest.modalities}
    # Upstream modalities first: a split encoder's deployment needs its upstream's handle.
    needed = set(specs) | {cls.serving_upstream for cls in specs.values() if cls.serving_upstream}
    encoders = {}
    for modality in sorted(needed, key=lambda m: (specs.get(m) is not None and specs[m].serving_upstream is not None,
                                                  m)):
        name = f"{modality.capitalize()}Encoder"
        cls = specs.get(modality)
        if cls is not None and cls.serving_upstream is not None:
            encoders[modality] = SplitEncoder.options(name=name).bind(checkpoint, modality,
                                                                       encoders[cls.serving_upstream])
        else:
            encoders[modality] = ModalityEncoder.options(name=name).bind(checkpoint, modality, **batching)
    # Only the model's own modalities are scored; an upstream-only deployment serves its dependents.
    routed = {m: h for m, h in encoders.items() if m in specs}
    ingress = Ingress
    if app_args.policy is not None:  # a policy given here becomes the Ingress user_config (live-updatable)
        ingress = Ingress.options(user_config={"policy": app_args.policy})
    experts = {kind: ExpertPart.options(name=EXPERT_KINDS[kind].deployment).bind(checkpoint, kind, **batching)
               for kind in manifest.experts}
    return ingress.bind(app_args, routed, FusionHead.bind(checkpoint, **batching), experts)

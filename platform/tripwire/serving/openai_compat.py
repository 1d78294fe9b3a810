"""The OpenAI-compatible moderation API (``POST /v1/moderations``): request parsing and response shape.

A service that calls a hosted moderation API through the ``openai`` SDK switches to Tripwire by changing
``base_url``. Categories are mapped from the Tripwire taxonomy through ``openai_categories.yaml``.

An OpenAI category Tripwire does not score (mapped to null there, ``sexual/minors`` among them) is never
reported as if it had been checked: its score is null (not 0.0: "not checked" is not "clean"), it is not
flagged, it applies to no input type, and each result lists it in Tripwire's extension field,
``"tripwire": {"unscored_categories": [...]}``. The ``openai`` SDK parses both (a null score reads as None;
the extension is kept as an extra field: ``result.tripwire`` or ``result.model_extra["tripwire"]``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tripwire.common.config import ConfigError, load_yaml
from tripwire.data.media import MediaError
from tripwire.policy import Taxonomy, default_resource
from tripwire.data.sample import decode_base64
from tripwire.moderation.result import ModerationResult

MAX_INPUTS = 32


@dataclass(frozen=True)
class OpenAICategoryMap:
    """OpenAI category name -> Tripwire category (None: not scored by Tripwire)."""

    taxonomy_version: str
    categories: dict[str, str | None]

    @property
    def unscored(self) -> list[str]:
        """The OpenAI categories Tripwire does not score, in the mapping's order."""
        return [name for name, target in self.categories.items() if target is None]

    @classmethod
    def load(cls, uri: str | Path | None = None) -> "OpenAICategoryMap":
        return load_yaml(cls, uri or default_resource("openai_categories.yaml"))

    def check_taxonomy(self, taxonomy: Taxonomy) -> None:
        unknown = sorted({t for t in self.categories.values() if t is not None} - set(taxonomy.names))
        if unknown:
            raise ConfigError(f"categories: targets {unknown} are not in taxonomy {taxonomy.version}")


def parse_input(payload: Any, max_image_bytes: int | None = None) -> list[dict[str, Any]]:
    """OpenAI ``input`` -> a list of items, each ``{"text": str | None, "image": bytes | None}``.

    A string is one item; an array of strings is one item each; an array of typed parts
    (``{"type": "text", "text"}`` / ``{"type": "image_url", "image_url": {"url": "data:..."}}``) is one
    multimodal item. Only ``data:`` image URLs are accepted: Tripwire never fetches arbitrary URLs.
    Parts may be mappings or the API's typed part models (anything with ``model_dump``): the HTTP API
    has validated their shape already, this checks it again for callers that did not. An image over
    ``max_image_bytes`` is refused (``too_large``) by its base64 length, before it is decoded.

    Raises:
        MediaError: naming the offending part of ``input``.
    """
    if isinstance(payload, str):
        return [{"text": payload, "image": None}]
    if not isinstance(payload, list) or not payload:
        raise MediaError("input", "wrong_type", "expected a string, an array of strings, or an array of parts")
    if len(payload) > MAX_INPUTS:
        raise MediaError("input", "too_large", f"{len(payload)} inputs > limit {MAX_INPUTS}")
    if all(isinstance(p, str) for p in payload):
        return [{"text": p, "image": None} for p in payload]
    texts, image = [], None
    for i, part in enumerate(payload):
        where = f"input[{i}]"
        if hasattr(part, "model_dump"):  # a typed part (deployments.api); the library never imports the API
            part = part.model_dump()
        if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
            raise MediaError(where, "wrong_type", "expected {type: text} or {type: image_url} parts")
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise MediaError(f"{where}.text", "wrong_type", "expected a string")
            texts.append(part["text"])
        else:
            url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
            if not isinstance(url, str):
                raise MediaError(f"{where}.image_url.url", "wrong_type", "expected a string")
            if not url.startswith("data:"):
                raise MediaError(f"{where}.image_url.url", "disallowed_uri",
                                 "only data: URLs are accepted; remote URLs are never fetched")
            if image is not None:
                raise MediaError(where, "too_many_images", "one image per item")
            image = decode_base64(f"{where}.image_url.url", url, max_image_bytes)
    return [{"text": "\n".join(texts) if texts else None, "image": image}]


def to_openai_result(result: ModerationResult, mapping: OpenAICategoryMap) -> dict[str, Any]:
    """One Tripwire moderation result -> one OpenAI ``results[]`` entry (unscored categories: see the module)."""
    scores, flagged = result.scores, set(result.flagged)
    categories: dict[str, bool] = {}
    category_scores: dict[str, float | None] = {}
    applied: dict[str, list[str]] = {}
    for name, target in mapping.categories.items():
        if target is None:  # not checked: null, never 0.0 (which reads as "checked and clean")
            categories[name], category_scores[name], applied[name] = False, None, []
            continue
        categories[name] = target in flagged
        category_scores[name] = float(scores[target])
        contributions = result.attribution[target]["contributions"]
        applied[name] = sorted(m for m, c in contributions.items() if m in ("text", "image")
                               and (c > 0.0 or m == result.attribution[target]["driven_by"]))
    return {"flagged": bool(flagged), "categories": categories, "category_scores": category_scores,
            "category_applied_input_types": applied, "tripwire": {"unscored_categories": mapping.unscored}}


def to_openai_response(results: Sequence[ModerationResult], mapping: OpenAICategoryMap, model: str) -> dict:
    return {"id": f"modr-{uuid.uuid4().hex}", "model": model,
            "results": [to_openai_result(r, mapping) for r in results]}

"""Settings of the human-review queue and its web app (``deployments/configs/review/settings.yaml``).

Validated once, here, before a store is opened or a server starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tripwire.common.config import ConfigError, load_yaml

DEFAULT_STORE = "runs/review/review.db"
RATIONALE_ACTIONS = ("restrict", "block")  # a restrictive decision must say why (DSA statements of reasons)
MAX_RATIONALE = 5000  # characters of a review's rationale (as of an appeal's statement)


@dataclass(frozen=True)
class ReviewConfig:
    """How the review queue works.

    Attributes:
        store: a SQLite path (or ``sqlite:///abs/path``) or a ``postgresql://`` URL.
        required_reviews: reviews an item needs; when they disagree the item goes to adjudication.
        claim_ttl_s: how long a claimed item stays with its reviewer before others may take it.
        golden_every: one hidden golden item per this many claims (0: none), for reviewer QA.
        token_ttl_days: default lifetime of a new reviewer token.
        taxonomy: the taxonomy YAML whose categories reviewers label (default: the bundled one).
        policy: the policy YAML whose clauses reviewers cite (default: the bundled one).
        decision_log: the decision log (SQLite path or postgresql:// URL; usually the same as ``store``):
            each resolved item's outcome is logged, and appeals can be filed. None: off.
        max_body_bytes: the largest request body the app accepts (413 beyond it, refused from the declared
            Content-Length before reading, or as soon as a body without one passes it).
        max_media_bytes: the largest media file the app sends to reviewers (413 beyond it, from the file's
            size before reading it).
    """

    store: str = DEFAULT_STORE
    required_reviews: int = 2
    claim_ttl_s: float = 900.0
    golden_every: int = 10
    token_ttl_days: float = 30.0
    taxonomy: str | None = None
    policy: str | None = None
    decision_log: str | None = None
    max_body_bytes: int = 1024 * 1024
    max_media_bytes: int = 64 * 1024 * 1024

    def __post_init__(self):
        if not self.store:
            raise ConfigError("store: must name a SQLite path or a postgresql:// URL")
        if self.required_reviews < 1:
            raise ConfigError(f"required_reviews: must be at least 1, got {self.required_reviews}")
        if self.claim_ttl_s <= 0:
            raise ConfigError(f"claim_ttl_s: must be positive, got {self.claim_ttl_s}")
        if self.golden_every < 0:
            raise ConfigError(f"golden_every: must be >= 0 (0 = no golden items), got {self.golden_every}")
        if self.token_ttl_days <= 0:
            raise ConfigError(f"token_ttl_days: must be positive, got {self.token_ttl_days}")
        for name in ("max_body_bytes", "max_media_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")

    @classmethod
    def load(cls, uri: str | Path | None) -> "ReviewConfig":
        return load_yaml(cls, uri) if uri else cls()

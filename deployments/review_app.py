"""The reviewer web app as a Ray Serve application (the same FastAPI app ``tripwire review-ui`` serves).

    applications:
      - name: review
        route_prefix: /review
        import_path: deployments.review_app:build_review_app
        args: {config: deployments/configs/review/settings.yaml}     # or {store: postgresql://...}

With several replicas use PostgreSQL (SQLite is one file on one host); the pages use relative URLs, so
the app works under any route prefix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ray import serve

from tripwire.common.config import from_dict
from tripwire.common.home import from_home
from tripwire.compliance.decision_log import DecisionLog
from tripwire.policy import Policy, Taxonomy
from tripwire.review.app import create_app
from tripwire.review.config import ReviewConfig
from tripwire.review.store import open_configured_store


@dataclass(frozen=True)
class ReviewAppArgs:
    """The Serve application's ``args``: a review config YAML and/or a store URL that overrides it."""

    config: str | None = None
    store: str | None = None


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
@serve.ingress()
class ReviewApp:
    """One replica of the reviewer app: its own store connections, the shared database behind them."""

    def __init__(self, config: ReviewConfig):
        self.config = config
        self.store = open_configured_store(config)
        self.log = DecisionLog(config.decision_log) if config.decision_log else None

    def __serve_build_asgi_app__(self):
        return create_app(self.store, self.config, self.log)

    def __del__(self):
        self.store.close()
        if self.log is not None:
            self.log.close()


def build_review_app(args: dict[str, Any]) -> serve.Application:
    """Serve application builder; ``args`` are :class:`ReviewAppArgs`, checked before anything deploys."""
    app_args = from_dict(ReviewAppArgs, dict(args), "args")
    config = ReviewConfig.load(from_home(app_args.config) if app_args.config else None)
    store = app_args.store or config.store
    config = dataclasses.replace(config, store=store if "://" in store else from_home(store))
    if config.decision_log:
        config = dataclasses.replace(config, decision_log=config.decision_log if "://" in config.decision_log
                                     else from_home(config.decision_log))
    Policy.load(config.policy).check_taxonomy(Taxonomy.load(config.taxonomy))
    return ReviewApp.bind(config)

"""Helpers shared by the tests (fixtures live in conftest.py files)."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TINY_TEXT = {"hf_config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
                           "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64}}


def good_samples(cfg):
    """The manifest's valid rows (the fixture appended broken ones, which training quarantined)."""
    from tripwire.sample import Sample

    for line in Path(cfg.data.manifest).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not str(row.get("id", "")).startswith("bad-"):
            yield Sample.from_row(row)


# One access-log line per call per deployment would bury the test output; errors are still logged.
QUIET_SERVE = {"enable_access_log": False}


def deploy(args: dict) -> None:
    """(Re)deploys the Tripwire app under the name and route the tests call. ``serve.run`` gives every
    deployment a new code version, so all replicas restart; in-place updates need ``serve deploy``."""
    from ray import serve

    from deployments.app import build_app

    serve.run(build_app(args), name="tripwire", route_prefix="/", logging_config=QUIET_SERVE)

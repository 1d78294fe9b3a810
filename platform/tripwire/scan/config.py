"""The scan job's settings: what to scan (checkpoint, manifest, output) and how to scale it (a YAML file).

A scan config (``pipelines/configs/scan.yaml``) holds the scaling knobs; the command line names the
checkpoint, the manifest and the output. Everything is validated here, before Ray starts, so a typo or
a wrong path is one clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tripwire.common.config import ConfigError

MANIFEST_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class ScanConfig:
    """How a scan scales.

    Attributes:
        batch_size: items per model call in an actor (the forward pass's batch).
        actors: size of the model actor pool (one model copy each).
        cpus_per_actor: CPUs each model actor reserves.
        gpus_per_actor: GPUs each model actor reserves; null means one when the cluster has GPUs, else none.
        preprocess_batch_size: items per decode + preprocess task.
        preprocess_cpus: CPUs each decode + preprocess task reserves.
        rows_per_file: results per output Parquet file; also bounds the rows the driver buffers.
        progress_every_s: how often the console shows progress.
    """

    batch_size: int = 32
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None
    preprocess_batch_size: int = 32
    preprocess_cpus: float = 0.5
    rows_per_file: int = 4096
    progress_every_s: float = 10.0

    def __post_init__(self):
        for name in ("batch_size", "actors", "preprocess_batch_size", "rows_per_file"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.cpus_per_actor < 0 or self.preprocess_cpus <= 0:
            raise ConfigError("cpus_per_actor must be >= 0 and preprocess_cpus > 0")
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise ConfigError(f"gpus_per_actor: must be >= 0 or null, got {self.gpus_per_actor}")
        if self.progress_every_s <= 0:
            raise ConfigError(f"progress_every_s: must be positive, got {self.progress_every_s}")


@dataclass(frozen=True)
class ScanJob:
    """One scan: a checkpoint over a catalogue manifest, results to ``out`` (any fsspec URI).

    Attributes:
        checkpoint: the model (a Tripwire checkpoint URI).
        manifest: the catalogue (JSONL or Parquet; media by URI, relative to it, or inline).
        out: the output folder: ``results/`` (partitioned by action), ``review_candidates/``,
            ``quarantine/``, ``scan.json`` and ``summary.json``. Running again with the same ``out`` resumes
            when it was written with the same checkpoint, policy, manifest and market (refused otherwise).
        policy: a policy YAML (default: the bundled policy).
        market: decide every item for this market (default: each item's own ``meta.market``).
        scan: the scaling settings.
        decision_log: append the scan's enforcement decisions to this decision log when it finishes: a SQLite
            path or postgresql:// URL (the review store's), or a folder on any fsspec URI (Parquet files,
            one writer at a time); None: not logged.
        restart: clear what an earlier scan wrote to ``out`` and start over (needed to reuse an output
            written with another checkpoint, policy, manifest or market).
    """

    checkpoint: str
    manifest: str
    out: str
    policy: str | None = None
    market: str | None = None
    scan: ScanConfig = field(default_factory=ScanConfig)
    decision_log: str | None = None
    restart: bool = False

    def __post_init__(self):
        if not str(self.manifest).endswith(MANIFEST_SUFFIXES):
            raise ConfigError(f"manifest: {self.manifest} is not a manifest (expected one of {list(MANIFEST_SUFFIXES)})")
        if self.market is not None and (len(self.market) != 2 or not self.market.isalpha()):
            raise ConfigError(f"market: {self.market!r} is not an ISO 3166 alpha-2 code")

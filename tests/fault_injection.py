"""Fault injection for training runs: a Ray Train callback that kills one worker right after the run's first
checkpoint is reported, so the kill lands mid-run however short the epochs are (no timing guesswork)."""

from __future__ import annotations

import os
import signal
import sys

import ray.cloudpickle
from ray.train import UserCallback


class KillOneWorkerAfterFirstCheckpoint(UserCallback):
    """Runs in the run's controller: after the first report that carries a checkpoint, SIGKILLs one of the
    run's workers, once. Ray Train then restarts the worker group from that checkpoint (``max_failures``
    must allow one failure). The controller keeps this object, so ``killed_pid`` is set there, not in the
    test's copy: the run's own record (``resumed_from_epoch``) is the evidence."""

    def __init__(self) -> None:
        self.killed_pid: int | None = None

    def after_report(self, run_context, metrics, checkpoint) -> None:
        if self.killed_pid is not None or checkpoint is None:
            return
        from ray.util.state import list_actors

        workers = list_actors(address=ray.get_runtime_context().gcs_address,
                              filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
        if not workers:
            raise RuntimeError("no live RayTrainWorker to kill")
        self.killed_pid = max(w.pid for w in workers)
        os.kill(self.killed_pid, signal.SIGKILL)


# The run's controller imports nothing from tests/: the class travels by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

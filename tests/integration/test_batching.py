"""Batch formation in a real Serve replica whose ``@serve.batch`` work runs in a thread (as the
encoders' does): with a wait of 0 Ray forms batches of one; the busy-aware wait batches under load
and lets a lone request through at once."""

from __future__ import annotations

import asyncio
import sys
import time

RUN_S = 0.06  # one "forward pass"


def probe_app(busy_aware: bool):
    from ray import cloudpickle, serve

    from tripwire.serving.batching import BusyAwareBatchWait

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test module is not importable by workers

    @serve.deployment(ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=64)
    class Probe:
        def __init__(self):
            self.sizes: list[int] = []
            self.wait = BusyAwareBatchWait(self.run, 0.0) if busy_aware else None

        @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
        async def run(self, items: list[int]) -> list[int]:
            self.sizes.append(len(items))
            if self.wait is None:
                await asyncio.to_thread(time.sleep, RUN_S)
            else:
                with self.wait.running():
                    await asyncio.to_thread(time.sleep, RUN_S)
            return [i * 2 for i in items]

        async def __call__(self, item: int) -> int:
            return await self.run(item)

        def batch_sizes(self) -> list[int]:
            return self.sizes

    return Probe.bind()


async def burst_during_a_run(handle, burst: int = 8) -> None:
    """One request starts a run; ``burst`` more arrive while it runs (after a warm-up call, so the
    replica knows how long a run takes)."""
    assert await handle.remote(0) == 0
    first = handle.remote(1)
    await asyncio.sleep(RUN_S / 4)
    results = await asyncio.gather(first, *(handle.remote(i) for i in range(2, burst + 2)))
    assert results == [2 * i for i in range(1, burst + 2)]


def run_probe(busy_aware: bool) -> tuple[list[int], object]:
    from ray import serve

    handle = serve.run(probe_app(busy_aware), name=f"batch-probe-{busy_aware}", route_prefix=None)
    asyncio.run(burst_during_a_run(handle))
    return handle.batch_sizes.remote().result()[1:], handle  # without the warm-up batch


def test_requests_arriving_during_a_run_go_together_only_with_the_busy_aware_wait(ray_session, serve_endpoint):
    from ray import serve

    try:
        plain, _ = run_probe(busy_aware=False)
        aware, handle = run_probe(busy_aware=True)
        print("batch sizes without, with the busy-aware wait:", plain, aware)
        assert sum(plain) == sum(aware) == 9
        # The burst waits for company while the first request runs: one batch (two if it straddles).
        assert aware[0] == 1 and len(aware) <= 3 and max(aware) >= 6, aware
        # Ray's loop alone forms batches from whoever is first while the thread runs.
        assert len(plain) > len(aware), (plain, aware)

        time.sleep(0.3)  # idle again: a lone request does not wait for company
        started = time.perf_counter()
        assert handle.remote(7).result() == 14
        assert time.perf_counter() - started < RUN_S + 0.25  # a handle round trip, not a batch wait
    finally:
        for busy_aware in (False, True):
            serve.delete(f"batch-probe-{busy_aware}")

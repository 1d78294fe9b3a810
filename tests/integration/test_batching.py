"""Batch formation in a real Serve replica whose ``@serve.batch`` work runs in a thread (as the
encoders' does): with a wait of 0 Ray forms batches of one; the busy-aware wait batches under load
and lets a lone request through at once."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

RUN_S = 0.03  # one "forward pass"


def probe_app(busy_aware: bool):
    from ray import cloudpickle, serve

    from tripwire.batching import BusyAwareBatchWait

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


async def steady_load(handle, clients: int = 16, per_client: int = 6) -> None:
    async def client(c: int):
        for k in range(per_client):
            assert await handle.remote(c * 100 + k) == 2 * (c * 100 + k)
            await asyncio.sleep(0.001 * (c % 4))  # clients out of step, as over a network

    await asyncio.gather(*(client(c) for c in range(clients)))


@pytest.mark.parametrize("busy_aware", [False, True], ids=["wait0", "busy_aware"])
def test_batches_form_under_load_only_with_the_busy_aware_wait(ray_session, serve_endpoint, busy_aware):
    from ray import serve

    name = f"batch-probe-{busy_aware}"
    handle = serve.run(probe_app(busy_aware), name=name, route_prefix=None)
    try:
        asyncio.run(steady_load(handle))
        sizes = handle.batch_sizes.remote().result()
        mean = sum(sizes) / len(sizes)
        if busy_aware:
            assert mean > 6, sizes
            time.sleep(0.3)  # idle again: a lone request does not wait for company
            started = time.perf_counter()
            assert handle.remote(7).result() == 14
            assert time.perf_counter() - started < RUN_S + 0.25  # a handle round trip, not a batch wait
        else:
            assert mean < 3, sizes  # Ray's loop takes whoever is first while the thread runs
    finally:
        serve.delete(name)

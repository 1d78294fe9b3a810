"""Faults under load: killing an encoder replica. Serve replaces it; callers get 200 or a 503 JSON
(retryable) meanwhile, nothing hangs past its timeout, and once replaced every request succeeds."""

from __future__ import annotations

import threading
import time

import httpx

REQUEST_TIMEOUT_S = 30.0


def test_killing_an_encoder_replica_under_load(served):
    import ray

    url, _ = served
    [replica] = [a for a in ray.util.list_named_actors(all_namespaces=True) if "#TextEncoder#" in a["name"]]
    results: list[tuple[float, object, float]] = []  # (started, status, seconds)
    stop = threading.Event()

    def load():
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = client.post(f"{url}/v1/moderate", json={"text": "steady load"}).status_code
                except httpx.TimeoutException:
                    status = "timeout"
                results.append((started, status, time.monotonic() - started))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    killed_at = time.monotonic()
    ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=True)

    recovered_at = None
    deadline = killed_at + 120
    while time.monotonic() < deadline and recovered_at is None:
        time.sleep(1)
        recent = [r for r in results if r[0] > killed_at + 1]
        if len(recent) >= 20 and all(status == 200 for _, status, _ in recent[-20:]):
            recovered_at = recent[-20][0]
    stop.set()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 5)

    statuses = {status for _, status, _ in results}
    assert recovered_at is not None, f"no recovery within 120s; statuses seen: {statuses}"
    assert statuses <= {200, 503}, statuses
    assert max(seconds for _, _, seconds in results) < REQUEST_TIMEOUT_S
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "#TextEncoder#" in a["name"]]
    assert names and replica["name"] not in names  # a new replica took its place

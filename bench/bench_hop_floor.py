"""The Serve transport floor on this machine: what HTTP and each replica hop cost with no model at all.

The serving benchmark's "added latency" is the Serve graph's p50 minus the same model in-process. This
benchmark measures the part of it no model change can remove: an ingress of the same shape (FastAPI behind
the same proxy, the same Serve settings) whose downstream deployments return their input at once, called
over loopback HTTP one request at a time, with 0, 1 and 2 sequential hops, the graph's shape being 2
(encoders, then fusion). A plain Ray actor call is measured beside it for reference.
Prints a table and writes ``bench/results/hop_floor.json``.

    .venv/bin/python -m bench.bench_hop_floor [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

import numpy as np

from bench.bench_serving import save_report, use_serve_settings
from bench.loadgen import KeepAliveConnection


def hop_payload() -> list[dict]:
    """About what the graph sends per call: a text's token ids out, an embedding back."""
    return [{"input_ids": np.arange(64), "embedding": np.zeros(384, np.float32)}]


def build_floor_app(payload: list[dict]):
    from fastapi import FastAPI
    from ray import serve

    from deployments.app import INTERNAL_CALL_LOGGING

    api = FastAPI()

    @serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=32,
                      logging_config=INTERNAL_CALL_LOGGING)
    class Echo:
        async def __call__(self, payload):
            return payload

    @serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
    @serve.ingress(api)
    class FloorIngress:
        def __init__(self, first, second, payload):
            self.first, self.second, self.payload = first, second, payload

        @api.post("/hops/{count}")
        async def hops(self, count: int) -> dict:
            started = time.perf_counter()
            if count >= 1:
                await self.first.remote(self.payload)
            if count >= 2:
                await self.second.remote(self.payload)
            return {"in_ingress_ms": 1000 * (time.perf_counter() - started)}

    return FloorIngress.bind(Echo.options(name="First").bind(), Echo.options(name="Second").bind(), payload)


def actor_round_trip_ms(requests: int, payload: list[dict]) -> float:
    import ray

    @ray.remote(num_cpus=0.1)
    class EchoActor:
        async def echo(self, payload):
            return payload

    @ray.remote(num_cpus=0.1)
    class Caller:
        async def run(self, target, n: int, payload) -> list[float]:
            out = []
            for _ in range(n):
                started = time.perf_counter()
                await target.echo.remote(payload)
                out.append(time.perf_counter() - started)
            return out

    target, caller = EchoActor.remote(), Caller.remote()
    ray.get(caller.run.remote(target, 20, payload))
    return round(1000 * statistics.median(ray.get(caller.run.remote(target, requests, payload))), 3)


async def http_p50(base_url: str, path: str, requests: int) -> dict:
    latencies, inside = [], []
    connection = KeepAliveConnection(base_url)  # the serving benchmark's client (bench/loadgen.py)
    for _ in range(20):
        await connection.post(path, b"")
    for _ in range(requests):
        started = time.perf_counter()
        status, body = await connection.post(path, b"")
        latencies.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {body[:200]!r}")
        inside.append(json.loads(body)["in_ingress_ms"])
    await connection.close()
    return {"p50_ms": round(1000 * statistics.median(latencies), 3),
            "hops_p50_ms_in_ingress": round(statistics.median(inside), 3)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--port", type=int, default=8125)
    parser.add_argument("--out", default="hop_floor.json", help="file name under bench/results/")
    args = parser.parse_args(argv)
    use_serve_settings()  # the serving benchmark's
    import ray
    from ray import serve

    ray.init(num_cpus=2, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    payload = hop_payload()
    serve.run(build_floor_app(payload), name="floor", route_prefix="/")
    # Alternate the hop counts round by round so a noisy moment hits all of them alike.
    rounds = {count: [] for count in (0, 1, 2)}
    for _ in range(3):
        for count in rounds:
            rounds[count].append(asyncio.run(http_p50(f"http://127.0.0.1:{args.port}", f"/hops/{count}",
                                                      args.requests // 3)))
    http = {count: {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
            for count, runs in rounds.items()}
    serve.delete("floor")
    actor_ms = actor_round_trip_ms(args.requests, payload)
    serve.shutdown()
    ray.shutdown()

    report = {"machine": "2 CPU cores (CI kind)", "requests": args.requests, "client": "lean (bench/loadgen.py)",
              "serve_env": {k: v for k, v in os.environ.items() if k.startswith("RAY_SERVE_")},
              "http_no_op_by_hops": http, "ray_actor_round_trip_p50_ms": actor_ms,
              "summary": {"http_and_ingress_p50_ms": http[0]["p50_ms"],
                          "serve_hop_p50_ms": round(http[2]["hops_p50_ms_in_ingress"] / 2, 3),
                          "floor_of_a_two_hop_graph_p50_ms": http[2]["p50_ms"],
                          "ray_actor_round_trip_p50_ms": actor_ms}}
    print(f"\n{'hops':>5}{'HTTP p50 ms':>14}{'hops in ingress ms':>20}")
    for count, row in http.items():
        print(f"{count:>5}{row['p50_ms']:>14}{row['hops_p50_ms_in_ingress']:>20}")
    save_report(report, args.out)
    return report


if __name__ == "__main__":
    main()

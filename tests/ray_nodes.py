"""Separately started Ray nodes (``ray start``) beside the test session's own Ray, on this machine.

``ray stop`` would stop every Ray instance on the machine (the session's too), so each node runs with
``--block`` in its own process group and is stopped by signalling that group. The head gets its own
``--temp-dir``, which keeps it from rewriting ``/tmp/ray/ray_current_cluster`` (every later
``ray.init()`` on this machine would otherwise follow it to a stopped node), and every node its own
ports, so several can run on one machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], env=env, start_new_session=True,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def _stop(node: subprocess.Popen) -> None:
    # Whatever ran on the node has finished and its results are on disk, so it need not stop gracefully
    # (that takes about half a minute): a few seconds' grace, then its whole process group is killed.
    try:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)
    except ProcessLookupError:
        pass


def _node_args(cpus: float, resources: dict | None) -> list[str]:
    manager, objects, agent, agent_grpc, metrics, runtime_env = free_ports(6)
    args = [f"--num-cpus={cpus}", f"--node-manager-port={manager}", f"--object-manager-port={objects}",
            f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}"]
    return args + ([f"--resources={json.dumps(resources)}"] if resources else [])


@contextmanager
def local_cluster(log_dir: Path, head_cpus: float = 2, worker_cpus: tuple[float, ...] = ()):
    """A head node (and worker nodes) of one Ray cluster; yields ``(dashboard_url, gcs_address, env)``."""
    gcs, dashboard, client = free_ports(3)
    temp_dir = tempfile.mkdtemp(prefix="tw-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    # Ray 2.59+ local clusters require a token: every node and client uses the one in ~/.ray/auth_token.
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    nodes = [_start(["--head", f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                     f"--ray-client-server-port={client}", f"--temp-dir={temp_dir}",
                     *_node_args(head_cpus, None)], env, log_dir / "head.log")]
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for(lambda: subprocess.run([RAY, "job", "list", "--address", address], env=env,
                                         capture_output=True).returncode == 0, nodes, log_dir / "head.log")
        for i, cpus in enumerate(worker_cpus):
            nodes.append(_start([f"--address=127.0.0.1:{gcs}", *_node_args(cpus, None)], env, log_dir / f"worker{i}.log"))
        if worker_cpus:
            _wait_for(lambda: len(alive_nodes(address, env)) == 1 + len(worker_cpus), nodes, log_dir / "worker0.log")
        yield address, f"127.0.0.1:{gcs}", env
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(temp_dir, ignore_errors=True)


def alive_nodes(address: str, env: dict) -> list[dict]:
    listed = subprocess.run([RAY, "list", "nodes", "--address", address, "--format", "json", "--filter", "state=ALIVE"],
                            env=env, capture_output=True, text=True)
    try:
        return json.loads(listed.stdout) if listed.returncode == 0 else []
    except json.JSONDecodeError:  # "No resource in the cluster" while the nodes register
        return []


def _wait_for(predicate, nodes: list[subprocess.Popen], log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for node in nodes:
            if node.poll() is not None:
                pytest.fail(f"a Ray node exited: {log.read_text()[-2000:] if log.exists() else ''}")
        time.sleep(2)
    pytest.fail(f"the Ray cluster did not come up in {timeout_s}s: {log.read_text()[-2000:] if log.exists() else ''}")

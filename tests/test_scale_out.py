"""Scale-out: two engine replicas on a two-node local Ray cluster behind one gateway.

The cluster is our own (`ray start --head` + `ray start --address`, 1 CPU each, own temp
dirs and ports, bound to 127.0.0.1); it is torn down by killing the process groups we
started (never `ray stop`, which would kill other sessions' Ray too).

The engines ask Ray for no CPUs (engine_num_cpus = 0), the case where Ray ignores soft node
affinity and places an actor at random; the pool pins replicas with hard affinity instead
(serving/pool.py), and moves a pinned replica whose node is gone to a node that is left.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import free_port, start_server, stop_server

RAY = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "ray")
# `ray start --head` turns token authentication on by default; our throwaway cluster, its
# driver and the gateway all run on this machine, so it stays off (no token file to share).
# A node that gets SIGTERM would drain for up to 30 s first (the head never finishes: our
# teardown waited the whole 30 s); our nodes stop at once.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_agent_register_timeout_ms": "180000",  # a loaded machine starts agents slowly
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}


def ray_node(args: list[str], temp_dir: str, log: Path) -> subprocess.Popen:
    """One `ray start --block` in its own process group: killing the group ends the node."""
    env = {**os.environ, **RAY_ENV}
    ports = ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
             "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
             "--metrics-export-port", str(free_port()),
             "--runtime-env-agent-port", str(free_port())]
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
                             "--temp-dir", temp_dir, *ports, *args], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_nodes(address: str, n: int, nodes: list[subprocess.Popen], timeout: float = 400) -> bool:
    """True once the cluster has `n` alive nodes; False if one of our `ray start`s exited
    (Ray gives a raylet a fixed 30 s to register, which a loaded machine can miss)."""
    script = f"import ray; ray.init(address='{address}', logging_level='ERROR'); " \
             "print(sum(x['Alive'] for x in ray.nodes()))"
    deadline, seen = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        if any(node.poll() is not None for node in nodes):
            return False
        try:
            out = subprocess.run([str(Path(RAY).parent / "python"), "-c", script], capture_output=True,
                                 text=True, timeout=180, env={**os.environ, **RAY_ENV})
        except subprocess.TimeoutExpired:
            continue  # a loaded machine: the driver itself took too long to start
        seen = out.stdout + out.stderr[-2000:]
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
            return True
        time.sleep(2)
    raise AssertionError(f"the Ray cluster at {address} did not reach {n} nodes: {seen}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("scale-out")
    port = free_port()
    address = f"127.0.0.1:{port}"
    # Short temp dirs: Ray's unix socket paths must stay under 108 bytes.
    head_tmp, worker_tmp = tempfile.mkdtemp(prefix="rxh"), tempfile.mkdtemp(prefix="rxw")
    nodes: list[subprocess.Popen] = []
    try:
        for attempt in range(3):  # retried: see wait_nodes
            head = ray_node(["--head", "--port", str(port), "--include-dashboard", "false",
                             "--ray-client-server-port", str(free_port())], head_tmp, base / "head.log")
            nodes = [head]
            if wait_nodes(address, 1, nodes):  # the worker must not dial the head before its GCS is up
                break
            kill_group(head)
        for attempt in range(3):
            worker = ray_node(["--address", address], worker_tmp, base / "worker.log")
            if wait_nodes(address, 2, [*nodes, worker]):
                nodes.append(worker)
                break
            kill_group(worker)
        else:
            raise AssertionError(f"no 2-node Ray cluster: {(base / 'worker.log').read_text()[-2000:]}")
        yield address, base, nodes
    finally:
        for node in reversed(nodes):
            kill_group(node)


@pytest.fixture(scope="module")
def gateway(cluster):
    address, base, _ = cluster
    server = start_server(base / "gateway", {"RIXIN_RAY_ADDRESS": address, "RIXIN_ENGINE_REPLICAS": "2",
                                             "RIXIN_ENGINE_BATCH_SLOTS": "2", "RIXIN_ENGINE_THREADS": "1",
                                             "RIXIN_CHAT_CONTEXT": "512", **RAY_ENV},
                          admin_key="rx-admin-" + secrets.token_hex(8))
    try:
        yield server
    finally:
        stop_server(server)


def ask_many(server, n: int = 16) -> list[str]:
    """`n` chat requests, 8 at a time (so the least-loaded choice uses both replicas)."""
    client = server.client()

    def ask(i: int) -> str:
        r = client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=8, temperature=0,
                                           messages=[{"role": "user", "content": f"Count to {i}."}])
        return r.choices[0].message.content

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(ask, range(n)))


def chat_replicas(server) -> list[dict]:
    engines = server.http().get("/v1/engines").json()["data"]
    return sorted((e for e in engines if e["model"] == "smollm2-135m-instruct"), key=lambda e: e["replica"])


def test_two_replicas_on_two_nodes_share_the_requests(cluster, gateway):
    answers = ask_many(gateway)
    assert all(answers)
    chat = chat_replicas(gateway)
    assert [e["replica"] for e in chat] == [0, 1]
    assert all(e["state"] == "running" for e in chat), chat
    assert len({e["node_id"] for e in chat}) == 2, chat  # one replica per node
    assert len({e["pid"] for e in chat}) == 2
    assert all(e["generations"] > 0 for e in chat), chat  # both served requests
    assert sum(e["generations"] for e in chat) >= 16


def test_replicas_serve_on_the_node_left_when_the_other_node_goes(cluster, gateway):
    """The worker node's `ray start` ends: whichever replica ran there (replica 0, which Ray
    restarts itself, or pinned replica 1, which the pool moves) serves again from the head."""
    _, _, nodes = cluster
    assert all(ask_many(gateway, 4))
    before = {e["replica"]: e["node_id"] for e in chat_replicas(gateway)}
    assert len(set(before.values())) == 2, before
    kill_group(nodes[1])  # the worker node
    assert all(ask_many(gateway))
    chat = chat_replicas(gateway)
    assert all(e["state"] == "running" for e in chat), chat
    assert len({e["node_id"] for e in chat}) == 1, chat  # both on the node that is left
    assert {e["node_id"] for e in chat} <= set(before.values())
    moved = [e for e in chat if e["node_id"] != before[e["replica"]]]
    assert len(moved) == 1, (before, chat)
    assert moved[0]["generations"] > 0, chat  # the moved replica served requests from its new node

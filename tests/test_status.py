"""The cluster at a glance: /v1/cluster (admin) and `rixin status` against a live gateway."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import CHAT, RIXIN, free_port


def status(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RIXIN_")}, **(env or {})}
    return subprocess.run([RIXIN, "status", *args], capture_output=True, text=True, timeout=60, env=env)


def test_cluster_lists_nodes_resources_jobs_and_limits(server):
    with server.http() as http:
        http.post("/v1/chat/completions", json={"model": CHAT, "max_tokens": 1,
                                                "messages": [{"role": "user", "content": "hi"}]})
        body = http.get("/v1/cluster").json()
    assert body["object"] == "cluster"
    node = body["nodes"][0]
    assert node["alive"] and node["cpus"] >= 1 and node["memory_bytes"] > 2**20
    assert node["address"] == "127.0.0.1" and node["node_id"]
    assert isinstance(node["accelerators"], list) and body["available"]["cpus"] >= 0
    assert body["limits"]["job_slots"] >= 1 and body["limits"]["engine_queue_size"] >= 1
    assert all({"project", "kind", "status", "count"} <= set(j) for j in body["jobs"])


def test_cluster_needs_an_admin_key(server):
    key = server.new_key(f"status-{server.backend}")
    with server.http(key) as http:
        r = http.get("/v1/cluster")
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_permissions", r.text
    with server.http("rx-wrong") as http:
        assert http.get("/v1/cluster").status_code == 401


def test_rixin_status_shows_nodes_engines_and_queues(server):
    with server.http() as http:  # the chat engine is loaded: its replica must be listed
        http.post("/v1/chat/completions", json={"model": CHAT, "max_tokens": 1,
                                                "messages": [{"role": "user", "content": "hi"}]})
    out = status("--url", server.url, "--key", server.admin_key)
    assert out.returncode == 0, out.stderr
    assert "Ray nodes" in out.stdout and "Engines" in out.stdout and CHAT in out.stdout
    assert "127.0.0.1" in out.stdout and "job slot" in out.stdout
    raw = status("--url", server.url, "--json", env={"RIXIN_ADMIN_KEY": server.admin_key})
    state = json.loads(raw.stdout)
    assert state["health"]["status"] == "ok"
    chat = next(e for e in state["engines"] if e["model"] == CHAT)
    assert chat["node_id"] in {n["node_id"] for n in state["cluster"]["nodes"]}  # what runs where


def test_rixin_status_explains_a_bad_key_and_a_missing_gateway(server):
    bad = status("--url", server.url, "--key", "rx-wrong")
    assert bad.returncode == 2 and "admin key" in bad.stderr and "Traceback" not in bad.stderr
    gone = status("--url", f"http://127.0.0.1:{free_port()}", "--key", "x")
    assert gone.returncode == 2 and "rixin up" in gone.stderr and "Traceback" not in gone.stderr


def test_every_listening_socket_of_the_platform_is_on_loopback(server):
    """Servers started for a local platform (gateway, Ray's GCS, raylet, workers) bind 127.0.0.1."""
    import psutil

    tree = psutil.Process(server.process.pid)
    pids = {tree.pid} | {p.pid for p in tree.children(recursive=True)}
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert len({c.pid for c in listening}) >= 3, listening  # gateway, gcs_server, raylet at least
    exposed = [(c.laddr, psutil.Process(c.pid).name()) for c in listening
               if c.laddr.ip not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")]
    assert not exposed, exposed

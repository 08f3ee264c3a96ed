"""Shared fixtures: a live `rixin up` subprocess per database backend, driven over HTTP.

The PostgreSQL tier runs when RIXIN_TEST_POSTGRES_URL points at a server where we may
create databases (.ci/run starts Debian's PostgreSQL and sets it).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
RIXIN = str(Path(sys.executable).parent / "rixin")
POSTGRES_URL = os.environ.get("RIXIN_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])
CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_postgres_database() -> str:
    """A new, empty database on the test PostgreSQL server; returns its SQLAlchemy URL."""
    import psycopg

    name = f"rixin_test_{secrets.token_hex(4)}"
    base = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


@dataclass
class Server:
    url: str
    admin_key: str
    data_dir: Path
    env: dict
    process: subprocess.Popen
    log: Path

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def cli(self, *args: str, key: str | None = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess:
        """Run the `rixin` CLI as a user does: a client of this gateway (RIXIN_BASE_URL) with a
        key (RIXIN_API_KEY; default the admin key, whose project is 'default')."""
        return run_cli(args, self.cli_env(key), check, timeout)

    def cli_env(self, key: str | None = None) -> dict:
        return {**self.env, "RIXIN_BASE_URL": self.url, "RIXIN_API_KEY": key or self.admin_key,
                "PYTHONUNBUFFERED": "1"}

    def offline(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run an offline `rixin` command (keys create, models add/export) on this server's data dir."""
        return run_cli([*args, "--data-dir", str(self.data_dir)], self.env, check, timeout=300)

    def new_key(self, project: str) -> str:
        """A key made by `rixin keys create`, which prints it alone on its last line."""
        return self.offline("keys", "create", "--project", project).stdout.strip().splitlines()[-1]

    def client(self, key: str | None = None, **kwargs):
        import openai

        return openai.OpenAI(base_url=self.v1, api_key=key or self.admin_key, max_retries=0,
                             timeout=120, **kwargs)

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def run_cli(args, env: dict, check: bool, timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run([RIXIN, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"rixin {' '.join(args)} failed: {result.stdout}\n{result.stderr}")
    return result


def start_server(data_dir: Path, env_extra: dict | None = None, admin_key: str | None = None,
                 wait: bool = True) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIXIN_")}
    env.update({"HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", **(env_extra or {})})
    if admin_key:
        env["RIXIN_ADMIN_KEY"] = admin_key
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "server.log"
    process = subprocess.Popen([RIXIN, "up", "--host", "127.0.0.1", "--port", str(port),
                                "--data-dir", str(data_dir)], env=env, stdout=log.open("ab"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", admin_key or "", data_dir, env, process, log)
    if wait:
        wait_healthy(server)
    return server


def wait_healthy(server: Server, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"rixin up exited with {server.process.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + "/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise AssertionError(f"rixin up not healthy after {timeout} s:\n{server.output()}")


def stop_server(server: Server, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if server.process.poll() is None:
        server.process.send_signal(sig)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
    return server.process.returncode


@pytest.fixture(scope="session", params=BACKENDS)
def server(request, tmp_path_factory) -> Server:
    env = {}
    if request.param == "postgres":
        env["RIXIN_DATABASE_URL"] = fresh_postgres_database()
    srv = start_server(tmp_path_factory.mktemp(f"rixin-{request.param}"), env,
                       admin_key="rx-admin-" + secrets.token_hex(8))
    srv.backend = request.param
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def own_server(tmp_path_factory) -> Server:
    """A server of its own, for tests that break things (engine kills), with a short engine
    queue so that back-pressure is easy to reach."""
    srv = start_server(tmp_path_factory.mktemp("rixin-faults"), {"RIXIN_ENGINE_QUEUE_SIZE": "2"},
                       admin_key="rx-admin-" + secrets.token_hex(8))
    yield srv
    stop_server(srv)

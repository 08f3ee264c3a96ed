"""The processes the benchmarks start and stop: `rixin up` on a free local port, the
llama_cpp.server peer (bench/llama_server.py), a restart-on-exit supervisor for the peers of
the recovery benchmark, and stopping a whole process group (Ray workers included).

Every process starts in a session of its own and is remembered in GROUPS, so a benchmark can
stop all it started (`stop_all`) and never signals anyone else's processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RIXIN = str(Path(sys.executable).parent / "rixin")  # the `rixin` of the interpreter running the bench
PEER_SITE = Path(os.environ.get("RIXIN_BENCH_SITE", "/tmp/bench-site"))
MODEL = "smollm2-135m-instruct"  # the bundled chat model every serving benchmark asks for
GROUPS: list[subprocess.Popen] = []  # group leaders we started, their groups killed on exit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- process groups


def spawn(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    p = subprocess.Popen(argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    GROUPS.append(p)
    return p


def exited(p: subprocess.Popen, timeout: float | None) -> bool:
    """Wait up to `timeout` s (None: for ever) for the leader to exit WITHOUT reaping it: while
    it is an unreaped zombie its pid, hence its group id, cannot go to another process."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        flags = os.WEXITED | os.WNOWAIT | (0 if deadline is None else os.WNOHANG)
        try:
            if os.waitid(os.P_PID, p.pid, flags) is not None:
                return True
        except ChildProcessError:  # reaped already (by another thread's wait)
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def kill_group(p: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM the group, SIGKILL what is left after `grace` s (Ray workers, children), reap."""
    if p.returncode is not None:
        return  # reaped: its group id may belong to someone else by now
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            break
        if sig == signal.SIGTERM:
            exited(p, wait)
    for pid in session_members(p.pid):  # Ray workers move to groups of their own, not sessions
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait()


def session_members(sid: int) -> list[int]:
    """Processes of the session `sid` (start_new_session made our leader's pid its id; the id
    cannot be reused while the leader is unreaped or any member lives)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != sid:
            try:
                if os.getsid(int(entry)) == sid:
                    out.append(int(entry))
            except (ProcessLookupError, PermissionError):
                pass
    return out


def stop_all(grace: float = 5) -> None:
    """Anything left of any group we started and have not reaped."""
    for p in GROUPS:
        kill_group(p, grace=grace)


def cmdline(p) -> str:
    """A psutil process's command line, '' once it has gone away."""
    try:
        return " ".join(p.cmdline())
    except Exception:  # noqa: BLE001 - the process went away
        return ""


def created(pid: int) -> float:
    """When the process was created (a Ray worker may predate the kill: Ray keeps idle ones)."""
    import psutil

    return psutil.Process(pid).create_time()


def wait_http(url: str, timeout: float, poll: float, what: str, process: subprocess.Popen | None = None,
              log: Path | None = None, key: str | None = None) -> None:
    """Until GET url answers 200; an early exit of `process` or the deadline raise, with the log's tail."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-3000:] if log else process.returncode}")
        try:
            if httpx.get(url, timeout=5, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(poll)
    raise RuntimeError(f"{what} not up after {timeout:.0f} s" + (f": {log.read_text()[-3000:]}" if log else ""))


# ---------------------------------------------------------------------------- servers


class Server:
    """One HTTP server process of ours or of a peer, in its own process group."""

    def __init__(self, name: str, argv: list[str], env: dict, url: str, key: str, model: str, log: Path):
        self.name, self.url, self.key, self.model, self.log = name, url, key, model, log
        self.process = spawn(argv, env, log)

    def wait(self, probe: str, timeout: float = 600, poll: float = 1.0) -> None:
        wait_http(self.url + probe, timeout, poll, self.name, self.process, self.log, self.key)

    def client(self):
        """The official openai client, as a user reaches the server (no retries: a failure counts)."""
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.key, max_retries=0, timeout=120)

    def http(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=timeout)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's whole process tree (rixin: gateway, Ray, engines)."""
        import psutil

        total = 0.0
        try:
            root = psutil.Process(self.process.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return total

    def stop(self, grace: float = 60) -> None:
        kill_group(self.process, grace=grace)


def rixin_env(admin_key: str, **extra: str) -> dict:
    """This environment without the caller's RIXIN_* settings, plus the bench's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIXIN_")}
    env.update({"RIXIN_ADMIN_KEY": admin_key, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", **extra})
    return env


def start_rixin(data_dir: Path, admin_key: str, log: Path, env_extra: dict | None = None, name: str = "rixin",
                wait: bool = True, timeout: float = 600) -> Server:
    """`rixin up` on 127.0.0.1 and a free port with its own data dir; healthy when it returns."""
    port = free_port()
    server = Server(name, [RIXIN, "up", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
                    rixin_env(admin_key, **(env_extra or {})), f"http://127.0.0.1:{port}", admin_key, MODEL, log)
    if wait:
        try:
            server.wait("/health", timeout)
        except BaseException:
            server.stop(grace=10)  # not left running behind a benchmark that carries on
            raise
    return server


def llama_server_argv(model_file: str, port: int, threads: int, ctx: int) -> list[str]:
    """The peer: llama_cpp.server through bench/llama_server.py (plain CPU weight buffers), a new
    request waiting for the running one instead of cutting its stream."""
    return [sys.executable, str(ROOT / "bench" / "llama_server.py"), "--model", model_file, "--host", "127.0.0.1",
            "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", str(ctx),
            "--interrupt_requests", "False"]


def peer_env() -> dict:
    """The peer's extra packages come from the overlay, on its PYTHONPATH only."""
    return {**os.environ, "PYTHONPATH": str(PEER_SITE)}


def start_llama_server(name: str, model_file: str, threads: int, ctx: int, log: Path) -> Server:
    port = free_port()
    return Server(name, llama_server_argv(model_file, port, threads, ctx), peer_env(), f"http://127.0.0.1:{port}",
                  "none", MODEL, log)


class Supervisor:
    """What a user runs without a platform: start the command, restart it 0.1 s after it exits
    (systemd Restart=always, RestartSec=100ms). `argv_for(n)` gives the n-th start's argv."""

    def __init__(self, name: str, argv_for, env: dict, log: Path):
        self.name, self.argv_for, self.env, self.log = name, argv_for, env, log
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                self.process = spawn(self.argv_for(self.starts), self.env, self.log)
                self.starts += 1
            exited(self.process, None)
            if self._stop.is_set():
                return  # stop() cleans up
            kill_group(self.process, grace=0)  # what it left behind, then reap it
            time.sleep(0.1)

    def pid(self) -> int:
        while self.process is None:
            time.sleep(0.05)
        return self.process.pid

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
        if self.process is not None:
            kill_group(self.process, grace=10)
        self._thread.join(15)

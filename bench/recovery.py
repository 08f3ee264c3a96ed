#!/usr/bin/env python
"""Recovery benchmark: time from `kill -9` to service / training restored, rixin against the peer.

    .venv/bin/python bench/recovery.py [--repeats 5] [--threads 1] [--scenarios serve,train]
        [--examples 120] [--kill-step 6] [--tag TAG]

(a) serve. rixin: one `rixin up` (own data dir, admin key, 127.0.0.1); a client sends small
    streaming chat requests (max_tokens 8) back to back; the engine replica of the bundled chat
    model (its pid from GET /v1/engines, checked to be in our `rixin up` process tree and to be
    a `ray::EngineActor`) gets SIGKILL. Peer: bench/llama_server.py (llama_cpp.server) under a
    supervisor loop in this script that restarts it 0.1 s after it exits (systemd
    `Restart=always`); SIGKILL of the server process. Both: the same client loop, which retries
    at once (50 ms pause) after any failure. Measured: kill → first successful request that
    was sent after the kill ("restored"), kill → first success at all, failed requests and
    what they were (HTTP status, SSE error event, connection error), the slowest request.
(b) train. rixin: a LoRA fine-tune job through the API (checkpoint every 4 steps), SIGKILL of
    its Ray Train worker(s) once the job has passed --kill-step; measured: kill → the job's
    progress.step (GET /v1/fine_tuning/jobs/ID, 0.2 s polling) passes the step it had reached,
    and the same from the worker's own metrics.jsonl. Peer: transformers Trainer + peft on the
    same examples (same LoRA config; both sides one example per step, no packing, max length
    256, a checkpoint every 4 steps) under a supervisor that restarts it with
    `resume_from_checkpoint` when it exits; SIGKILL at the same step; measured kill → its step
    log passes that step. Both: kill → replacement process created, → ready (model loaded,
    checkpoint found), → first step.

Every repeat runs all four in an order that alternates ours/peer. Every measurement records
the 1-minute load average. Results: bench/results/recovery-<date>[-TAG].json, .md, .png,
rewritten after every repeat. SIGTERM/SIGINT stop every process group this script started.
Benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path

import httpx

from machine import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PEER_SITE = Path(os.environ.get("RIXIN_BENCH_SITE", "/tmp/bench-site"))
MODEL = "smollm2-135m-instruct"
TRAIN_HP = {"n_epochs": 3, "batch_size": 1, "checkpoint_interval": 4, "max_seq_length": 256, "packing": False}
GROUPS: list[subprocess.Popen] = []  # group leaders we started, their groups killed on exit


def load_avg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def cmdline(p) -> str:
    try:
        return " ".join(p.cmdline())
    except Exception:  # noqa: BLE001 - the process went away
        return ""


# ---------------------------------------------------------------------------- supervised peers


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


# ---------------------------------------------------------------------------- (a) serving


class ChatLoop:
    """One client sending small streaming chat requests back to back; every request's start,
    end and outcome is kept. A failure (any status but 200, an SSE error event, a connection
    error, a stream without content) is followed by a 50 ms pause and the next request."""

    def __init__(self, url: str, key: str, model: str, max_tokens: int, timeout: float):
        self.url, self.key, self.model, self.max_tokens = url, key, model, max_tokens
        self.timeout = timeout
        self.log: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _one(self, client: httpx.Client, n: int) -> dict:
        body = {"model": self.model, "stream": True, "max_tokens": self.max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": f"Say something about the number {n}."}]}
        start, outcome, tokens = time.time(), None, 0
        try:
            with client.stream("POST", self.url + "/v1/chat/completions", json=body,
                               headers={"Authorization": f"Bearer {self.key}"}) as r:
                if r.status_code != 200:
                    r.read()
                    outcome = f"HTTP {r.status_code}"
                else:
                    for line in r.iter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        event = json.loads(line[6:])
                        if "error" in event:
                            outcome = (f"SSE error after {tokens} tokens: "
                                       + str(event["error"].get("code") or event["error"])[:80])
                        for choice in event.get("choices", []):
                            tokens += bool(choice.get("delta", {}).get("content"))
                    outcome = outcome or ("ok" if tokens else "200 without content")
        except httpx.TimeoutException:
            outcome = "timeout (hang)"
        except httpx.HTTPError as e:
            outcome = type(e).__name__
        return {"start": start, "end": time.time(), "outcome": outcome, "tokens": tokens}

    def _run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(self.timeout, connect=5)) as client:
            n = 0
            while not self._stop.is_set():
                r = self._one(client, n)
                self.log.append(r)
                n += 1
                if r["outcome"] != "ok":
                    time.sleep(0.05)

    def successes_since(self, t: float) -> int:
        return sum(1 for r in self.log if r["start"] > t and r["outcome"] == "ok")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 10)


def serve_once(name: str, url: str, key: str, find_victim, args) -> dict:
    """Warm up, SIGKILL the process `find_victim()` names, wait for --settle successes sent
    after the kill (or --serve-timeout s), and summarise what the client saw."""
    loop = ChatLoop(url, key, MODEL, args.max_tokens, timeout=args.request_timeout)
    try:
        t0 = time.time()
        while loop.successes_since(t0) < 3:
            if time.time() - t0 > 120:
                raise RuntimeError(f"{name}: no 3 successes in 120 s before the kill: {loop.log[-3:]}")
            time.sleep(0.1)
        pid, what = find_victim()
        load = load_avg()
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        while loop.successes_since(t_kill) < args.settle and time.time() - t_kill < args.serve_timeout:
            time.sleep(0.05)
    finally:
        loop.stop()
    new_pid = find_victim()[0]
    log = loop.log
    before = [r for r in log if r["end"] <= t_kill and r["outcome"] == "ok"]
    after = [r for r in log if r["end"] > t_kill]
    ok_sent_after = next((r for r in after if r["start"] > t_kill and r["outcome"] == "ok"), None)
    ok_any = next((r for r in after if r["outcome"] == "ok"), None)
    failed = [r for r in after if r["outcome"] != "ok"]
    return {"server": name, "victim_pid": pid, "victim": what, "load1": [load, load_avg()],
            "restored_s": ok_sent_after and ok_sent_after["end"] - t_kill,
            "first_ok_s": ok_any and ok_any["end"] - t_kill,
            "failed": len(failed), "failures": dict(Counter(r["outcome"] for r in failed)),
            "first_failure": failed[0]["outcome"] if failed else None,
            "slowest_after_kill_s": max((r["end"] - r["start"] for r in after), default=None),
            "latency_before_s": statistics.median([r["end"] - r["start"] for r in before[-10:]]) if before else None,
            "requests_after_kill": len(after), "new_pid": new_pid,
            "kill_to_new_process_s": created(new_pid) - t_kill if new_pid != pid else None}


def created(pid: int) -> float:
    """When the process was created (a Ray worker may predate the kill: Ray keeps idle ones)."""
    import psutil

    return psutil.Process(pid).create_time()


def start_rixin(workdir: Path, threads: int):
    key = "rx-admin-" + secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIXIN_")}
    env.update({"RIXIN_ADMIN_KEY": key, "RIXIN_ENGINE_THREADS": str(threads), "RIXIN_CHAT_CONTEXT": "2048",
                "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    p = spawn([str(ROOT / ".venv/bin/rixin"), "up", "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(workdir / "rixin")], env, workdir / "rixin.log")
    deadline = time.time() + 600
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError("rixin up exited: " + (workdir / "rixin.log").read_text()[-3000:])
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return p, url, key
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError("rixin up not healthy after 600 s")


def rixin_engine_victim(process: subprocess.Popen, url: str, key: str):
    """The chat model's replica: its pid from /v1/engines, which must be a `ray::EngineActor`
    process in our own `rixin up` tree (never another session's)."""
    import psutil

    def find():
        deadline = time.time() + 120
        while time.time() < deadline:
            data = httpx.get(url + "/v1/engines", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
            pids = [e["pid"] for e in data["data"] if e["model"] == MODEL and e["state"] == "running"]
            tree = {p.pid: p for p in psutil.Process(process.pid).children(recursive=True)}
            for pid in pids:
                if pid in tree and "ray::EngineActor" in cmdline(tree[pid]):
                    return pid, cmdline(tree[pid]).strip()
            time.sleep(0.5)
        raise RuntimeError(f"no running EngineActor of {MODEL} in our tree: {data}")

    return find


def peer_server(gguf: str, threads: int, workdir: Path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PEER_SITE)}
    argv = [sys.executable, str(ROOT / "bench" / "llama_server.py"), "--model", gguf, "--host", "127.0.0.1",
            "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", "2048",
            "--interrupt_requests", "False"]
    sup = Supervisor("llama_cpp.server", lambda n: argv, env, workdir / "peer-server.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if httpx.get(url + "/v1/models", timeout=5).status_code == 200:
                return sup, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("llama_cpp.server not up: " + (workdir / "peer-server.log").read_text()[-3000:])


# ---------------------------------------------------------------------------- (b) training


def trainer_child(spec_path: str) -> None:
    """The peer's training process: Trainer + peft, resuming from the newest checkpoint in its
    output dir when there is one (what the user's restart script does); one line per step."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                              TrainerCallback, TrainingArguments, set_seed)

    from train import encoded_examples

    spec = json.loads(Path(spec_path).read_text())
    out, steps = Path(spec["out"]), Path(spec["steps"])
    torch.set_num_threads(spec["threads"])
    set_seed(spec["seed"])
    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=spec["lora_rank"], lora_alpha=spec["lora_alpha"],
                                             lora_dropout=spec["lora_dropout"], target_modules=spec["targets"],
                                             task_type="CAUSAL_LM"))
    features = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
                for e in encoded_examples(tok, spec["train_path"], spec["max_seq_length"])]

    class StepLog(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            with steps.open("a") as f:
                f.write(json.dumps({"step": state.global_step, "time": time.time(), "pid": os.getpid()}) + "\n")

    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=1, num_train_epochs=spec["epochs"],
                             learning_rate=2e-4, lr_scheduler_type="linear", save_strategy="steps",
                             save_steps=spec["checkpoint_interval"], logging_steps=1, report_to="none", use_cpu=True,
                             seed=spec["seed"], disable_tqdm=True, dataloader_pin_memory=False)
    trainer = Trainer(model=model, args=args, train_dataset=features,
                      data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100),
                      callbacks=[StepLog()])
    resume = any(out.glob("checkpoint-*"))
    with steps.open("a") as f:
        f.write(json.dumps({"event": "start", "resume": resume, "time": time.time(), "pid": os.getpid()}) + "\n")
    trainer.train(resume_from_checkpoint=True if resume else None)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def train_peer_once(spec: dict, work: Path, kill_step: int, timeout: float) -> dict:
    work.mkdir(parents=True)
    spec = {**spec, "out": str(work / "out"), "steps": str(work / "steps.jsonl")}
    (work / "spec.json").write_text(json.dumps(spec))
    steps = work / "steps.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, str(Path(__file__).resolve()), "--trainer-child", str(work / "spec.json")]
    sup = Supervisor("trainer", lambda n: argv, env, work / "trainer.log")
    try:
        t0 = time.time()
        while True:  # the step AND its checkpoint (save_steps) behind it, as for rixin
            done = [m["step"] for m in read_lines(steps) if "step" in m]
            if done and done[-1] >= kill_step and any((work / "out").glob("checkpoint-*")):
                break
            if time.time() - t0 > timeout:
                raise RuntimeError("trainer: no step %d in %.0f s: %s" % (
                    kill_step, timeout, (work / "trainer.log").read_text()[-2000:]))
            time.sleep(0.05)
        load = load_avg()
        pid = sup.pid()
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        lines = read_lines(steps)
        reached = max(m["step"] for m in lines if "step" in m and m["time"] <= t_kill)
        while time.time() - t_kill < timeout:
            after = [m for m in read_lines(steps) if m["time"] > t_kill]
            if any(m.get("step", 0) > reached and m["pid"] != pid for m in after):
                break
            time.sleep(0.1)
        new_pid = sup.pid()
        new_created = created(new_pid) - t_kill
    finally:
        sup.stop()
    after = [m for m in read_lines(steps) if m["time"] > t_kill and m["pid"] != pid]
    start = next((m for m in after if m.get("event") == "start"), None)
    first = next((m for m in after if "step" in m), None)
    passed = next((m for m in after if m.get("step", 0) > reached), None)
    before = [m for m in lines if "step" in m and m["time"] <= t_kill]
    return {"side": "trainer+peft", "killed_at_step": reached, "victim_pid": pid, "load1": [load, load_avg()],
            "kill_to_new_process_s": new_created,
            "resumed_from_step": first and first["step"] - 1, "resume_flag": start and start["resume"],
            "kill_to_process_started_s": start and start["time"] - t_kill,
            "kill_to_first_step_s": first and first["time"] - t_kill,
            "restored_s": passed and passed["time"] - t_kill, "restored_via_api_s": None,
            "step_s_before_kill": (before[-1]["time"] - before[-3]["time"]) / 2 if len(before) >= 3 else None}


def train_rixin_once(url: str, key: str, process: subprocess.Popen, data_dir: Path, file_id: str, seed: int,
                     threads: int, kill_step: int, timeout: float) -> dict:
    import psutil

    headers = {"Authorization": f"Bearer {key}"}
    api = httpx.Client(base_url=url, headers=headers, timeout=30)
    body = {"model": MODEL, "training_file": file_id, "seed": seed, "method": {
        "type": "supervised", "supervised": {"hyperparameters": {**TRAIN_HP, "threads_per_worker": threads}}}}
    r = api.post("/v1/fine_tuning/jobs", json=body)
    r.raise_for_status()
    job = r.json()["id"]

    def workers() -> list:  # only this server's workers: never another session's
        return [p for p in psutil.Process(process.pid).children(recursive=True)
                if "ray::RayTrainWorker" in cmdline(p)]

    def state() -> tuple[str, int]:
        j = api.get(f"/v1/fine_tuning/jobs/{job}").json()
        return j["status"], (j.get("progress") or {}).get("step", 0) or 0

    try:
        t0 = time.time()
        while True:  # past kill_step, so a checkpoint (every 4 steps) lies behind it
            status, step = state()
            if step >= kill_step:
                break
            if status in ("failed", "cancelled", "succeeded") or time.time() - t0 > timeout:
                raise RuntimeError(f"rixin job {job}: {status} at step {step} after {time.time() - t0:.0f} s")
            time.sleep(0.1)
        victims = workers()
        if not victims:
            raise RuntimeError(f"no ray::RayTrainWorker under our rixin up for {job}")
        load = load_avg()
        t_kill = time.time()
        for w in victims:
            os.kill(w.pid, signal.SIGKILL)
        metrics = next(data_dir.rglob(f"{job}/metrics.jsonl"))
        lines = read_lines(metrics)
        reached = max(m["step"] for m in lines if m["event"] == "step" and m["time"] <= t_kill)
        seen = None
        while time.time() - t_kill < timeout:
            status, step = state()
            if step > reached:
                seen = time.time()
                break
            if status in ("failed", "cancelled", "succeeded"):
                break
            time.sleep(0.2)
        status_after = status
        new = [w for w in workers() if w.pid not in {v.pid for v in victims}]
        new_created = min(created(w.pid) for w in new) - t_kill if new else None
    finally:
        api.post(f"/v1/fine_tuning/jobs/{job}/cancel")
    lines = read_lines(metrics)
    after = [m for m in lines if m["time"] > t_kill]
    resumed = next((m for m in after if m["event"] == "resumed"), None)
    first = next((m for m in after if m["event"] == "step"), None)
    passed = next((m for m in after if m["event"] == "step" and m["step"] > reached), None)
    before = [m for m in lines if m["event"] == "step" and m["time"] <= t_kill]
    out = {"side": "rixin", "job": job, "killed_at_step": reached, "workers_killed": len(victims),
           "victim_pid": [w.pid for w in victims], "load1": [load, load_avg()], "status_after": status_after,
           "kill_to_new_process_s": new_created,
           "resumed_from_step": resumed and resumed["step"],
           "kill_to_process_started_s": resumed and resumed["time"] - t_kill,
           "kill_to_first_step_s": first and first["time"] - t_kill,
           "restored_s": passed and passed["time"] - t_kill, "restored_via_api_s": seen and seen - t_kill,
           "step_s_before_kill": (before[-1]["time"] - before[-3]["time"]) / 2 if len(before) >= 3 else None}
    deadline = time.time() + 120  # the cancelled job's worker gone before the next measurement
    while workers() and time.time() < deadline:
        time.sleep(0.5)
    return out


# ---------------------------------------------------------------------------- report


def med(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(raw: dict) -> dict:
    out = {}
    keys = ("restored_s", "first_ok_s", "kill_to_new_process_s", "kill_to_process_started_s", "kill_to_first_step_s",
            "restored_via_api_s", "step_s_before_kill", "failed", "slowest_after_kill_s")
    for scenario, sides in raw.items():
        ours, peer = sides["rixin"], next(v for k, v in sides.items() if k != "rixin")
        ratios = [a["restored_s"] / b["restored_s"] for a, b in zip(ours, peer)
                  if a["restored_s"] is not None and b["restored_s"]]
        out[scenario] = {"ratio": med(ratios), "n": min(len(ours), len(peer)), "sides": {
            name: {**{k: med(r.get(k) for r in runs) for k in keys},
                   "restored_max_s": max((r["restored_s"] for r in runs if r["restored_s"] is not None), default=None),
                   "not_restored": sum(r["restored_s"] is None for r in runs),
                   "slowest_after_kill_max_s": max((r.get("slowest_after_kill_s") or 0 for r in runs), default=None),
                   "failures": dict(sum((Counter(r.get("failures", {})) for r in runs), Counter())),
                   "steps": sorted({f"{r.get('killed_at_step')}→{r.get('resumed_from_step')}" for r in runs})}
            for name, runs in sides.items()}}
    return out


def fmt(x, spec=".1f") -> str:
    return "—" if x is None else format(x, spec)


def write_report(result: dict, stem: Path) -> None:
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    m, loads, summary = result["machine"], result["loads"], result["summary"]
    lines = [f"# recovery.py — {result['date']} ({result['repeats_done']} of {result['args']['repeats']} repeats)", "",
             f"`{result['command']}`", "",
             f"Machine: {m['cpu']}, {m['nproc']} cores, {m['memory']}; threads {result['args']['threads']}; "
             f"load average (1 min) at the kills: {min(loads):.1f}-{max(loads):.1f}. Medians over repeats; "
             "ours ÷ peer = median of the per-repeat ratios of kill → restored.", ""]
    if "serve" in summary:
        s = summary["serve"]
        lines += ["## (a) serve: kill -9 of the engine replica / the server, one client sending back to back", "",
                  "| side | kill → restored s, median (max) | ours ÷ peer | kill → first success s | "
                  "kill → new process exists s | failed requests | what failed (all repeats) | "
                  "slowest request after the kill s (max) |", "|" + "---|" * 8]
        for i, (name, v) in enumerate(s["sides"].items()):
            fails = ", ".join(f"{k} ×{n}" for k, n in v["failures"].items()) or "none"
            lines.append(f"| {name} | {fmt(v['restored_s'])} ({fmt(v['restored_max_s'])})"
                         f"{' · %d never' % v['not_restored'] if v['not_restored'] else ''} | "
                         f"{fmt(s['ratio'], '.2f') if i == 0 else ''} | {fmt(v['first_ok_s'])} | "
                         f"{fmt(v['kill_to_new_process_s'], '.2f')} | {fmt(v['failed'], '.0f')} | {fails} | "
                         f"{fmt(v['slowest_after_kill_s'])} ({fmt(v['slowest_after_kill_max_s'])}) |")
        lines += ["", "restored = the end of the first request sent after the kill that streamed its answer; first "
                  "success = any request that succeeded after the kill (one in flight may be retried inside the "
                  "server); new process = create time of the replacement process (a Ray worker may be one Ray "
                  "started before the kill).", ""]
    if "train" in summary:
        s = summary["train"]
        lines += ["## (b) train: kill -9 of the training process (rixin: its Ray Train worker)", "",
                  "| side | step killed → resumed from | kill → past the step reached s, median (max) | ours ÷ peer | "
                  "kill → new process s | kill → process ready s | kill → first step s | step time before s |",
                  "|" + "---|" * 8]
        for i, (name, v) in enumerate(s["sides"].items()):
            lines.append(f"| {name} | {', '.join(v['steps'])} | {fmt(v['restored_s'])} ({fmt(v['restored_max_s'])})"
                         f"{' · %d never' % v['not_restored'] if v['not_restored'] else ''} | "
                         f"{fmt(s['ratio'], '.2f') if i == 0 else ''} | {fmt(v['kill_to_new_process_s'])} | "
                         f"{fmt(v['kill_to_process_started_s'])} | {fmt(v['kill_to_first_step_s'])} | "
                         f"{fmt(v['step_s_before_kill'], '.2f')} |")
        via = s["sides"].get("rixin", {}).get("restored_via_api_s")
        lines += ["", "past the step reached = the first step logged after the kill numbered above the last step "
                  f"before it (rixin: the job's metrics.jsonl; through the job API's progress.step: {fmt(via)} s "
                  "median, 0.2 s polling); process ready = rixin's `resumed` line / the Trainer process's start line "
                  "(model loaded, about to resume from the checkpoint).", ""]
    lines.append("Per-repeat numbers, with the load at each kill, are in the JSON.")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = list(result["raw"])
    fig, axes = plt.subplots(1, len(scen), figsize=(6 * len(scen), 4), squeeze=False)
    for ax, sc in zip(axes[0], scen):
        sides = result["raw"][sc]
        data = [[r["restored_s"] for r in runs if r["restored_s"] is not None] for runs in sides.values()]
        ax.boxplot(data)
        for i, d in enumerate(data, start=1):
            ax.scatter([i] * len(d), d, s=12, color="black", zorder=3)
        ax.set_xticks(range(1, len(sides) + 1), list(sides))
        ax.set_ylabel("kill -9 → restored (s)")
        ax.set_title(f"{sc}: kill -9 → restored")
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("rixin", "ray", "llama_cpp_python", "torch", "transformers", "peft", "httpx"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------------------- the run


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--trainer-child":
        trainer_child(sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scenarios", type=lambda s: s.split(","), default=["serve", "train"])
    ap.add_argument("--threads", type=int, default=1, help="engine threads (both servers) and training threads")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--settle", type=int, default=3, help="successes after the kill that end a serve measurement")
    ap.add_argument("--serve-timeout", type=float, default=180)
    ap.add_argument("--request-timeout", type=float, default=120, help="a request slower than this is a hang")
    ap.add_argument("--examples", type=int, default=120)
    ap.add_argument("--kill-step", type=int, default=6)
    ap.add_argument("--train-timeout", type=float, default=900)
    ap.add_argument("--tag", default="")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (server logs) for a look afterwards")
    args = ap.parse_args()

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    sys.path.insert(0, str(ROOT / "src"))
    from rixin.models.registry import bundled_models

    gguf = str(next(m.path for m in bundled_models() if m.engine == "llama.cpp"))
    workdir = Path(tempfile.mkdtemp(prefix="rixin-bench-recovery-"))
    stem = RESULTS / f"recovery-{date.today().isoformat()}{'-' + args.tag if args.tag else ''}"
    command = " ".join([".venv/bin/python", "bench/recovery.py", *sys.argv[1:]])
    raw: dict[str, dict[str, list]] = {}
    loads: list[float] = []
    stoppers = []
    try:
        rixin, url, key = start_rixin(workdir, args.threads)
        stoppers.append(lambda: kill_group(rixin))
        print(f"rixin up at {url}", flush=True)
        if "serve" in args.scenarios:
            peer, peer_url = peer_server(gguf, args.threads, workdir)
            stoppers.append(peer.stop)
            victim_ours = rixin_engine_victim(rixin, url, key)

            def victim_peer():
                return peer.pid(), "llama_cpp.server (bench/llama_server.py), start %d" % peer.starts
        if "train" in args.scenarios:
            from rixin.train.config import Hyperparameters
            from train import ensure_model, make_examples, write_jsonl

            hp = Hyperparameters()
            write_jsonl(workdir / "train.jsonl", make_examples(args.examples, 42))
            r = httpx.post(url + "/v1/files", headers={"Authorization": f"Bearer {key}"},
                           files={"file": ("recovery.jsonl", (workdir / "train.jsonl").read_bytes())},
                           data={"purpose": "fine-tune"}, timeout=60)
            r.raise_for_status()
            file_id = r.json()["id"]
            tspec = {"model_dir": str(ensure_model()), "train_path": str(workdir / "train.jsonl"),
                     "threads": args.threads, "seed": 42, "epochs": TRAIN_HP["n_epochs"],
                     "max_seq_length": TRAIN_HP["max_seq_length"], "checkpoint_interval": TRAIN_HP["checkpoint_interval"],
                     "lora_rank": hp.lora_rank, "lora_alpha": hp.lora_alpha, "lora_dropout": hp.lora_dropout,
                     "targets": hp.lora_target_modules}
        for rep in range(args.repeats):
            for k, scenario in enumerate(args.scenarios):
                sides = ["rixin", "peer"] if (rep + k) % 2 == 0 else ["peer", "rixin"]
                for side in sides:
                    if scenario == "serve" and side == "rixin":
                        r = serve_once("rixin", url, key, victim_ours, args)
                    elif scenario == "serve":
                        r = serve_once("llama_cpp.server", peer_url, "none", victim_peer, args)
                    elif side == "rixin":
                        r = train_rixin_once(url, key, rixin, workdir / "rixin", file_id, 100 + rep, args.threads,
                                             args.kill_step, args.train_timeout)
                    else:
                        r = train_peer_once(tspec, workdir / f"peer-train-{rep}", args.kill_step, args.train_timeout)
                    name = {"serve": {"rixin": "rixin", "peer": "llama_cpp.server"},
                            "train": {"rixin": "rixin", "peer": "trainer+peft"}}[scenario][side]
                    peer_name = {"serve": "llama_cpp.server", "train": "trainer+peft"}[scenario]
                    raw.setdefault(scenario, {"rixin": [], peer_name: []})[name].append(r)
                    loads += r["load1"]
                    print(f"rep {rep} {scenario} {name}: {json.dumps(r)}", flush=True)
            # Written after every repeat, so an interrupted run still leaves its numbers.
            result = {"date": date.today().isoformat(), "command": command, "args": vars(args),
                      "repeats_done": rep + 1, "machine": machine(), "versions": versions(), "gguf": gguf,
                      "train_hyperparameters": TRAIN_HP, "loads": loads, "summary": summarise(raw), "raw": raw}
            RESULTS.mkdir(parents=True, exist_ok=True)
            write_report(result, stem)
    except KeyboardInterrupt as e:
        print(f"interrupted ({e}); stopping everything we started", flush=True)
    finally:
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the rest
                print("stop failed:", repr(e), flush=True)
        for p in GROUPS:  # anything left of any group we started and have not reaped
            kill_group(p, grace=5)
        if args.keep:
            print("kept", workdir, flush=True)
        else:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    if stem.with_suffix(".md").exists():
        print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()

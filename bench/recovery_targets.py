"""What bench/recovery.py kills and times: (a) serving, a client sending chat requests back to
back while the engine replica (rixin) or the server process (peer) gets SIGKILL; (b) training,
a LoRA job through rixin's API or a Trainer + peft process under a supervisor, killed past a
checkpoint. Each `*_once` function is one measurement and returns its record."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from common import load_avg
from servers import MODEL, Supervisor, cmdline, created, free_port, llama_server_argv, peer_env, wait_http

SCRIPT = Path(__file__).resolve().parent / "recovery.py"  # `recovery.py --trainer-child SPEC` is the peer
TRAIN_HP = {"n_epochs": 3, "batch_size": 1, "checkpoint_interval": 4, "max_seq_length": 256, "packing": False}


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
    """llama_cpp.server under the supervisor, up on return: (supervisor, url)."""
    port = free_port()
    argv = llama_server_argv(gguf, port, threads, 2048)
    sup = Supervisor("llama_cpp.server", lambda n: argv, peer_env(), workdir / "peer-server.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/models", 300, 0.5, "llama_cpp.server", log=workdir / "peer-server.log")
    return sup, url


# ---------------------------------------------------------------------------- (b) training


def trainer_child(spec_path: str) -> None:
    """The peer's training process: Trainer + peft, resuming from the newest checkpoint in its
    output dir when there is one (what the user's restart script does); one line per step."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments, set_seed

    from train_workload import peer_model

    spec = json.loads(Path(spec_path).read_text())
    out, steps = Path(spec["out"]), Path(spec["steps"])
    torch.set_num_threads(spec["threads"])
    set_seed(spec["seed"])
    tok, model, features = peer_model(spec)

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
    argv = [sys.executable, str(SCRIPT), "--trainer-child", str(work / "spec.json")]
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


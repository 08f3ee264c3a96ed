"""Recovery inside the training benchmark: kill -9 of the Ray Train worker of a real
fine-tuning job (a fresh `rixin up`, driven through the openai client), and the time until
training resumed, from the worker's metrics.jsonl and as the events API showed it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path


def recovery(train: bytes, repeats: int, threads: int) -> dict:
    """kill -9 of the Ray Train worker of a real job, and the time until training resumed."""
    import psutil

    # Imported here, not at the top: the training children import train.py, and httpx would
    # count in their peak RSS.
    from servers import MODEL, cmdline, start_rixin

    base = Path(tempfile.mkdtemp(prefix="rixin-bench-train-recovery-"))
    hp = {"n_epochs": 3, "batch_size": 1, "checkpoint_interval": 4, "max_seq_length": 256,
          "threads_per_worker": threads}
    t = time.time()
    data = base / "data"
    data.mkdir(parents=True)
    server = start_rixin(data, "rx-admin-bench-" + os.urandom(6).hex(), data / "server.log", timeout=240)
    out = {"hyperparameters": hp, "server_start_s": time.time() - t, "runs": []}
    try:
        client = server.client()
        file = client.files.create(file=("bench-train.jsonl", train), purpose="fine-tune")

        def ours() -> list:  # only this server's workers: never another engineer's
            kids = psutil.Process(server.process.pid).children(recursive=True)
            return [p for p in kids if "ray::RayTrainWorker" in cmdline(p)]

        for k in range(repeats):
            job = client.fine_tuning.jobs.create(model=MODEL, training_file=file.id, seed=3 + k, method={
                "type": "supervised", "supervised": {"hyperparameters": hp}})
            t_created = time.time()
            while True:
                j = client.fine_tuning.jobs.retrieve(job.id)
                step = (j.model_extra.get("progress") or {}).get("step", 0)
                if step >= 6:
                    break
                if j.status in ("failed", "cancelled", "succeeded"):
                    raise RuntimeError(f"job {job.id} {j.status} before step 6: {j.error}")
                if time.time() - t_created > 1800:
                    raise RuntimeError("no step 6 after 30 min")
                time.sleep(0.2)
            workers = ours()
            if not workers:
                raise RuntimeError("no RayTrainWorker under our server")
            before_ids = {e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data}
            t_kill = time.time()
            for w in workers:
                os.kill(w.pid, signal.SIGKILL)
            seen_resumed = seen_step = None
            resumed_step = None
            while seen_step is None and time.time() - t_kill < 900:
                events = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data
                          if e.id not in before_ids]  # only what happened after the kill
                now = time.time()
                res = [e for e in events if e.message.startswith("Resumed from")]
                if res and seen_resumed is None:
                    seen_resumed, resumed_step = now, res[0].data["step"]
                if res and any(e.type == "metrics" for e in events):
                    seen_step = now
                time.sleep(0.2)
            metrics = next(base.rglob(f"{job.id}/metrics.jsonl"))
            lines = [json.loads(x) for x in metrics.read_text().splitlines()]
            after = [m for m in lines if m["time"] > t_kill]
            res_line = next((m for m in after if m["event"] == "resumed"), None)
            step_line = next((m for m in after if m["event"] == "step" and res_line
                              and m["time"] > res_line["time"]), None)
            before = [m for m in lines if m["event"] == "step" and m["time"] <= t_kill]
            step_s = (before[-1]["time"] - before[-3]["time"]) / 2 if len(before) >= 3 else None
            out["runs"].append({
                "job": job.id, "killed_at_step": before[-1]["step"] if before else None, "workers_killed": len(workers),
                "resumed_from_step": resumed_step,
                "kill_to_resumed_event_s": res_line and res_line["time"] - t_kill,
                "kill_to_next_step_s": step_line and step_line["time"] - t_kill,
                "kill_to_resumed_seen_via_api_s": seen_resumed and seen_resumed - t_kill,
                "kill_to_next_step_seen_via_api_s": seen_step and seen_step - t_kill,
                "step_s_before_kill": step_s})
            print("recovery", out["runs"][-1], flush=True)
            client.fine_tuning.jobs.cancel(job.id)
            deadline = time.time() + 120
            while ours() and time.time() < deadline:
                time.sleep(1)
    finally:
        server.stop(grace=30)
        subprocess.run(["rm", "-rf", str(base)], check=False)
    return out



#!/usr/bin/env python
"""Recovery benchmark: time from `kill -9` to service / training restored, rixin against the peer.

    .venv/bin/python bench/recovery.py [--repeats 5] [--threads 1] [--scenarios serve,train]
        [--examples 120] [--kill-step 6] [--tag TAG]

(a) serve. rixin: one `rixin up` (own data dir, admin key, 127.0.0.1); a client sends small
    streaming chat requests (max_tokens 8) back to back; the engine replica of the bundled chat
    model (its pid from GET /v1/engines, checked to be in our `rixin up` process tree and to be
    a `ray::EngineActor`) gets SIGKILL. Peer: bench/llama_server.py (llama_cpp.server) under a
    supervisor loop (servers.Supervisor) that restarts it 0.1 s after it exits (systemd
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
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from common import command, machine, results_stem, today, versions
from recovery_report import summarise, write_report
from recovery_targets import TRAIN_HP, peer_server, rixin_engine_victim, serve_once, trainer_child, train_peer_once
from recovery_targets import train_rixin_once
from servers import ROOT, Server, start_rixin, stop_all

PACKAGES = ("rixin", "ray", "llama_cpp_python", "torch", "transformers", "peft", "httpx")
PEERS = {"serve": "llama_cpp.server", "train": "trainer+peft"}


def parse_args() -> argparse.Namespace:
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
    return ap.parse_args()


def train_setup(rixin: Server, workdir: Path, examples: int, threads: int) -> tuple[str, dict]:
    """The generated examples, uploaded to rixin (its file id) and specified for the peer."""
    from rixin.train.config import Hyperparameters
    from train_workload import ensure_model, make_examples, write_jsonl

    hp = Hyperparameters()
    write_jsonl(workdir / "train.jsonl", make_examples(examples, 42))
    r = httpx.post(rixin.url + "/v1/files", headers={"Authorization": f"Bearer {rixin.key}"},
                   files={"file": ("recovery.jsonl", (workdir / "train.jsonl").read_bytes())},
                   data={"purpose": "fine-tune"}, timeout=60)
    r.raise_for_status()
    tspec = {"model_dir": str(ensure_model()), "train_path": str(workdir / "train.jsonl"),
             "threads": threads, "seed": 42, "epochs": TRAIN_HP["n_epochs"],
             "max_seq_length": TRAIN_HP["max_seq_length"], "checkpoint_interval": TRAIN_HP["checkpoint_interval"],
             "lora_rank": hp.lora_rank, "lora_alpha": hp.lora_alpha, "lora_dropout": hp.lora_dropout,
             "targets": hp.lora_target_modules}
    return r.json()["id"], tspec


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--trainer-child":
        trainer_child(sys.argv[2])
        return
    args = parse_args()

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    sys.path.insert(0, str(ROOT / "src"))
    from rixin.models.registry import bundled_models

    gguf = str(next(m.path for m in bundled_models() if m.engine == "llama.cpp"))
    workdir = Path(tempfile.mkdtemp(prefix="rixin-bench-recovery-"))
    stem = results_stem("recovery", args.tag)
    raw: dict[str, dict[str, list]] = {}
    loads: list[float] = []
    stoppers = []
    try:
        rixin = start_rixin(workdir / "rixin", "rx-admin-" + secrets.token_hex(8),
                            workdir / "rixin.log", {"RIXIN_ENGINE_THREADS": str(args.threads),
                                                    "RIXIN_CHAT_CONTEXT": "2048"})
        stoppers.append(lambda: rixin.stop(grace=30))
        print(f"rixin up at {rixin.url}", flush=True)
        if "serve" in args.scenarios:
            peer, peer_url = peer_server(gguf, args.threads, workdir)
            stoppers.append(peer.stop)
            victim_ours = rixin_engine_victim(rixin.process, rixin.url, rixin.key)

            def victim_peer():
                return peer.pid(), "llama_cpp.server (bench/llama_server.py), start %d" % peer.starts
        if "train" in args.scenarios:
            file_id, tspec = train_setup(rixin, workdir, args.examples, args.threads)
        for rep in range(args.repeats):
            for k, scenario in enumerate(args.scenarios):
                sides = ["rixin", "peer"] if (rep + k) % 2 == 0 else ["peer", "rixin"]  # who goes first alternates
                for side in sides:
                    if scenario == "serve" and side == "rixin":
                        r = serve_once("rixin", rixin.url, rixin.key, victim_ours, args)
                    elif scenario == "serve":
                        r = serve_once("llama_cpp.server", peer_url, "none", victim_peer, args)
                    elif side == "rixin":
                        r = train_rixin_once(rixin.url, rixin.key, rixin.process, workdir / "rixin", file_id,
                                             100 + rep, args.threads, args.kill_step, args.train_timeout)
                    else:
                        r = train_peer_once(tspec, workdir / f"peer-train-{rep}", args.kill_step, args.train_timeout)
                    name = "rixin" if side == "rixin" else PEERS[scenario]
                    raw.setdefault(scenario, {"rixin": [], PEERS[scenario]: []})[name].append(r)
                    loads += r["load1"]
                    print(f"rep {rep} {scenario} {name}: {json.dumps(r)}", flush=True)
            # Written after every repeat, so an interrupted run still leaves its numbers.
            result = {"date": today(), "command": command("recovery.py"), "args": vars(args),
                      "repeats_done": rep + 1, "machine": machine(), "versions": versions(PACKAGES), "gguf": gguf,
                      "train_hyperparameters": TRAIN_HP, "loads": loads, "summary": summarise(raw), "raw": raw}
            write_report(result, stem)
    except KeyboardInterrupt as e:
        print(f"interrupted ({e}); stopping everything we started", flush=True)
    finally:
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the rest
                print("stop failed:", repr(e), flush=True)
        stop_all(grace=5)  # anything left of any group we started and have not reaped
        if args.keep:
            print("kept", workdir, flush=True)
        else:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    if stem.with_suffix(".md").exists():
        print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Training benchmark: rixin's LoRA recipe against a plain transformers `Trainer` + peft.

    .venv/bin/python bench/train.py [--examples 400] [--repeats 5] [--epochs 1] [--threads 2]
                                    [--recovery 3] [--no-recovery] [--no-profile] [--precision fp32|bf16]

What runs, on one generated chat data set (seeded; questions and multi-sentence answers of
varied length, loss on the assistant tokens only), LoRA r=16 on the default target modules of
the bundled SmolLM2-135M-Instruct (converted once from its GGUF to /tmp/bench-smollm2-hf), fp32
(--precision bf16: bf16 CPU autocast on both sides):

    rixin     rixin.train.recipe.train(cfg) in-process (no Ray): packing on,
              block-diagonal attention, max_seq_length 512, batch = packed rows
    baseline  transformers.Trainer + peft.get_peft_model, the same LoRA config, the same token
              ids and loss mask, DataCollatorForSeq2Seq (padding per batch), batch = examples

Every run is a fresh subprocess (this file with --child), so its peak RSS is its own; the two
sides alternate order every repeat. Tokens/s are non-padding tokens over the steps after the
first --warmup-steps, from each side's own per-step timestamps (rixin: metrics.jsonl; baseline:
a TrainerCallback). Both final adapters are scored by the same code on a held-out set.
Then: cProfile + torch.profiler of one rixin run, a few measured what-ifs, and the time from
kill -9 of a Ray Train worker to training resumed, through a real `rixin up` and the openai
client. Results: bench/results/train-<date>.json, .md and .png. Benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, command, load_avg, machine, results_stem, today, versions
from train_peers import child_main
from train_recovery import recovery
from train_report import measure, summarise, write_report
from train_workload import data_stats, ensure_model, flops_per_token, make_examples, write_jsonl

PACKAGES = ("rixin", "torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "ray")


def run_child(side: str, spec_path: Path, tmp: Path, threads: int, timeout: float = 3600) -> dict:
    out = tmp / f"{side}-{time.time_ns()}.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RAY_USAGE_STATS_ENABLED": "0",
           **{k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    log = tmp / f"{side}.log"
    with log.open("ab") as f:
        proc = subprocess.run([sys.executable, __file__, "--child", side, str(spec_path), str(out)], env=env,
                              stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} child failed ({proc.returncode}):\n" + log.read_text()[-3000:])
    return json.loads(out.read_text())


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--eval-examples", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-examples", type=int, default=8, help="baseline batch size in examples")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch/OMP threads per side (1: see bench/README.md, two threads collapse under load)")
    ap.add_argument("--warmup-steps", type=int, default=3, help="first steps left out of tokens/s")
    ap.add_argument("--learning-rate", type=float, default=2e-4)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="both sides: rixin's precision hyperparameter / the Trainer's bf16 (CPU autocast)")
    ap.add_argument("--recovery", type=int, default=3, help="kill -9 repeats through a real server")
    ap.add_argument("--no-recovery", action="store_true")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tag", default="", help="appended to the results' file names (train-<date>-<tag>)")
    return ap.parse_args()


def prepare(args: argparse.Namespace) -> tuple[dict, dict, Path]:
    """The generated data set written once, and the spec every child reads: (spec, data stats, tmp dir)."""
    from rixin.train.config import Hyperparameters

    defaults = Hyperparameters()
    model_dir = ensure_model()
    tmp = Path(tempfile.mkdtemp(prefix="rixin-bench-train-"))
    examples = make_examples(args.examples + args.eval_examples, args.seed)
    write_jsonl(tmp / "train.jsonl", examples[:args.examples])
    write_jsonl(tmp / "eval.jsonl", examples[args.examples:])
    spec = {"model_dir": str(model_dir), "train_path": str(tmp / "train.jsonl"), "eval_path": str(tmp / "eval.jsonl"),
            "threads": args.threads, "epochs": args.epochs, "batch_examples": args.batch_examples,
            "learning_rate": args.learning_rate, "seed": args.seed, "max_seq_length": 512,
            "lora_rank": defaults.lora_rank, "lora_alpha": defaults.lora_alpha, "lora_dropout": defaults.lora_dropout,
            "targets": defaults.lora_target_modules, "warmup_ratio": defaults.warmup_ratio,
            "warmup_steps": args.warmup_steps, "precision": args.precision}
    data = data_stats(spec)
    # Same tokens per optimizer step as far as possible: rows of packed examples ≈ batch in examples.
    spec["rixin_batch_rows"] = max(1, round(args.batch_examples / data["examples_per_row"]))
    (tmp / "spec.json").write_text(json.dumps(spec))
    print(json.dumps(data), "rixin batch rows:", spec["rixin_batch_rows"], flush=True)
    return spec, data, tmp


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return
    args = parse_args()
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = str(args.threads)
    spec, data, tmp = prepare(args)
    spec_path = tmp / "spec.json"
    flops = flops_per_token(Path(spec["model_dir"]), spec["lora_rank"])
    load, runs, raw = [load_avg()], {"rixin": [], "baseline": []}, []
    base_eval = run_child("base-eval", spec_path, tmp, args.threads)["eval_loss"]
    stem = results_stem("train", args.tag, args.out)
    for repeat in range(args.repeats):
        order = ("rixin", "baseline") if repeat % 2 == 0 else ("baseline", "rixin")
        for side in order:
            la = load_avg()
            result = run_child(side, spec_path, tmp, args.threads)
            la = max(la, load_avg())
            load.append(la)
            m = measure(result, args.warmup_steps)
            runs[side].append(m)
            raw.append(result if repeat == 0 else {k: v for k, v in result.items() if k != "steps"})
            print(f"repeat {repeat} {side}: {m['tokens_per_s']:.1f} tok/s, {m['peak_rss_mb']:.0f} MB, "
                  f"eval {m['eval_loss']:.4f}, load {la:.1f}", flush=True)
        # Written after every repeat (the report says how many): a slow machine keeps what it measured.
        res = {"date": today(), "command": command("train.py"),
               "spec": {k: v for k, v in spec.items() if not k.endswith("_path") and k != "model_dir"},
               "data": data, "flops": flops, "repeats": repeat + 1, "repeats_asked": args.repeats,
               "base_eval_loss": base_eval,
               "runs": [{"repeat": i // 2, "side": r["side"], **runs[r["side"]][i // 2], "load": load[i + 1]}
                        for i, r in enumerate(raw)],
               "summary": summarise(runs, flops, args.threads), "raw": raw, "machine": machine(),
               "versions": versions(PACKAGES), "load": load}
        write_report(res, stem)
    if not args.no_profile:
        try:
            prof = run_child("rixin-profile", spec_path, tmp, args.threads)
            res["profile"] = {**prof["profile"], "run": measure(prof, args.warmup_steps)}
        except Exception as e:  # noqa: BLE001 - reported, the throughput results still stand
            res["profile_error"] = repr(e)[-2000:]
        load.append(load_avg())
        write_report(res, stem)
    if not args.no_recovery and args.recovery > 0:
        try:
            res["recovery"] = recovery((tmp / "train.jsonl").read_bytes(), args.recovery, args.threads)
        except Exception as e:  # noqa: BLE001 - reported, the throughput results still stand
            res["recovery_error"] = repr(e)
        load.append(load_avg())
        write_report(res, stem)
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    print(json.dumps(res["summary"], indent=1))
    print(f"wrote {stem}.json, .md, .png")


if __name__ == "__main__":
    main()

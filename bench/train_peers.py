"""The two sides of the training benchmark, each run in a fresh process (`train.py --child
SIDE`): rixin's recipe in-process (no Ray) and transformers' Trainer + peft, with the profile
and the what-ifs of one rixin run. Every child writes one JSON record."""

from __future__ import annotations

import json
import math
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from train_workload import eval_loss, peer_model


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


def rixin_config(spec: dict, work: Path):
    from rixin.train.config import Hyperparameters, TrainConfig

    hyper = Hyperparameters.model_validate({
        "n_epochs": spec["epochs"], "batch_size": spec["rixin_batch_rows"],
        "learning_rate_multiplier": spec["learning_rate"] / 2e-4, "checkpoint_interval": 10**6,
        "max_seq_length": spec["max_seq_length"], "lora_rank": spec["lora_rank"], "lora_alpha": spec["lora_alpha"],
        "lora_dropout": spec["lora_dropout"], "threads_per_worker": spec["threads"],
        "precision": spec["precision"]})
    return TrainConfig(work_dir=str(work), base_dir=spec["model_dir"], method="supervised",
                       train_path=spec["train_path"], hyperparameters=hyper, resolved=hyper.resolved("supervised", 0),
                       seed=spec["seed"])


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
        recipe.train(cfg)
    t_end = time.time()
    rss = peak_rss_mb()
    threads = torch.get_num_threads()
    lines = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    started = next(m["time"] for m in lines if m["event"] == "started")
    steps = [m for m in lines if m["event"] == "step"]
    # Per-step token counts: the recipe's own batches, rebuilt (same rows, same seeded shuffle).
    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    hp, bs = cfg.hyperparameters, cfg.resolved.batch_size
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
    # peer_model's imports too, here: they load before t0, so they never count in setup_s.
    from peft import LoraConfig, get_peft_model  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments, set_seed

    torch.set_num_threads(spec["threads"])
    rate = matmul_rate()
    t0 = time.time()
    set_seed(spec["seed"])
    tok, model, features = peer_model(spec)
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


def profile_run(cfg, work: Path) -> dict:
    """cProfile over the whole run, torch.profiler over steps 3-5 (stepped from the recipe's
    own per-step log line), then measured what-ifs on one real batch."""
    import cProfile
    import io
    import pstats

    from torch.profiler import ProfilerActivity, profile, schedule

    from rixin.train import recipe

    prof = profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=1, warmup=1, active=3, repeat=1))
    original = recipe.log_line

    def stepping_log_line(w, event, **values):
        original(w, event, **values)
        if event == recipe.STEP:
            prof.step()

    recipe.log_line = stepping_log_line
    cp = cProfile.Profile()
    with prof:
        cp.enable()
        recipe.train(cfg)
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


def what_ifs(cfg, rounds: int = 2) -> dict:
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

    hp = cfg.hyperparameters
    tok = AutoTokenizer.from_pretrained(cfg.base_dir)
    model = AutoModelForCausalLM.from_pretrained(cfg.base_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=hp.lora_rank, lora_alpha=hp.lora_alpha, lora_dropout=0.0,
                                             target_modules=hp.lora_target_modules, task_type="CAUSAL_LM"))
    model.train()
    rows = recipe.build_rows(tok, recipe.read_jsonl(cfg.train_path), hp)
    micro = recipe.batches_for_epoch(rows, 0, cfg.resolved.batch_size, cfg.seed, 0, 1)[0]
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

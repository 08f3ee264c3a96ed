"""The fine-tuning recipe, run by every Ray Train worker. Reads top to bottom:

    validate config → threads and seeds → tokenizer and model (+ LoRA, + parent adapter)
    → encode and pack the data → optimizer and schedule → resume from the newest checkpoint
    → DDP over model + loss (`loss.TokenLoss`: the LM head only at trained positions)
    → the loop (accumulate, clip, step, log, checkpoint, obey pause/cancel) → final save

With several workers each rank trains on every world-th batch; a step's loss is the mean over
every trained token of every rank and micro-batch, so N workers with batch B equal one worker
with batch N·B. Every rank reports its share in a `worker` line at the end.
Rank 0 writes metrics as JSON lines to <work>/metrics.jsonl (the job driver turns them into
events) and checkpoints to <work>/checkpoints; a restarted worker group (FailureConfig) or a
resumed job continues from the newest complete checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import torch

from rixin.train import checkpoint
from rixin.train.config import Hyperparameters, TrainConfig
from rixin.train.control import (AT_CHECKPOINT, BEST_KEPT, CHECKPOINT, EARLY, EARLY_STOP, FINISHED, RESUMED, STARTED,
                                 STEP, STOPPED, WORKER, log_line, stop_requested)
from rixin.train.data import IGNORE, collate, count_trained_tokens, encode_record, pack, unpacked
from rixin.train.dpo import dpo_loss, encode_preference
from rixin.train.loss import TokenLoss, token_loss_sum
from rixin.train.replay import replay_records
from rixin.train.validation import Validator, split_holdout, validation_loss


def load_model(cfg: TrainConfig, hp: Hyperparameters):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.base_dir, local_files_only=True)
    weights = cfg.init_full or cfg.base_dir
    model = AutoModelForCausalLM.from_pretrained(weights, local_files_only=True, use_safetensors=True,
                                                 torch_dtype=torch.float32)
    if hp.full_finetune:
        return tokenizer, model
    if cfg.init_adapter:  # incremental training: continue the parent's adapter
        return tokenizer, PeftModel.from_pretrained(model, cfg.init_adapter, is_trainable=True)
    lora = LoraConfig(r=hp.lora_rank, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                      target_modules=hp.lora_target_modules, task_type="CAUSAL_LM")
    return tokenizer, get_peft_model(model, lora)


def read_jsonl(path: str | None) -> list[dict]:
    if not path:
        return []
    with open(path, "rb") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_rows(tokenizer, records: list[dict], hp: Hyperparameters) -> list:
    return layout([encode_record(tokenizer, r) for r in records], hp)


def layout(examples: list, hp: Hyperparameters) -> list:
    """Examples as tensor rows: packed several to a row, or one each."""
    return (pack if hp.packing else unpacked)(examples, hp.max_seq_length)


def batches_for_epoch(items: list, epoch: int, batch_size: int, seed: int, rank: int, world: int) -> list[list]:
    """This rank's batches for `epoch`: a seeded shuffle, then every world-th batch. Items are
    examples, so batch_size counts examples (OpenAI's meaning) whether or not they are packed:
    packing only lays one step's examples out in fewer, fuller rows."""
    order = list(range(len(items)))
    random.Random(seed * 1000 + epoch).shuffle(order)
    batches = [[items[i] for i in order[b:b + batch_size]] for b in range(0, len(order), batch_size)]
    usable = len(batches) - len(batches) % world if len(batches) >= world else len(batches)
    return batches[rank:usable:world] if world > 1 else batches


def lm_loss(model, batch: dict) -> torch.Tensor:
    """Mean cross-entropy per trained token of one batch."""
    total, count = token_loss_sum(model, batch)
    return total / max(1, count)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) inside a Ray Train worker group; (0, 1) when run directly (tests)."""
    try:
        import ray.train

        context = ray.train.get_context()
        return context.get_world_rank(), context.get_world_size()
    except Exception:  # noqa: BLE001 - no Train session: a single local process
        return 0, 1


def train_loop_per_worker(loop_config: dict) -> None:
    """Ray Train's entry point: its `train_loop_config` is {"train": TrainConfig} (Ray merges
    that dict into its parameter space, so the config travels inside it)."""
    train(loop_config["train"])


def train(cfg: TrainConfig) -> None:
    """The recipe on this worker (or in this process, outside Ray: rank 0 of 1)."""
    # 1. where we are, and determinism
    rank, world = rank_and_world()
    hp, resolved, work = cfg.hyperparameters, cfg.resolved, Path(cfg.work_dir)
    torch.set_num_threads(hp.threads_per_worker or max(1, (os.cpu_count() or 1) // world))
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    # 2. model and data
    tokenizer, model = load_model(cfg, hp)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    method = cfg.method
    if method == "dpo":
        train_rows = [encode_preference(tokenizer, r, hp.max_seq_length) for r in read_jsonl(cfg.train_path)]
        val_rows, replayed = [], []
    else:
        records, held = split_holdout(read_jsonl(cfg.train_path), resolved.validation_holdout, cfg.seed)
        # before any weights change (a resume loads its checkpoint below), so every rank and every
        # resume generates the same greedy replies
        replayed = replay_records(model, tokenizer, resolved.replay_examples)
        train_rows = [encode_record(tokenizer, r) for r in records + replayed]  # laid out per step
        val_rows = build_rows(tokenizer, read_jsonl(cfg.val_path) or held, hp)
    per_epoch = math.ceil(len(batches_for_epoch(train_rows, 0, resolved.batch_size, cfg.seed, rank, world))
                          / hp.gradient_accumulation_steps)
    total_steps = max(1, per_epoch * resolved.n_epochs)
    # 3. optimizer and schedule: linear warm-up, then linear decay to 0
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=resolved.learning_rate, weight_decay=hp.weight_decay)
    warmup = int(total_steps * hp.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    # 4. resume
    step, tokens_seen, state = 0, 0, {}
    latest = checkpoint.latest(work / "checkpoints")
    if latest is not None:
        load_weights(model, latest, hp)
        state = checkpoint.restore(latest, optimizer, scheduler)
        step, tokens_seen = state["step"], state["tokens_seen"]
        if rank == 0:
            log_line(work, RESUMED, step=step, checkpoint=latest.name)
    elif rank == 0:
        log_line(work, STARTED, total_steps=total_steps, train_examples=len(train_rows) - len(replayed),
                 validation_rows=len(val_rows), held_out=len(held) if method != "dpo" else 0,
                 replayed=len(replayed),
                 trained_tokens_per_epoch=count_trained_tokens(unpacked(train_rows, hp.max_seq_length))
                 if method != "dpo" else None)
    # The module each step calls: model + loss in one forward (DDP syncs what its forward ran).
    trainee = model if method == "dpo" else TokenLoss(model)
    if world > 1:
        import ray.train.torch

        trainee = ray.train.torch.prepare_model(trainee, parallel_strategy="ddp")
    validator = Validator(model, val_rows if rank == 0 else [], pad_id, resolved.batch_size, work,
                          resolved.eval_interval, hp.early_stopping_patience, state.get("validation"))
    # 5. the loop
    run_epochs(cfg, model, trainee, train_rows, validator, optimizer, scheduler, params, pad_id,
               step, tokens_seen, total_steps, per_epoch, rank, world)


def load_weights(model, path: Path, hp: Hyperparameters) -> None:
    from safetensors.torch import load_file

    if hp.full_finetune:
        state = load_file(str(path / "model.safetensors"))
        model.load_state_dict(state, strict=False)
    else:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))


def run_epochs(cfg, model, trainee, train_rows, validator, optimizer, scheduler, params, pad_id,
               step, tokens_seen, total_steps, per_epoch, rank, world) -> None:
    hp, resolved, work = cfg.hyperparameters, cfg.resolved, Path(cfg.work_dir)
    accumulate = hp.gradient_accumulation_steps
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=hp.precision == "bf16")
    model.train()
    started, window_tokens = time.time(), 0
    shard = hashlib.sha256()  # what this rank trained on: every rank reports it (DDP shards data)
    steps_here = rows_here = 0
    stop = None
    for epoch in range(step // per_epoch, resolved.n_epochs):
        if stop == EARLY:
            break
        batches = batches_for_epoch(train_rows, epoch, resolved.batch_size, cfg.seed, rank, world)
        groups = [batches[i:i + accumulate] for i in range(0, len(batches), accumulate)]
        for index, group in enumerate(groups):
            if epoch * per_epoch + index < step:
                continue  # done before the checkpoint we resumed from
            with autocast:
                if cfg.method == "dpo":
                    loss_value, tokens = dpo_step(trainee, group, pad_id, resolved.beta, world)
                else:
                    loss_value, tokens = lm_step(trainee, [layout(micro, hp) for micro in group], pad_id, world)
            torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step, steps_here, rows_here = step + 1, steps_here + 1, rows_here + sum(len(m) for m in group)
            shard.update(repr([getattr(item, "input_ids", item) for micro in group for item in micro]).encode())
            tokens_seen += tokens
            window_tokens += tokens
            valid = validator.evaluate(step) if validator.due(step, total_steps) else None
            if rank == 0:
                elapsed = max(1e-6, time.time() - started)
                log_line(work, STEP, step=step, total_steps=total_steps, epoch=epoch + 1,
                         train_loss=round(loss_value, 6), learning_rate=scheduler.get_last_lr()[0],
                         tokens_per_second=round(window_tokens / elapsed, 2), trained_tokens=tokens_seen,
                         **({} if valid is None else {"valid_loss": round(valid, 6)}))
            stop = agreed_stop(stop_requested(work) or (EARLY if validator.stop_early() else None), world)
            if rank == 0 and (step % hp.checkpoint_interval == 0 or step == total_steps or stop in AT_CHECKPOINT):
                save_checkpoint(model, optimizer, scheduler, work, step, epoch, tokens_seen, validator, valid,
                                loss_value)
            if stop == EARLY:
                if rank == 0:
                    best = validator.best or {}
                    log_line(work, EARLY_STOP, step=step, patience=validator.patience,
                             best_step=best.get("step"), best_valid_loss=best.get("valid_loss"))
                break
            if stop:  # pause, preempt or cancel
                if rank == 0:
                    log_line(work, STOPPED[stop], step=step)
                log_line(work, WORKER, rank=rank, world=world, steps=steps_here, rows=rows_here,
                         data=shard.hexdigest()[:16])
                return
    log_line(work, WORKER, rank=rank, world=world, steps=steps_here, rows=rows_here,
             data=shard.hexdigest()[:16])
    if rank == 0:
        save_final(model, work, validator)
        log_line(work, FINISHED, step=step, trained_tokens=tokens_seen)


def save_final(model, work: Path, validator: Validator) -> None:
    """The job's model: the last weights, or the best ones when validation got worse since."""
    final, tmp = work / "final", work / "final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    kept = validator.keep_best(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    if kept:
        log_line(work, BEST_KEPT, **kept)


def all_sum(values: list[float], world: int) -> list[float]:
    """Element-wise sum over the ranks (the values themselves when alone)."""
    if world == 1:
        return values
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def lm_step(trainee, group: list[list], pad_id: int, world: int) -> tuple[float, int]:
    """Forward and backward of one optimizer step's micro-batches; (mean loss, trained tokens),
    both over every rank. Each token weighs the same whatever micro-batch or rank it is in: the
    loss sums are divided by the step's global token count (times world, as DDP averages)."""
    batches = [collate(micro, pad_id) for micro in group]
    local = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
    tokens = int(all_sum([float(local)], world)[0])
    loss_sum = 0.0
    for batch in batches:
        total, _ = trainee(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["labels"])
        (total * (world / max(1, tokens))).backward()
        loss_sum += total.item()
    return all_sum([loss_sum], world)[0] / max(1, tokens), tokens


def dpo_step(trainee, group: list[list], pad_id: int, beta: float, world: int) -> tuple[float, int]:
    loss_value, local = 0.0, 0
    for micro in group:
        loss, n = dpo_loss(trainee, micro, pad_id, beta)
        (loss / len(group)).backward()
        loss_value += loss.item() / len(group)
        local += n
    loss_value, tokens = all_sum([loss_value, float(local)], world)
    return loss_value / world, int(tokens)


def agreed_stop(flag: str | None, world: int) -> str | None:
    """Rank 0's reading of the control flag (or its early-stopping decision), for every rank
    (they must stop at the same step)."""
    if world == 1:
        return flag
    import torch.distributed as dist

    codes = [None, *STOPPED, EARLY]  # a flag travels as its index: 0 is none
    code = torch.tensor([codes.index(flag) if flag in codes[1:] else 0])
    dist.broadcast(code, src=0)
    return codes[int(code)]


def save_checkpoint(model, optimizer, scheduler, work, step, epoch, tokens_seen, validator: Validator,
                    valid: float | None, train_loss) -> None:
    """A checkpoint, with this step's validation loss (measured now if the step had none)."""
    if valid is None and validator.rows:  # reported with the checkpoint, not counted for best/early stop
        valid = validation_loss(model, validator.rows, validator.pad_id, validator.batch_size)
    path = checkpoint.save(work / "checkpoints", step, model, optimizer, scheduler,
                           {"epoch": epoch, "tokens_seen": tokens_seen, "validation": validator.state()})
    log_line(work, CHECKPOINT, step=step, path=str(path), train_loss=round(train_loss, 6),
             valid_loss=None if valid is None else round(valid, 6))

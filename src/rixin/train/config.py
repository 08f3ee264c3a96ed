"""Typed fine-tuning configuration: OpenAI's hyperparameters plus rixin's extras, the rule that
resolves "auto" from the data and the model (docs/fine-tuning.md has the sweep behind it), and
the TrainConfig that the job hands to every Ray Train worker."""

from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from rixin.train.replay import PROMPTS as REPLAY_PROMPTS

Epochs = Annotated[int, Field(ge=1, le=50)]
BatchSize = Annotated[int, Field(ge=1, le=256)]
Multiplier = Annotated[float, Field(gt=0, le=100)]
Beta = Annotated[float, Field(gt=0, le=10)]
Share = Annotated[float, Field(ge=0, lt=0.5)]

# The auto rule. Epochs: OpenAI's (3 passes, more for files whose 3 passes show fewer than
# MIN_SEEN examples, fewer above MAX_SEEN). Batch: examples per step grow with the file so that
# an epoch is about STEPS_PER_EPOCH steps. Rate: BASE_LR at batch REF_BATCH for a LoRA of
# alpha/r = 2 on a REF_HIDDEN-wide model, scaled by sqrt(batch), by r/alpha and by
# sqrt(width); a full fine-tune takes FULL_FACTOR of it.
TARGET_EPOCHS, MIN_SEEN, MAX_SEEN, MAX_EPOCHS = 3, 300, 25_000, 25
STEPS_PER_EPOCH, MAX_AUTO_BATCH = 32, 32
BASE_LR, REF_BATCH, REF_HIDDEN, FULL_FACTOR = 3e-3, 8, 576, 0.1
HOLDOUT_MIN_EXAMPLES, HOLDOUT_SHARE, HOLDOUT_MAX = 200, 0.05, 100
EVALS_PER_JOB, PATIENCE = 10, 3
# Replay (train/replay.py): the base model's own answers to general prompts, a REPLAY_SHARE of
# the training examples (at most one per prompt), mixed into supervised jobs against forgetting.
REPLAY_SHARE = 0.25
# The cost of one optimizer step on CPU, measured for smollm2-135m-instruct (LoRA r16, fp32, 2
# idle cores; bench/auto_sweep.py probe, docs/fine-tuning.md): a fixed part, then a cost per
# token of the step's examples. Wider models cost about (width / REF_HIDDEN)^2 times more.
STEP_SECONDS, TOKEN_SECONDS = 0.15, 0.0024


def auto_epochs(examples: int) -> int:
    if examples * TARGET_EPOCHS < MIN_SEEN:
        return min(MAX_EPOCHS, math.ceil(MIN_SEEN / max(1, examples)))
    if examples * TARGET_EPOCHS > MAX_SEEN:
        return max(1, MAX_SEEN // examples)
    return TARGET_EPOCHS


def auto_batch(examples: int) -> int:
    """A power of two near examples / STEPS_PER_EPOCH, 1 to MAX_AUTO_BATCH."""
    wanted = max(1.0, examples / STEPS_PER_EPOCH)
    return int(min(MAX_AUTO_BATCH, 2 ** round(math.log2(wanted))))


def estimated_seconds(resolved: Resolved, tokens_per_example: float, hidden: int | None = None) -> int:
    """Training time from the measured step cost (validation passes and model loading excluded).
    Workers run their batch_size examples of a step side by side, so a step costs one worker's."""
    width = ((hidden or REF_HIDDEN) / REF_HIDDEN) ** 2
    per_step = STEP_SECONDS + TOKEN_SECONDS * width * resolved.batch_size * tokens_per_example
    return int(round(resolved.total_steps * per_step))


def auto_learning_rate(batch: int, full: bool, lora_rank: int, lora_alpha: int, hidden: int | None) -> float:
    lr = BASE_LR * math.sqrt(batch / REF_BATCH) * math.sqrt(REF_HIDDEN / (hidden or REF_HIDDEN))
    return lr * FULL_FACTOR if full else lr * 2 * lora_rank / lora_alpha


class Hyperparameters(BaseModel):
    """OpenAI names first ("auto" allowed), then rixin extensions. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: Epochs | Literal["auto"] = Field(
        "auto", description="Passes over the training file (auto: 3, more for small files, fewer for huge ones).")
    batch_size: BatchSize | Literal["auto"] = Field(
        "auto", description="Examples per optimizer step (auto: about examples/32, a power of two, 1-32).")
    learning_rate_multiplier: Multiplier | Literal["auto"] = Field(
        "auto", description="Multiplies the auto learning rate (which follows batch size, LoRA alpha/r and model "
                            "width; see docs/fine-tuning.md). auto: 1.")
    beta: Beta | Literal["auto"] = Field("auto", description="DPO: strength of the KL penalty (auto: 0.1).")
    # rixin extensions
    full_finetune: bool = Field(False, description="Train every weight instead of a LoRA adapter.")
    lora_rank: int = Field(16, ge=1, le=256, description="LoRA rank r.")
    lora_alpha: int = Field(32, ge=1, le=1024, description="LoRA scaling alpha (effective scale alpha/r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA path.")
    lora_target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names that get LoRA adapters.")
    max_seq_length: int = Field(512, ge=16, le=32768, description="Longest row in tokens (longer is truncated).")
    packing: bool = Field(True, description="Pack several examples per row (attention kept per example).")
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024, description="Micro-batches per optimizer step.")
    checkpoint_interval: int = Field(20, ge=1, description="Optimizer steps between checkpoints.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of steps with linear warm-up.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="Compute precision (bf16 autocast on CPU).")
    num_workers: int = Field(1, ge=1, le=64, description="Ray Train workers (DDP over gloo on CPU).")
    max_failures: int = Field(3, ge=0, le=100, description="Worker failures survived by restoring the last checkpoint.")
    threads_per_worker: int | None = Field(None, ge=1, description="torch threads per worker (default: cores/workers).")
    validation_split: Share | Literal["auto"] = Field(
        "auto", description="Share of the training file held out for validation when no validation file is given "
                            f"(auto: {HOLDOUT_SHARE:g}, at most {HOLDOUT_MAX} examples, for files of "
                            f"{HOLDOUT_MIN_EXAMPLES}+ examples; 0: never).")
    eval_interval: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description=f"Steps between validation losses (auto: about {EVALS_PER_JOB} per job).")
    replay: Annotated[int, Field(ge=0, le=len(REPLAY_PROMPTS))] | Literal["auto"] = Field(
        "auto", description="Supervised: examples of the base model's own answers to general prompts mixed into "
                            "training so that it keeps what it knew (auto: a quarter of the training examples, "
                            f"at most {len(REPLAY_PROMPTS)}; 0: none).")
    early_stopping_patience: int = Field(
        PATIENCE, ge=0, le=1000, description="Stop after this many validation losses without a new best "
                                             "(0: never stop early; the best weights are kept either way).")

    def resolved(self, method: str, examples: int, hidden_size: int | None = None,
                 has_validation: bool = False) -> Resolved:
        """Concrete values for "auto" settings, for a file of `examples` rows and a base model of
        width `hidden_size` (None: the reference width). Also what the job reports."""
        holdout = 0 if has_validation or method == "dpo" else self.holdout(examples)
        trained = examples - holdout
        replay = self.replay_examples(method, trained)
        batch = auto_batch(trained + replay) if self.batch_size == "auto" else self.batch_size
        epochs = auto_epochs(trained) if self.n_epochs == "auto" else self.n_epochs
        multiplier = 1.0 if self.learning_rate_multiplier == "auto" else self.learning_rate_multiplier
        # batch_size is per worker and micro-batch (the recipe's meaning); a step sees all of them
        per_step = batch * self.num_workers * self.gradient_accumulation_steps
        lr = auto_learning_rate(per_step, self.full_finetune, self.lora_rank, self.lora_alpha, hidden_size)
        steps = max(1, math.ceil((trained + replay) / per_step)) * epochs
        interval = (max(1, steps // EVALS_PER_JOB) if self.eval_interval == "auto" else self.eval_interval)
        return Resolved(n_epochs=epochs, batch_size=batch, learning_rate_multiplier=multiplier,
                        learning_rate=lr * multiplier, beta=0.1 if self.beta == "auto" else self.beta,
                        validation_holdout=holdout, replay_examples=replay, eval_interval=interval,
                        total_steps=steps)

    def replay_examples(self, method: str, trained: int) -> int:
        if method != "supervised":
            return 0
        if self.replay == "auto":
            return min(len(REPLAY_PROMPTS), math.ceil(trained * REPLAY_SHARE))
        return self.replay

    def holdout(self, examples: int) -> int:
        """Training examples held out for validation when no validation file is given."""
        if self.validation_split == "auto":
            if examples < HOLDOUT_MIN_EXAMPLES:
                return 0
            return min(HOLDOUT_MAX, math.ceil(examples * HOLDOUT_SHARE))
        return math.ceil(examples * self.validation_split) if self.validation_split else 0


class Resolved(BaseModel):
    """The "auto" hyperparameters made concrete for one job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float = 1.0
    learning_rate: float
    beta: float
    validation_holdout: int = 0
    replay_examples: int = 0
    eval_interval: int = 1
    total_steps: int = 1
    # what the rule looked at, and what it predicts (job.resolve): shown, not used by the recipe
    examples: int | None = None
    model_width: int | None = None
    estimated_seconds: int | None = None


Method = Literal["supervised", "dpo", "continued_pretraining"]
METHODS: tuple[str, ...] = get_args(Method)


class TrainConfig(BaseModel):
    """Everything a Ray Train worker needs to run the recipe (train/recipe.py), built once by
    the job (train/job.py). Paths are strings: the workers may run in other processes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    work_dir: str = Field(description="The job's work dir: metrics.jsonl, checkpoints, the control flag.")
    base_dir: str = Field(description="The base model's Hugging Face directory (tokenizer, config).")
    init_adapter: str | None = Field(None, description="A parent fine-tune's LoRA adapter to continue.")
    init_full: str | None = Field(None, description="A parent fine-tune's full weights to start from.")
    method: Method
    train_path: str
    val_path: str | None = None
    hyperparameters: Hyperparameters
    resolved: Resolved
    seed: int

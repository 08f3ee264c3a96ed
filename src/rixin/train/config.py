"""Typed fine-tuning configuration: OpenAI's hyperparameters plus rixin's extras, and the
TrainConfig that the job hands to every Ray Train worker."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Epochs = Annotated[int, Field(ge=1, le=50)]
BatchSize = Annotated[int, Field(ge=1, le=256)]
Multiplier = Annotated[float, Field(gt=0, le=100)]
Beta = Annotated[float, Field(gt=0, le=10)]


class Hyperparameters(BaseModel):
    """OpenAI names first ("auto" allowed), then rixin extensions. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: Epochs | Literal["auto"] = Field("auto", description="Passes over the training file (auto: 3).")
    batch_size: BatchSize | Literal["auto"] = Field("auto", description="Rows per optimizer step (auto: 8).")
    learning_rate_multiplier: Multiplier | Literal["auto"] = Field(
        "auto", description="Multiplies the base learning rate (2e-4 for LoRA, 2e-5 for full fine-tuning).")
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

    def resolved(self, method: str, examples: int) -> Resolved:
        """Concrete values for "auto" settings."""
        base_lr = 2e-5 if self.full_finetune else 2e-4
        return Resolved(
            n_epochs=3 if self.n_epochs == "auto" else self.n_epochs,
            batch_size=8 if self.batch_size == "auto" else self.batch_size,
            learning_rate=base_lr * (1.0 if self.learning_rate_multiplier == "auto" else self.learning_rate_multiplier),
            beta=0.1 if self.beta == "auto" else self.beta,
        )


class Resolved(BaseModel):
    """The "auto" hyperparameters made concrete for one job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_epochs: int
    batch_size: int
    learning_rate: float
    beta: float


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

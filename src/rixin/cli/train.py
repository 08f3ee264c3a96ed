"""`rixin train …`: create fine-tuning jobs on the gateway, follow them live, plot their loss curves."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from rixin.cli.client import Api, api_options, cli_errors, console


def loss_points(api: Api, job_id: str) -> tuple[list, list, list, list]:
    """(steps, train losses, checkpoint steps, validation losses) from the job's events."""
    events = list(api.pages(f"/v1/fine_tuning/jobs/{job_id}/events", limit=1000))
    steps, train, vsteps, valid = [], [], [], []
    for event in reversed(events):  # the API pages newest first
        data = event.get("data") or {}
        if event["type"] == "metrics" and "train_loss" in data:
            steps.append(data["step"])
            train.append(data["train_loss"])
        elif data.get("valid_loss") is not None:
            vsteps.append(data["step"])
            valid.append(data["valid_loss"])
    return steps, train, vsteps, valid


def step_progress(job: dict) -> tuple[str, int | None, int]:
    p = job.get("progress") or {}
    loss, tps = p.get("train_loss"), p.get("tokens_per_second")
    stage = job["status"] + (f"  loss {loss:.4f}" if isinstance(loss, float) else "") + \
        (f"  {tps:.0f} tok/s" if isinstance(tps, int | float) else "")
    return stage, p.get("total_steps"), p.get("step", 0)


def show_estimate(estimate: dict) -> None:
    """What `auto` becomes for this file and model, and how long training should take."""
    r, asked = estimate["resolved"], estimate["hyperparameters"]
    console.print(f"{estimate['model']}, {r['examples']} examples"
                  + (f" ({r['validation_holdout']} held out for validation)" if r["validation_holdout"] else ""))
    for key in ("n_epochs", "batch_size", "learning_rate_multiplier", "learning_rate", "eval_interval",
                "total_steps"):
        source = "auto" if asked.get(key, "auto") == "auto" else "set"
        click.echo(f"  {key:<26}{r[key]:<12g}{source}")
    minutes, seconds = divmod(r["estimated_seconds"], 60)
    click.echo(f"  estimated time            {minutes}m{seconds:02d}s  (steps x measured CPU step cost, "
               "see docs/fine-tuning.md)")


def register(main: click.Group) -> None:
    @main.group()
    def train():
        """Fine-tuning jobs."""

    @train.command("create")
    @click.option("--model", default="smollm2-135m-instruct", show_default=True)
    @click.option("--training-file", required=True, help="A file id, or a local JSONL path to upload.")
    @click.option("--validation-file", default=None, help="A file id, or a local JSONL path to upload.")
    @click.option("--method", type=click.Choice(["supervised", "dpo", "continued_pretraining"]), default="supervised")
    @click.option("--suffix", default=None)
    @click.option("--seed", type=int, default=None)
    @click.option("--hp", "hp", multiple=True, help="A hyperparameter, e.g. --hp n_epochs=3 --hp lora_rank=8.")
    @click.option("--dry-run", is_flag=True, help="Print the resolved hyperparameters and the estimated time; "
                                                  "create nothing.")
    @api_options
    @cli_errors
    def create(model, training_file, validation_file, method, suffix, seed, hp, dry_run, api):
        """Queue a fine-tuning job (the gateway trains it); prints the job id last."""
        hyper = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in hp)}
        body = {"model": model, "training_file": api.file_id(training_file, "fine-tune"),
                "validation_file": api.file_id(validation_file, "fine-tune"), "suffix": suffix, "seed": seed,
                "method": {"type": method, method: {"hyperparameters": hyper}}}
        body = {k: v for k, v in body.items() if v is not None}
        if dry_run:
            show_estimate(api.post("/v1/fine_tuning/jobs/estimate", body))
            return
        job = api.post("/v1/fine_tuning/jobs", body)
        console.print(f"job {job['id']}: {job['status']}" + (f" — {job['error']['message']}" if job["error"] else ""))
        click.echo(job["id"])

    @train.command("follow")
    @click.argument("job_id")
    @api_options
    @cli_errors
    def follow(job_id, api):
        """Live progress of a job: step, loss, tokens/s — until it ends (or pauses)."""
        job = api.follow(f"/v1/fine_tuning/jobs/{job_id}", step_progress,
                         done=lambda j: j["status"] in ("succeeded", "failed", "cancelled", "paused"))
        console.print(f"{job['status']}: {job['fine_tuned_model'] or job['error'] or ''}")

    @train.command("plot")
    @click.argument("job_id")
    @click.option("--out", type=click.Path(path_type=Path), default=None, help="Default: <job id>-loss.png")
    @api_options
    @cli_errors
    def plot(job_id, out, api):
        """Write a PNG of the training (and validation) loss."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        api.get(f"/v1/fine_tuning/jobs/{job_id}")  # a clear 404 for a wrong id
        steps, train_loss, vsteps, valid = loss_points(api, job_id)
        fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
        ax.plot(steps, train_loss, label="training loss")
        if valid:
            ax.plot(vsteps, valid, "o-", label="validation loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(job_id)
        ax.grid(alpha=0.3)
        ax.legend()
        out = out or Path(f"{job_id}-loss.png")
        fig.savefig(out, bbox_inches="tight")
        click.echo(str(out))

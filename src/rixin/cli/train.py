"""`rixin train …`: create fine-tuning jobs, follow them live, plot their loss curves.

The gateway's job runner does the training; these commands work on the same data dir."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from rixin.cli.data import project_caller, upload_local

console = Console()
FINAL = ("succeeded", "failed", "cancelled")


def loss_points(platform, job_id: str) -> tuple[list, list, list, list]:
    """(steps, train losses, checkpoint steps, validation losses) from the job's events."""
    rows, _ = platform.events.page(job_id, limit=100000)
    steps, train, vsteps, valid = [], [], [], []
    for event in reversed(rows):
        data = event.data or {}
        if event.type == "metrics" and "train_loss" in data:
            steps.append(data["step"])
            train.append(data["train_loss"])
        elif data.get("valid_loss") is not None:
            vsteps.append(data["step"])
            valid.append(data["valid_loss"])
    return steps, train, vsteps, valid


def register(main: click.Group, open_platform, data_dir_option, cli_errors) -> None:
    @main.group()
    def train():
        """Fine-tuning jobs."""

    @train.command("create")
    @click.option("--project", required=True)
    @click.option("--model", default="smollm2-135m-instruct", show_default=True)
    @click.option("--training-file", required=True, help="A file id, or a local JSONL path to upload.")
    @click.option("--validation-file", default=None)
    @click.option("--method", type=click.Choice(["supervised", "dpo", "continued_pretraining"]), default="supervised")
    @click.option("--suffix", default=None)
    @click.option("--seed", type=int, default=None)
    @click.option("--hp", "hp", multiple=True, help="A hyperparameter, e.g. --hp n_epochs=3 --hp lora_rank=8.")
    @data_dir_option
    @cli_errors
    def create(project, model, training_file, validation_file, method, suffix, seed, hp, data_dir):
        """Queue a fine-tuning job (the running gateway trains it); prints the job id last."""
        import yaml

        from rixin.train.job import create_job

        platform = open_platform(data_dir)
        caller = project_caller(platform, project)

        def file_id(value):
            if value is None or not Path(value).exists():
                return value
            return upload_local(platform, caller, Path(value), purpose="fine-tune").id

        hyper = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in hp)}
        job = create_job(platform, caller, model=model, training_file_id=file_id(training_file),
                         validation_file_id=file_id(validation_file), suffix=suffix, seed=seed,
                         method={"type": method, method: {"hyperparameters": hyper}}, hyperparameters=None,
                         metadata=None)
        console.print(f"job {job.id}: {job.status}" + (f" — {job.error['message']}" if job.error else ""))
        click.echo(job.id)

    @train.command("follow")
    @click.argument("job_id")
    @data_dir_option
    @cli_errors
    def follow(job_id, data_dir):
        """Live progress of a job: step, loss, tokens/s, ETA — until it ends."""
        platform = open_platform(data_dir)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
                   TimeRemainingColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("waiting", total=None, loss="-", tps="-")
            while True:
                job = platform.jobs.get(None, job_id)
                p = job.progress or {}
                progress.update(task, description=job.status, total=p.get("total_steps"),
                                completed=p.get("step", 0), loss=p.get("train_loss", "-"),
                                tps=p.get("tokens_per_second", "-"))
                if job.status in FINAL or job.status == "paused":
                    break
                time.sleep(1)
        result = job.result or {}
        console.print(f"{job.status}: {result.get('fine_tuned_model') or job.error or ''}")

    @train.command("plot")
    @click.argument("job_id")
    @click.option("--out", type=click.Path(path_type=Path), default=None, help="Default: <job id>-loss.png")
    @data_dir_option
    @cli_errors
    def plot(job_id, out, data_dir):
        """Write a PNG of the training (and validation) loss."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        platform = open_platform(data_dir)
        platform.jobs.get(None, job_id)
        steps, train_loss, vsteps, valid = loss_points(platform, job_id)
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

"""`rixin label …`: label a dataset with live progress; review the items below the threshold.

    rixin label DATASET --task spec.yaml --project P [--version N] [--resume JOB]
    rixin label review list|accept|correct|reject|commit …
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from rixin.cli.data import console, follow_job, project_caller


class DefaultCommandGroup(click.Group):
    """A group whose first argument, when it names no subcommand, goes to a default command:
    `rixin label DATASET …` runs `rixin label run DATASET …`."""

    def __init__(self, *args, default: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


def print_outcome(platform, caller, job) -> None:
    result = job.result
    version = platform.datasets.version(caller, result["dataset_id"], result["version"])
    report = version.report or {}
    console.print(f"labeled {result['items_in']} items: {result['labeled']} in version {version.version} "
                  f"(confidence ≥ {report.get('confidence_threshold')}), {result['to_review']} to review.")
    if report.get("labels"):
        table = Table("label", "items")
        for label, n in sorted(report["labels"].items(), key=lambda kv: -kv[1]):
            table.add_row(str(label), str(n))
        console.print(table)
    console.print("reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(report.get("reasons", {}).items())))


def _parse_label(value: str):
    """A label from the command line: JSON when it parses as an object, else the string."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, dict) else value


def register(main: click.Group, open_platform, data_dir_option, cli_errors) -> None:
    @main.group(cls=DefaultCommandGroup, default="run")
    def label():
        """Label a dataset automatically (LLM or kNN); review the uncertain items.

        `rixin label DATASET --task spec.yaml --project P` is short for `rixin label run …`."""

    register_run(label, open_platform, data_dir_option, cli_errors)
    register_review(label, open_platform, data_dir_option, cli_errors)


def register_run(label: click.Group, open_platform, data_dir_option, cli_errors) -> None:
    @label.command("run")
    @click.argument("dataset")
    @click.option("--task", "task_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="The task spec (YAML); not needed with --resume.")
    @click.option("--project", required=True)
    @click.option("--version", "version", type=int, default=None, help="Default: the newest.")
    @click.option("--resume", "resume", default=None, help="Resume an interrupted labeling job by id.")
    @click.option("--shard-size", default=100, show_default=True, help="Items per shard (unit of resume).")
    @data_dir_option
    @cli_errors
    def run(dataset, task_file, project, version, resume, shard_size, data_dir):
        """Label DATASET into a new version; items below the threshold go to review."""
        from rixin.platform import JOB_KINDS as HANDLERS
        from rixin.label.job import submit_label

        platform = open_platform(data_dir)
        caller = project_caller(platform, project)
        platform.registry.sync_bundled()
        if resume:
            if platform.jobs.get(caller, resume).params.get("dataset_id") != dataset:
                raise click.ClickException(f"job {resume} did not label dataset {dataset}")
            platform.start_ray()
            job = platform.jobs.reclaim(resume)
        else:
            if task_file is None:
                raise click.UsageError("--task is required (unless --resume)")
            job = submit_label(platform, caller, dataset, version, str(task_file), shard_size=shard_size,
                               claim=True)
            platform.start_ray()
        console.print(f"labeling job {job.id}")
        job = follow_job(platform, job, HANDLERS)
        if job.status != "succeeded":
            raise click.ClickException(f"job {job.id} {job.status}: {json.dumps(job.error)}")
        print_outcome(platform, caller, job)


def register_review(label: click.Group, open_platform, data_dir_option, cli_errors) -> None:
    @label.group("review")
    def review():
        """The review queue: list items, accept, correct or reject them, commit a version."""

    @review.command("list")
    @click.option("--project", required=True)
    @click.option("--dataset", default=None)
    @click.option("--job", "job_id", default=None)
    @click.option("--status", type=click.Choice(["pending", "accepted", "corrected", "rejected"]), default=None)
    @click.option("--limit", default=20, show_default=True)
    @click.option("--after", default=None, help="Show items after this id (paging).")
    @data_dir_option
    @cli_errors
    def list_(project, dataset, job_id, status, limit, after, data_dir):
        """Items of the queue, oldest first (pending and reviewed alike unless --status)."""
        from rixin.label.labelers import input_text

        platform = open_platform(data_dir)
        items, more = platform.review.list(project_caller(platform, project), dataset_id=dataset,
                                           job_id=job_id, status=status, limit=limit, after=after)
        table = Table("status", "confidence", "proposed", "final", "text")
        table.add_column("id", no_wrap=True)
        for i in items:
            text = (input_text(i.record, "auto") or "")[:60].replace("\n", " ")
            table.add_row(i.status, f"{i.confidence:.3f}", json.dumps(i.proposed_label, ensure_ascii=False),
                          "" if i.final_label is None else json.dumps(i.final_label, ensure_ascii=False), text, i.id)
        Console(width=max(160, console.width)).print(table)
        if more:
            console.print(f"more: --after {items[-1].id}")

    def decide(project, data_dir, how):
        platform = open_platform(data_dir)
        row = how(platform.review, project_caller(platform, project))
        click.echo(f"{row.id} {row.status}: {json.dumps(row.final_label, ensure_ascii=False)}")

    @review.command("accept")
    @click.argument("item")
    @click.option("--project", required=True)
    @data_dir_option
    @cli_errors
    def accept(item, project, data_dir):
        """Accept ITEM's proposed label."""
        decide(project, data_dir, lambda queue, caller: queue.accept(caller, item))

    @review.command("correct")
    @click.argument("item")
    @click.option("--label", "value", required=True, help="The right label (a JSON object for extraction).")
    @click.option("--project", required=True)
    @data_dir_option
    @cli_errors
    def correct(item, value, project, data_dir):
        """Replace ITEM's label by --label (checked against the job's task)."""
        decide(project, data_dir, lambda queue, caller: queue.correct(caller, item, _parse_label(value)))

    @review.command("reject")
    @click.argument("item")
    @click.option("--project", required=True)
    @data_dir_option
    @cli_errors
    def reject(item, project, data_dir):
        """Leave ITEM out of the training data."""
        decide(project, data_dir, lambda queue, caller: queue.reject(caller, item))

    @review.command("commit")
    @click.argument("dataset")
    @click.option("--project", required=True)
    @data_dir_option
    @cli_errors
    def commit(dataset, project, data_dir):
        """A new version: the label version's records + accepted and corrected items."""
        platform = open_platform(data_dir)
        version = platform.review.commit(project_caller(platform, project), dataset)
        console.print(f"version {version.version} (review): {version.records} records; {version.report}")
        click.echo(version.version)

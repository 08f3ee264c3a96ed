"""`rixin label …`: label a dataset (the gateway's job runner) followed live; review the items
below the threshold — over the API.

    rixin label DATASET --task spec.yaml [--version N] [--resume JOB]
    rixin label review list|accept|correct|reject|commit …
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml
from rich.console import Console
from rich.table import Table

from rixin.cli.client import Api, api_options, cli_errors, console
from rixin.cli.data import follow_data_job


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


def print_outcome(api: Api, job: dict) -> None:
    result = job["result"]
    version = api.get(f"/v1/datasets/{result['dataset_id']}/versions/{result['version']}")
    report = version.get("report") or {}
    console.print(f"labeled {result['items_in']} items: {result['labeled']} in version {version['version']} "
                  f"(confidence ≥ {report.get('confidence_threshold')}), {result['to_review']} to review.")
    if report.get("labels"):
        table = Table("label", "items")
        for label, n in sorted(report["labels"].items(), key=lambda kv: -kv[1]):
            table.add_row(str(label), str(n))
        console.print(table)
    console.print("reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(report.get("reasons", {}).items())))


def read_task(path: Path) -> dict:
    """The task spec file of this machine, sent as an object (the server reads no paths)."""
    try:
        task = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise click.BadParameter(f"cannot read the task spec {path}: {e}", param_hint="--task") from e
    if not isinstance(task, dict):
        raise click.BadParameter(f"the task spec {path} is not a YAML mapping", param_hint="--task")
    return task


def _parse_label(value: str):
    """A label from the command line: JSON when it parses as an object, else the string."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, dict) else value


def register(main: click.Group) -> None:
    @main.group(cls=DefaultCommandGroup, default="run")
    def label():
        """Label a dataset automatically (LLM or kNN); review the uncertain items.

        `rixin label DATASET --task spec.yaml` is short for `rixin label run …`."""

    register_run(label)
    register_review(label)


def register_run(label: click.Group) -> None:
    @label.command("run")
    @click.argument("dataset")
    @click.option("--task", "task_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="The task spec (YAML, read here and sent); not needed with --resume.")
    @click.option("--version", "version", type=int, default=None, help="Default: the newest.")
    @click.option("--resume", "resume", default=None,
                  help="Follow this labeling job instead of starting one (the gateway resumes interrupted jobs).")
    @click.option("--shard-size", default=100, show_default=True, help="Items per shard (unit of resume).")
    @api_options
    @cli_errors
    def run(dataset, task_file, version, resume, shard_size, api):
        """Label DATASET into a new version (the gateway's job runner); items below the threshold go to review."""
        if resume is None:
            if task_file is None:
                raise click.UsageError("--task is required (unless --resume)")
            body = {"task": read_task(task_file), "shard_size": shard_size}
            resume = api.post(f"/v1/datasets/{dataset}/label",
                              {**body, "version": version} if version is not None else body)["id"]
        console.print(f"labeling job {resume}")
        print_outcome(api, follow_data_job(api, resume, "label", dataset))


def register_review(label: click.Group) -> None:
    @label.group("review")
    def review():
        """The review queue: list items, accept, correct or reject them, commit a version."""

    @review.command("list")
    @click.option("--dataset", default=None)
    @click.option("--job", "job_id", default=None)
    @click.option("--status", type=click.Choice(["pending", "accepted", "corrected", "rejected"]), default=None)
    @click.option("--limit", default=20, show_default=True)
    @click.option("--after", default=None, help="Show items after this id (paging).")
    @api_options
    @cli_errors
    def list_(dataset, job_id, status, limit, after, api):
        """Items of the queue, oldest first (pending and reviewed alike unless --status)."""
        from rixin.label.labelers import input_text

        page = api.get("/v1/review_items", dataset_id=dataset, job_id=job_id, status=status, limit=limit,
                       after=after)
        items = page["data"]
        table = Table("status", "confidence", "proposed", "final", "text")
        table.add_column("id", no_wrap=True)
        for i in items:
            text = (input_text(i["record"], "auto") or "")[:60].replace("\n", " ")
            table.add_row(i["status"], f"{i['confidence']:.3f}", json.dumps(i["proposed_label"], ensure_ascii=False),
                          "" if i["final_label"] is None else json.dumps(i["final_label"], ensure_ascii=False),
                          text, i["id"])
        Console(width=max(160, console.width)).print(table)
        if page.get("has_more"):
            console.print(f"more: --after {items[-1]['id']}")

    def decide(api, item: str, action: str, body: dict | None = None):
        row = api.post(f"/v1/review_items/{item}/{action}", body)
        click.echo(f"{row['id']} {row['status']}: {json.dumps(row['final_label'], ensure_ascii=False)}")

    @review.command("accept")
    @click.argument("item")
    @api_options
    @cli_errors
    def accept(item, api):
        """Accept ITEM's proposed label."""
        decide(api, item, "accept")

    @review.command("correct")
    @click.argument("item")
    @click.option("--label", "value", required=True, help="The right label (a JSON object for extraction).")
    @api_options
    @cli_errors
    def correct(item, value, api):
        """Replace ITEM's label by --label (checked against the job's task)."""
        decide(api, item, "correct", {"label": _parse_label(value)})

    @review.command("reject")
    @click.argument("item")
    @api_options
    @cli_errors
    def reject(item, api):
        """Leave ITEM out of the training data."""
        decide(api, item, "reject")

    @review.command("commit")
    @click.argument("dataset")
    @api_options
    @cli_errors
    def commit(dataset, api):
        """A new version: the label version's records + accepted and corrected items; prints its number last."""
        version = api.post(f"/v1/datasets/{dataset}/review/commit")
        console.print(f"version {version['version']} (review): {version['records']} records; {version['report']}")
        click.echo(version["version"])

"""`rixin deploy …` and `rixin flywheel …`: deployments, exports of feedback, flywheel turns.

These work on the data dir directly; a running gateway advances turns (its driver creates the
fine-tune and eval jobs and its job runner runs them)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import click
from rich.console import Console
from rich.table import Table

from rixin.cli.data import project_caller

console = Console()


def parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    if value.isdigit():
        return datetime.fromtimestamp(int(value), timezone.utc)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise click.BadParameter("use unix seconds or an ISO time, e.g. 2026-11-01T00:00:00") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def register(main: click.Group, open_platform, data_dir_option, cli_errors) -> None:
    @main.group()
    def deploy():
        """Deployments: stable names for models."""

    @deploy.command("create")
    @click.option("--project", required=True)
    @click.option("--name", required=True)
    @click.option("--model", required=True)
    @click.option("--logging", "policy", type=click.Choice(["full", "metadata-only", "off"]), default="full")
    @click.option("--redact-pii", is_flag=True)
    @data_dir_option
    @cli_errors
    def deploy_create(project, name, model, policy, redact_pii, data_dir):
        """Create a deployment; prints its name last."""
        platform = open_platform(data_dir)
        row = platform.deployments.create(project_caller(platform, project), name=name, model=model,
                                          logging=policy, redact_pii=redact_pii)
        click.echo(row.name)

    @deploy.command("list")
    @click.option("--project", required=True)
    @data_dir_option
    @cli_errors
    def deploy_list(project, data_dir):
        platform = open_platform(data_dir)
        table = Table("name", "model", "logging", "version")
        for d in platform.deployments.list(project_caller(platform, project)):
            table.add_row(d.name, d.model_id, d.logging, str(d.version))
        console.print(table)

    @deploy.command("rollback")
    @click.option("--project", required=True)
    @click.option("--name", required=True)
    @click.option("--reason", default=None)
    @data_dir_option
    @cli_errors
    def deploy_rollback(project, name, reason, data_dir):
        """Point the deployment back at its previous model."""
        platform = open_platform(data_dir)
        row = platform.deployments.rollback(project_caller(platform, project), name, reason=reason)
        click.echo(row.model_id)

    @main.group()
    def flywheel():
        """Logs + feedback → datasets → fine-tune → eval → gated promotion."""

    @flywheel.command("export")
    @click.option("--project", required=True)
    @click.option("--deployment", required=True)
    @click.option("--since", default=None, help="Only feedback after this (unix seconds or ISO time).")
    @data_dir_option
    @cli_errors
    def export_cmd(project, deployment, since, data_dir):
        """Write feedback as a dataset version and fine-tune files; prints what was made (JSON)."""
        from rixin.flywheel.export import export

        platform = open_platform(data_dir)
        caller = project_caller(platform, project)
        out = export(platform, caller, platform.deployments.get(caller, deployment), since=parse_since(since))
        click.echo(json.dumps(out.object(), indent=2))

    @flywheel.command("run")
    @click.option("--project", required=True)
    @click.option("--deployment", required=True)
    @click.option("--every", default=None, help="Also schedule turns, e.g. 1d, 6h (the gateway starts them).")
    @click.option("--wait/--no-wait", default=False, help="Follow the turn until it ends.")
    @data_dir_option
    @cli_errors
    def run_cmd(project, deployment, every, wait, data_dir):
        """Start one turn (the running gateway advances it); prints the turn id last."""
        from rixin.flywheel.turn import FINAL

        platform = open_platform(data_dir)
        caller = project_caller(platform, project)
        row = platform.deployments.get(caller, deployment)
        if every is not None:
            row = platform.deployments.update(caller, deployment, flywheel={**(row.flywheel or {}), "every": every})
        turns = platform.turns
        turn = turns.start(caller, row)
        click.echo(turn.id)
        while wait and turn.status not in FINAL:
            time.sleep(2)
            turn = turns.get(caller, turn.id)
            console.print(f"{turn.status} {turn.decision.get('stage')}", end="\r")
        if wait:
            console.print(f"{turn.status}: {turn.decision.get('why', '')}")

    @flywheel.command("turns")
    @click.option("--project", required=True)
    @click.option("--deployment", required=True)
    @data_dir_option
    @cli_errors
    def turns_cmd(project, deployment, data_dir):
        """The deployment's turns, newest first, with their decisions."""
        platform = open_platform(data_dir)
        caller = project_caller(platform, project)
        table = Table("turn", "status", "stage", "candidate", "why")
        for t in platform.turns.list(caller, platform.deployments.get(caller, deployment)):
            table.add_row(t.id, t.status, str(t.decision.get("stage")), t.candidate_model or "-",
                          str(t.decision.get("why", "")))
        console.print(table)

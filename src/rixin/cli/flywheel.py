"""`rixin deploy …` and `rixin flywheel …`: deployments, exports of feedback, flywheel turns —
over the API; the gateway advances turns (its driver creates the fine-tune and eval jobs)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click
from rich.table import Table

from rixin.cli.client import api_options, cli_errors, console


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


def register(main: click.Group) -> None:
    @main.group()
    def deploy():
        """Deployments: stable names for models."""

    @deploy.command("create")
    @click.option("--name", required=True)
    @click.option("--model", required=True)
    @click.option("--logging", "policy", type=click.Choice(["full", "metadata-only", "off"]), default="full")
    @click.option("--redact-pii", is_flag=True)
    @api_options
    @cli_errors
    def deploy_create(name, model, policy, redact_pii, api):
        """Create a deployment; prints its name last."""
        row = api.post("/v1/deployments", {"name": name, "model": model, "logging": policy, "redact_pii": redact_pii})
        click.echo(row["name"])

    @deploy.command("list")
    @api_options
    @cli_errors
    def deploy_list(api):
        """The project's deployments and the model each points at."""
        table = Table("name", "model", "logging", "version")
        for d in api.get("/v1/deployments")["data"]:
            table.add_row(d["name"], d["model"], d["logging"], str(d["version"]))
        console.print(table)

    @deploy.command("rollback")
    @click.option("--name", required=True)
    @click.option("--reason", default=None)
    @api_options
    @cli_errors
    def deploy_rollback(name, reason, api):
        """Point the deployment back at its previous model; prints that model last."""
        click.echo(api.post(f"/v1/deployments/{name}/rollback", {"reason": reason} if reason else {})["model"])

    @main.group()
    def flywheel():
        """Logs + feedback → datasets → fine-tune → eval → gated promotion."""

    @flywheel.command("export")
    @click.option("--deployment", required=True)
    @click.option("--since", default=None, help="Only feedback after this (unix seconds or ISO time).")
    @api_options
    @cli_errors
    def export_cmd(deployment, since, api):
        """Write feedback as a dataset version and fine-tune files; prints what was made (JSON)."""
        since_at = parse_since(since)
        body = {"since": int(since_at.timestamp())} if since_at else {}
        click.echo(json.dumps(api.post(f"/v1/deployments/{deployment}/flywheel/export", body), indent=2))

    @flywheel.command("run")
    @click.option("--deployment", required=True)
    @click.option("--every", default=None, help="Also schedule turns, e.g. 1d, 6h (the gateway starts them).")
    @click.option("--wait/--no-wait", default=False, help="Follow the turn until it ends.")
    @api_options
    @cli_errors
    def run_cmd(deployment, every, wait, api):
        """Start one turn (the gateway advances it); prints the turn id last."""
        from rixin.flywheel.turn import FINAL

        if every is not None:
            row = api.get(f"/v1/deployments/{deployment}")
            api.post(f"/v1/deployments/{deployment}", {"flywheel": {**(row["flywheel"] or {}), "every": every}})
        turn = api.post(f"/v1/deployments/{deployment}/flywheel/turns")
        if wait:
            turn = api.follow(f"/v1/deployments/{deployment}/flywheel/turns/{turn['id']}",
                              lambda t: (f"{t['status']} {t['stage'] or ''}".strip(), None, 0),
                              done=lambda t: t["status"] in FINAL)
            console.print(f"{turn['status']}: {turn['decision'].get('why', '')}")
        click.echo(turn["id"])

    @flywheel.command("turns")
    @click.option("--deployment", required=True)
    @api_options
    @cli_errors
    def turns_cmd(deployment, api):
        """The deployment's turns, newest first, with their decisions."""
        table = Table("turn", "status", "stage", "candidate", "why")
        for t in api.get(f"/v1/deployments/{deployment}/flywheel/turns")["data"]:
            table.add_row(t["id"], t["status"], str(t["stage"]), t["candidate_model"] or "-",
                          str(t["decision"].get("why", "")))
        console.print(table)

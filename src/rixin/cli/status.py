"""`rixin status`: the running gateway's cluster, engines and job queues at a glance (admin key)."""

from __future__ import annotations

import json

import click
from rich.table import Table

from rixin.cli.client import Api, ApiError, cli_errors, console, make_api


def health(api: Api) -> dict:
    """GET /health, whose 503 while the engines load (or the store refuses writes) is an answer too."""
    return api.request("GET", "/health", also_ok=(503,))


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def nodes_table(cluster: dict, engines: list[dict]) -> Table:
    t = Table(title="Ray nodes", title_justify="left")
    for col in ("node", "address", "alive", "CPUs", "GPUs", "accelerators", "memory", "engines"):
        t.add_column(col)
    for n in cluster["nodes"]:
        here = [e["model"] for e in engines if e.get("node_id") == n["node_id"]]
        t.add_row((n["node_id"] or "")[:12], n["address"] or "", "yes" if n["alive"] else "[red]no[/]",
                  f"{n['cpus']:g}", f"{n['gpus']:g}", ", ".join(n["accelerators"]) or "-",
                  gib(n["memory_bytes"]), ", ".join(here) or "-")
    return t


def engines_table(engines: list[dict]) -> Table:
    t = Table(title="Engines", title_justify="left")
    for col in ("model", "engine", "state", "pid", "node", "in flight"):
        t.add_column(col)
    for e in engines:
        state = e["state"] if e["state"] == "running" else f"[yellow]{e['state']}[/]"
        t.add_row(e["model"], str(e.get("engine", "")), state, str(e.get("pid", "")),
                  str(e.get("node_id") or "")[:12] or "-", str(e.get("inflight", 0)))
    return t


def jobs_table(cluster: dict) -> Table:
    t = Table(title="Active jobs", title_justify="left")
    for col in ("project", "kind", "status", "count"):
        t.add_column(col)
    for j in cluster["jobs"]:
        t.add_row(j["project"], j["kind"], j["status"], str(j["count"]))
    return t


def register(main: click.Group) -> None:
    @main.command()
    @click.option("--url", default=None, help="The gateway (default: $RIXIN_BASE_URL or http://127.0.0.1:8000).")
    @click.option("--key", default=None, help="An admin API key (default: $RIXIN_API_KEY, then $RIXIN_ADMIN_KEY).")
    @click.option("--json", "as_json", is_flag=True, help="Print the raw state as JSON.")
    @cli_errors
    def status(url: str | None, key: str | None, as_json: bool):
        """Cluster nodes, engines and job queues of a running gateway."""
        api = make_api(url, key, fallback_key_env="RIXIN_ADMIN_KEY")
        state = health(api)
        try:
            cluster = api.get("/v1/cluster")
        except ApiError as e:
            if e.status in (401, 403):
                e.hint = "Pass an admin key with --key, RIXIN_API_KEY or RIXIN_ADMIN_KEY."
            raise
        engines = api.get("/v1/engines")["data"]
        if as_json:
            click.echo(json.dumps({"health": state, "cluster": cluster, "engines": engines}, indent=2))
            return
        available = cluster["available"]
        console.print(f"gateway {api.url}: [bold]{state['status']}[/] (rixin {state.get('version', '?')}), "
                      f"{len(cluster['nodes'])} node(s), {available['cpus']:g} CPUs and "
                      f"{available['gpus']:g} GPUs free")
        console.print(nodes_table(cluster, engines))
        console.print(engines_table(engines))
        console.print(jobs_table(cluster) if cluster["jobs"] else "No job is queued or running.")
        limits = cluster["limits"]
        console.print(f"limits: {limits['job_slots']} job slot(s), {limits['max_running_jobs_per_project']} "
                      f"running job(s) per project, engine queue {limits['engine_queue_size']}")

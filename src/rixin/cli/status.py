"""`rixin status`: the running gateway's cluster, engines and job queues at a glance.

Unlike the other commands this one asks the gateway over HTTP (what runs where lives in its
Ray session, not in the data dir), with an admin key."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import click
from rich.console import Console
from rich.table import Table

from rixin.errors import EngineUnavailable, PermissionDenied, RixinError

console = Console()
if not console.is_terminal:  # piped or captured: keep model ids whole rather than wrapped at 80
    console = Console(width=200)


def fetch(url: str, key: str | None) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        body = json.loads(e.read() or b"{}")
        if e.code == 503 and "status" in body:
            return body  # /health while the engines load
        message = (body.get("error") or {}).get("message") or f"HTTP {e.code}"
        if e.code in (401, 403):
            raise PermissionDenied(f"{message} Pass an admin key with --key or RIXIN_ADMIN_KEY.") from e
        raise RixinError(message) from e
    except (urllib.error.URLError, OSError) as e:
        raise EngineUnavailable(f"No rixin gateway answers at {url.rsplit('/', 2)[0]} ({e}); "
                                "start one with `rixin up` or pass --url.") from e


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


def register(main: click.Group, cli_errors) -> None:
    @main.command()
    @click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The gateway's address.")
    @click.option("--key", default=None, help="An admin API key (default: $RIXIN_ADMIN_KEY).")
    @click.option("--json", "as_json", is_flag=True, help="Print the raw state as JSON.")
    @cli_errors
    def status(url: str, key: str | None, as_json: bool):
        """Cluster nodes, engines and job queues of a running gateway."""
        key = key or os.environ.get("RIXIN_ADMIN_KEY")
        base = url.rstrip("/")
        health = fetch(base + "/health", None)
        cluster = fetch(base + "/v1/cluster", key)
        engines = fetch(base + "/v1/engines", key)["data"]
        if as_json:
            click.echo(json.dumps({"health": health, "cluster": cluster, "engines": engines}, indent=2))
            return
        available = cluster["available"]
        console.print(f"gateway {base}: [bold]{health['status']}[/] (rixin {health.get('version', '?')}), "
                      f"{len(cluster['nodes'])} node(s), {available['cpus']:g} CPUs and "
                      f"{available['gpus']:g} GPUs free")
        console.print(nodes_table(cluster, engines))
        console.print(engines_table(engines))
        console.print(jobs_table(cluster) if cluster["jobs"] else "No job is queued or running.")
        limits = cluster["limits"]
        console.print(f"limits: {limits['job_slots']} job slot(s), {limits['max_running_jobs_per_project']} "
                      f"running job(s) per project, engine queue {limits['engine_queue_size']}")

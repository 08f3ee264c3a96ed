"""The `rixin` command: one HTTP client of a gateway (cli/client.py), as the `openai` CLI is.

Only `up`, the bootstrap `keys create` and the offline `models add`/`models export` (files on
the gateway's machine) open the data dir; every other command asks the API."""

from __future__ import annotations

import logging
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from rixin.cli import bench as bench_commands
from rixin.cli import compute as compute_commands
from rixin.cli import data as data_commands
from rixin.cli import eval as eval_commands
from rixin.cli import train as train_commands
from rixin.cli import label as label_commands
from rixin.cli import status as status_commands
from rixin.cli import flywheel as flywheel_commands
from rixin.cli.client import DEFAULT_URL, api_options, cli_errors

if TYPE_CHECKING:
    from rixin.platform import Platform

console = Console()
data_dir_option = click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".rixin"),
                               show_default=True, help="Data directory, as given to `rixin up` (offline command).")


@click.group()
@click.version_option(package_name="rixin")
@click.option("--url", default=None, help=f"The gateway (default: $RIXIN_BASE_URL or {DEFAULT_URL}).")
@click.option("--key", default=None, help="An API key; it chooses the project (default: $RIXIN_API_KEY).")
@click.pass_context
def main(ctx, url: str | None, key: str | None):
    """rixin: your data, your model, OpenAI-compatible, new every day.

    Commands talk to a gateway (`rixin up`) over its API with --url and --key, as given here or to
    the command, or RIXIN_BASE_URL and RIXIN_API_KEY."""
    ctx.obj = {"url": url, "key": key}


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@data_dir_option
@click.option("--ray-address", default=None, help="Join this Ray cluster instead of starting a local one.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@cli_errors
def up(host: str, port: int, data_dir: Path, ray_address: str | None, log_level: str):
    """Start the gateway (and a local Ray) in the foreground until SIGINT/SIGTERM."""
    import uvicorn

    from rixin.api.app import create_app
    from rixin.api.server import config as server_config

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from rixin.config import Settings
    from rixin.platform import Platform

    settings = Settings.from_env(host=host, port=port, data_dir=data_dir, ray_address=ray_address)
    platform = Platform.open(settings)
    platform.registry.sync_bundled()
    platform.artifacts.sweep_tmp()
    new_admin_key = bootstrap_admin(platform)
    url = f"http://{host}:{port}"
    console.print(f"rixin will serve at [bold]{url}[/bold] (web console at {url}/, OpenAI-compatible API at {url}/v1); "
                  f"data in {data_dir.resolve()}")
    if new_admin_key:
        console.print("Admin API key (shown once, keep it safe):")
        click.echo(new_admin_key)
    shown = "$RIXIN_ADMIN_KEY" if settings.admin_key else (new_admin_key or "$KEY")
    console.print(f"Try: curl {url}/v1/chat/completions -H 'Authorization: Bearer {shown}' "
                  "-H 'Content-Type: application/json' -d '{\"model\": \"smollm2-135m-instruct\", "
                  "\"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}]}'", soft_wrap=True)
    console.print("Starting Ray and loading the bundled models; GET /health answers 200 when ready.")
    sys.stdout.flush()
    try:
        platform.start_compute()
        serve_until_signalled(uvicorn.Server(server_config(
            create_app(platform), host=host, port=port, log_level=log_level,
            read_timeout_s=settings.read_timeout_s)))
    finally:
        platform.close()


def serve_until_signalled(server) -> None:
    """Serve until SIGINT/SIGTERM, then shut down cleanly and return (exit status 0).

    uvicorn would re-raise the signal after its shutdown, and Ray's driver handler turns a
    re-raised SIGTERM into exit status 15 before Ray itself is shut down; we own the signals."""
    import contextlib

    def stop(_signum, _frame):
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    server.capture_signals = contextlib.nullcontext
    server.run()


def bootstrap_admin(platform: Platform) -> str | None:
    """Accept RIXIN_ADMIN_KEY as admin key, or create one on first start. Returns a new key."""
    if platform.settings.admin_key:
        platform.tenancy.ensure_admin_key(platform.settings.admin_key)
        return None
    if platform.tenancy.has_admin_key():
        return None
    from rixin.store.tenancy import DEFAULT_PROJECT

    return platform.tenancy.create_key(DEFAULT_PROJECT, name="first admin", admin=True).key


def open_platform(data_dir: Path) -> Platform:
    """The data dir itself, for the offline commands (imported here: the API commands need none of it)."""
    from rixin.config import Settings
    from rixin.platform import Platform

    return Platform.open(Settings.from_env(data_dir=data_dir))


@main.group()
def keys():
    """Projects' API keys."""


@keys.command("create")
@click.option("--project", required=True, help="Project name (created if needed).")
@click.option("--name", default=None, help="A label for the key.")
@click.option("--admin", is_flag=True, help="The key may use admin routes.")
@click.option("--read-only", is_flag=True, help="The key may only read (GET routes): 403 on every write.")
@data_dir_option
@cli_errors
def keys_create(project: str, name: str | None, admin: bool, read_only: bool, data_dir: Path):
    """Create an API key; the key is printed alone on the last line."""
    new = open_platform(data_dir).tenancy.create_key(project, name=name, admin=admin, read_only=read_only)
    kind = " (admin)" if admin else ""
    kind += " (read-only)" if read_only else ""
    click.echo(f"Created key {new.id} for project {new.project}{kind}.", err=False)
    click.echo(new.key)


@keys.command("list")
@click.option("--project", "of_project", required=True, help="The project whose keys to list.")
@api_options(project_check=False)
@cli_errors
def keys_list(of_project: str, api):
    """A project's keys (needs an admin key)."""
    table = Table("id", "prefix", "name", "admin", "created", "revoked")
    for k in api.get(f"/v1/projects/{of_project}/api_keys")["data"]:
        table.add_row(k["id"], k["prefix"] + "…", k.get("name") or "", "yes" if k.get("admin") else "",
                      when(k.get("created_at")), when(k.get("revoked_at")))
    console.print(table)


@keys.command("revoke")
@click.argument("key_id")
@click.option("--project", "of_project", required=True, help="The project the key belongs to.")
@api_options(project_check=False)
@cli_errors
def keys_revoke(key_id: str, of_project: str, api):
    """Revoke a key of a project (needs an admin key)."""
    api.delete(f"/v1/projects/{of_project}/api_keys/{key_id}")
    click.echo(f"Revoked {key_id}.")


def when(unix: int | None) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%d %H:%M") if unix else ""


@main.group()
def models():
    """The model registry."""


@models.command("add")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--id", "model_id", required=True, help="The model id clients will use.")
@click.option("--project", default=None, help="Visible to this project only (default: every project).")
@click.option("--kind", type=click.Choice(["chat", "embedding"]), default=None,
              help="Default: guessed from the files.")
@data_dir_option
@cli_errors
def models_add(path: Path, model_id: str, project: str | None, kind: str | None, data_dir: Path):
    """Register a GGUF file or a Hugging Face-format directory (safetensors only)."""
    platform = open_platform(data_dir)
    project_id = platform.tenancy.get_project(project).id if project else None
    row = platform.registry.add(str(path), model_id, project_id=project_id, kind=kind,
                                owned_by=project or "system")
    click.echo(f"Added {row.id}: {row.kind} model, {row.engine} engine, {row.size_bytes / 1e6:.1f} MB.")


@models.command("show")
@click.argument("model_id")
@api_options
@cli_errors
def models_show(model_id: str, api):
    """A model's details and its lineage: parent models, and the fine-tuning jobs that made them."""
    row = api.get(f"/v1/models/{model_id}")
    console.print(f"[bold]{row['id']}[/bold]: {row['kind']} model, {row['engine']} engine, {row['source']}, "
                  f"{row['size_bytes'] / 1e6:.1f} MB, owned by {row['owned_by']}")
    made_by = {j["fine_tuned_model"]: j for j in api.pages("/v1/fine_tuning/jobs") if j.get("fine_tuned_model")}
    console.print("lineage:")
    depth, current = 0, row
    while current is not None:
        job = made_by.get(current["id"])
        made = f" ← job {job['id']} on {job['training_file']}" if job else ""
        console.print("  " + "  " * depth + f"{current['id']}{made}")
        current = api.get(f"/v1/models/{current['parent']}") if current.get("parent") else None
        depth += 1


@models.command("export")
@click.argument("model_id")
@click.option("--gguf", "to_gguf", is_flag=True, help="Write a GGUF for the llama.cpp engine (the only format so far).")
@click.option("--quant", type=click.Choice(["f32", "f16", "q8_0", "q4_0"]), default="q8_0", show_default=True,
              help="Type of the 2-D weight matrices; norms stay float32.")
@click.option("--id", "new_id", default=None, help="Id of the exported model (default: MODEL_ID-QUANT).")
@data_dir_option
@cli_errors
def models_export(model_id: str, to_gguf: bool, quant: str, new_id: str | None, data_dir: Path):
    """Merge a fine-tuned model's adapter and register it as a GGUF served by llama.cpp."""
    from rixin.models.export import export_model

    if not to_gguf:
        raise click.UsageError("Choose the format to export to: --gguf.")
    platform = open_platform(data_dir)
    row = export_model(platform.registry, model_id, platform.settings.data_dir, quant=quant, new_id=new_id,
                       progress=True)
    click.echo(f"Exported {model_id} as {row.id}: {quant} GGUF, {row.size_bytes / 1e6:.1f} MB, llama.cpp "
               f"engine\n  path: {row.path}")


@models.command("list")
@api_options
@cli_errors
def models_list(api):
    """Every model the key's project may use, with its engine, size and source."""
    table = Table("id", "kind", "engine", "size", "source", "owned by")
    for m in api.get("/v1/models")["data"]:
        table.add_row(m["id"], m["kind"], m["engine"], f"{m['size_bytes'] / 1e6:.1f} MB", m["source"], m["owned_by"])
    Console(width=max(160, console.width)).print(table)


data_commands.register(main)
train_commands.register(main)
label_commands.register(main)
eval_commands.register(main)
status_commands.register(main)
flywheel_commands.register(main)
bench_commands.register(main)
compute_commands.register(main)

if __name__ == "__main__":
    main()

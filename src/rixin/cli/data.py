"""`rixin data …`: datasets from local files, cleaning with live progress, reports."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rixin.store.tenancy import Caller

console = Console()


def project_caller(platform, project: str) -> Caller:
    proj = platform.tenancy.ensure_project(project)
    return Caller(project_id=proj.id, project_name=proj.name, key_id="cli", is_admin=True)


def upload_local(platform, caller: Caller, path: Path, purpose: str = "user_data"):
    """Store a local file as a file object of the project (streamed, hashed, atomic)."""
    with path.open("rb") as f, platform.artifacts.writer(limit=platform.settings.max_file_bytes) as sink:
        while chunk := f.read(1 << 20):
            sink.write(chunk)
        sha256, size = sink.commit()
    return platform.files.record(caller, filename=path.name, purpose=purpose, sha256=sha256, size=size)


def follow_job(platform, job, handlers) -> object:
    """Run a claimed job in a thread and show its shard progress until it ends."""
    from rixin.jobs.runner import run_job

    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("job", run_job(platform, platform.jobs, job,
                                                                                  handlers)), daemon=True)
    thread.start()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("splitting", total=None)
        while thread.is_alive():
            p = platform.jobs.get(None, job.id).progress or {}
            progress.update(task, description=p.get("stage", "starting"), total=p.get("shards_total"),
                            completed=p.get("shards_done", 0))
            time.sleep(0.3)
        p = platform.jobs.get(None, job.id).progress or {}
        progress.update(task, description=p.get("stage", "done"), completed=p.get("shards_total", 0))
    return outcome["job"]


def print_report(version) -> None:
    report = version.report or {}
    console.print(f"version {version.version} ({version.operation}): {version.records} records, "
                  f"format {version.format}")
    if "documents_in" in report:
        console.print(f"documents in {report['documents_in']} → out {report['documents_out']}")
    table = Table("removed because", "documents", "sample")
    for reason, n in sorted(report.get("removed", {}).items(), key=lambda kv: -kv[1]):
        sample = (report.get("samples", {}).get(reason) or [{}])[0].get("text", "")
        table.add_row(reason, str(n), sample[:80].replace("\n", " "))
    if report.get("removed"):
        console.print(table)
    if report.get("redactions"):
        console.print("redactions: " + ", ".join(f"{k} {v}" for k, v in sorted(report["redactions"].items())))


def local_recipe(recipe: str | None) -> str | dict | None:
    """A --recipe value as the server takes it: a name stays a name; a YAML file on this
    machine is read here, validated, and sent as a recipe object (the server never reads a
    path a request names)."""
    from rixin.data.recipe import packaged_recipes, recipe_from_yaml

    if recipe is None or recipe in packaged_recipes():
        return recipe
    path = Path(recipe).expanduser()
    if not (recipe.endswith((".yaml", ".yml")) or path.is_file()):
        return recipe  # a recipe stored in the project, by id or name
    if not path.is_file():
        raise click.BadParameter(f"no recipe file at {path}", param_hint="--recipe")
    text = path.read_text(encoding="utf-8")
    recipe_from_yaml(text, source=f"recipe file '{path}'")  # errors name the field and the file
    return yaml.safe_load(text)


def register(main: click.Group, open_platform, data_dir_option, cli_errors) -> None:
    @main.group()
    def data():
        """Datasets: create from files, clean, inspect."""

    @data.command("create")
    @click.argument("name")
    @click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--project", required=True)
    @click.option("--text-split", type=click.Choice(["paragraph", "line", "file"]), default="paragraph")
    @data_dir_option
    @cli_errors
    def create(name, files, project, text_split, data_dir):
        """Create dataset NAME from local FILES (JSONL, CSV, Parquet, text, Markdown)."""
        platform = open_platform(data_dir)
        caller = project_caller(platform, project)
        ids = [upload_local(platform, caller, f).id for f in files]
        dataset, version = platform.datasets.create(caller, name, ids, text_split=text_split)
        console.print(f"Created dataset {dataset.name} ({dataset.id}): version 1, {version.records} records.")
        click.echo(dataset.id)

    @data.command("clean")
    @click.argument("dataset")
    @click.option("--project", required=True)
    @click.option("--recipe", default=None,
                  help="A packaged name (default, short), a recipe stored in the project, or a local YAML "
                       "file (read here, sent as a recipe object). Default: chosen from the dataset's kind.")
    @click.option("--version", "version", type=int, default=None, help="Default: the newest.")
    @click.option("--resume", "resume", default=None, help="Resume an interrupted cleaning job by id.")
    @click.option("--shard-size", default=2000, show_default=True, help="Records per shard (unit of resume).")
    @data_dir_option
    @cli_errors
    def clean(dataset, project, recipe, version, resume, shard_size, data_dir):
        """Clean a dataset version into a new version, with live progress."""
        from rixin.data.clean import submit_clean
        from rixin.platform import JOB_KINDS as HANDLERS

        platform = open_platform(data_dir)
        caller = project_caller(platform, project)
        platform.start_ray()
        if resume:
            platform.jobs.get(caller, resume)
            job = platform.jobs.reclaim(resume)
        else:
            job = submit_clean(platform, caller, dataset, version, local_recipe(recipe), shard_size=shard_size,
                               claim=True)
        console.print(f"cleaning job {job.id}")
        job = follow_job(platform, job, HANDLERS)
        if job.status != "succeeded":
            raise click.ClickException(f"job {job.id} {job.status}: {json.dumps(job.error)}")
        print_report(platform.datasets.version(caller, job.result["dataset_id"], job.result["version"]))

    @data.command("report")
    @click.argument("dataset")
    @click.option("--project", required=True)
    @click.option("--version", "version", type=int, default=None)
    @data_dir_option
    @cli_errors
    def report(dataset, project, version, data_dir):
        """Show a version's cleaning report: removed per reason, samples, redactions."""
        platform = open_platform(data_dir)
        print_report(platform.datasets.version(project_caller(platform, project), dataset, version))

    @data.command("list")
    @click.option("--project", required=True)
    @data_dir_option
    @cli_errors
    def list_(project, data_dir):
        platform = open_platform(data_dir)
        caller = project_caller(platform, project)
        table = Table("id", "name", "versions", "newest records")
        for d in platform.datasets.list(caller):
            versions = platform.datasets.versions(caller, d.id)
            table.add_row(d.id, d.name, str(len(versions)), str(versions[-1].records))
        console.print(table)

"""`rixin data …`: datasets from local files, cleaning followed live, reports — over the API."""

from __future__ import annotations

from pathlib import Path

import click
import yaml
from rich.table import Table

from rixin.cli.client import Api, ApiError, api_options, check_ended, cli_errors, console, job_progress


def print_report(version: dict) -> None:
    report = version.get("report") or {}
    console.print(f"version {version['version']} ({version['operation']}): {version['records']} records, "
                  f"format {version['format']}")
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


def follow_data_job(api: Api, job_id: str, kind: str, dataset: str) -> dict:
    """Follow a cleaning or labeling job of DATASET to its end (an interrupted one resumes when
    the gateway restarts); returns the succeeded job."""
    job = api.get(f"/v1/jobs/{job_id}")
    if job["kind"] != kind or job["params"].get("dataset_id") != dataset:
        raise click.ClickException(f"job {job_id} is not a {kind} job of dataset {dataset}")
    try:
        return check_ended(api.follow(f"/v1/jobs/{job_id}", job_progress), f"{kind} job")
    except ApiError as e:
        if e.status == 0:  # the gateway went away; the job did not (it resumes at the next start)
            e.hint = f"{e.hint} The job resumes when the gateway is back; follow it again with --resume {job_id}."
        raise


def register(main: click.Group) -> None:
    @main.group()
    def data():
        """Datasets: create from files, clean, inspect."""

    @data.command("create")
    @click.argument("name")
    @click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--text-split", type=click.Choice(["paragraph", "line", "file"]), default="paragraph")
    @api_options
    @cli_errors
    def create(name, files, text_split, api):
        """Create dataset NAME from local FILES (JSONL, CSV, Parquet, text, Markdown); prints its id last."""
        ids = [api.upload(f, "user_data")["id"] for f in files]
        dataset = api.post("/v1/datasets", {"name": name, "files": ids, "text_split": text_split})
        console.print(f"Created dataset {dataset['name']} ({dataset['id']}): version 1, "
                      f"{dataset['versions'][-1]['records']} records.")
        click.echo(dataset["id"])

    @data.command("clean")
    @click.argument("dataset")
    @click.option("--recipe", default=None,
                  help="A packaged name (default, short), a recipe stored in the project, or a local YAML "
                       "file (read here, sent as a recipe object). Default: chosen from the dataset's kind.")
    @click.option("--version", "version", type=int, default=None, help="Default: the newest.")
    @click.option("--resume", "resume", default=None,
                  help="Follow this cleaning job instead of starting one (the gateway resumes interrupted jobs).")
    @click.option("--shard-size", default=2000, show_default=True, help="Records per shard (unit of resume).")
    @api_options
    @cli_errors
    def clean(dataset, recipe, version, resume, shard_size, api):
        """Clean a dataset version into a new version (the gateway's job runner), followed live."""
        if resume is None:
            body = {"version": version, "recipe": local_recipe(recipe), "shard_size": shard_size}
            resume = api.post(f"/v1/datasets/{dataset}/clean", {k: v for k, v in body.items() if v is not None})["id"]
        console.print(f"cleaning job {resume}")
        job = follow_data_job(api, resume, "clean", dataset)
        print_report(api.get(f"/v1/datasets/{dataset}/versions/{job['result']['version']}"))

    @data.command("report")
    @click.argument("dataset")
    @click.option("--version", "version", type=int, default=None, help="Default: the newest.")
    @api_options
    @cli_errors
    def report(dataset, version, api):
        """Show a version's cleaning report: removed per reason, samples, redactions."""
        if version is None:
            print_report(api.get(f"/v1/datasets/{dataset}")["versions"][-1])
        else:
            print_report(api.get(f"/v1/datasets/{dataset}/versions/{version}"))

    @data.command("list")
    @api_options
    @cli_errors
    def list_(api):
        """The project's datasets with their versions."""
        table = Table("name", "versions", "newest records")
        table.add_column("id", no_wrap=True)
        for d in api.get("/v1/datasets")["data"]:
            table.add_row(d["name"], str(len(d["versions"])), str(d["versions"][-1]["records"]), d["id"])
        console.print(table)

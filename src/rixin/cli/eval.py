"""`rixin eval …`: run evaluations (the gateway's runner does the work), follow them live,
compare models side by side, plot scores; run lm-eval-harness tasks against a live server.

Like `rixin train`, these commands work on the data dir of a running gateway."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rixin.cli.data import project_caller, upload_local
from rixin.errors import InvalidRequest

console = Console()
FINAL = ("succeeded", "failed", "cancelled")
SHOWN_CHARS = 40  # of each output in the side-by-side table


def json_option(option: str, value: str, bare):
    """A JSON object when the value starts with '{', else `bare(value)`."""
    value = value.strip()
    if not value.startswith("{"):
        return bare(value)
    try:
        return json.loads(value)
    except ValueError as e:
        raise InvalidRequest(f"--{option} {value!r} is not a JSON object: {e}", param=option) from e


def follow(platform, caller, run_id: str):
    """Live progress of a run's job until it ends; returns the finished run."""
    from rixin.evals.service import get_run, job_of

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("queued", total=None)
        while True:
            run = get_run(platform, caller, run_id)
            job = job_of(platform, run)
            p = (job.progress or {}) if job else {}
            progress.update(task, description=f"{run.status} {p.get('stage', '')}".strip(),
                            total=p.get("items_total"), completed=p.get("items_done", 0))
            if run.status in FINAL:
                return run
            time.sleep(1)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"


def show_run(platform, caller, run) -> None:
    """Summary per model and grader, the per-item side-by-side table, the difference with its CI."""
    from rixin.evals.service import job_of, run_items, variants

    if run.status != "succeeded":
        job = job_of(platform, run)
        console.print(f"{run.id}: {run.status}" + (f" — {job.error['message']}" if job and job.error else ""))
        return
    names = [v.name for v in variants(run.models)]
    summary = run.summary
    graders = list(summary["models"][names[0]]["graders"])
    table = Table("model", "mean", *graders, title=f"{run.id} {run.name or ''} — {summary['n']} items")
    for name in names:
        s = summary["models"][name]
        table.add_row(name, f"{s['mean']:.3f}", *(f"{s['graders'][g]:.3f}" for g in graders))
    console.print(table)
    items, _ = run_items(platform, caller, run.id, limit=10**9)
    side = Table("item", "ideal", *(f"{n} (score)" for n in names), *(["b − a"] if len(names) == 2 else []))
    for it in items:
        cells = [f"{_short(it['outputs'][n]['output'])} ({it['outputs'][n]['mean']:.2f})" for n in names]
        diff = [f"{it['diff']:+.2f}"] if it.get("diff") is not None else []
        side.add_row(it["id"], _short(" | ".join(it["ideal"])), *cells, *diff)
    console.print(side)
    d = summary.get("diff")
    if d:
        console.print(f"{d['b']} − {d['a']}: mean {d['mean']:+.3f}, 95% CI [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] "
                      f"(bootstrap); wins {d['wins']}, ties {d['ties']}, losses {d['losses']}")


def plot_run(run, out: Path, plt) -> None:
    """Per-grader bars, one group per grader, one bar per model."""
    import numpy as np

    names = list(run.summary["models"])
    graders = list(run.summary["models"][names[0]]["graders"]) + ["mean"]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(graders) * len(names)), 4), dpi=120)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        s = run.summary["models"][name]
        values = [s["graders"][g] for g in graders[:-1]] + [s["mean"]]
        ax.bar(np.arange(len(graders)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(graders)) + 0.4 - width / 2, graders)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean score")
    ax.set_title(f"{run.id} ({run.summary['n']} items)")
    ax.legend()
    fig.savefig(out, bbox_inches="tight")


def plot_history(runs, out: Path, plt) -> None:
    """Mean score per model over the runs of one eval set, oldest first."""
    series: dict[str, tuple[list, list]] = {}
    for run in sorted(runs, key=lambda r: r.created_at):
        for name, s in (run.summary or {}).get("models", {}).items():
            series.setdefault(name, ([], []))
            series[name][0].append(run.created_at)
            series[name][1].append(s["mean"])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, "o-", label=name)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean score")
    ax.set_xlabel("run")
    ax.legend()
    fig.autofmt_xdate()
    fig.savefig(out, bbox_inches="tight")


def register(main: click.Group, open_platform, data_dir_option, cli_errors) -> None:
    @main.group("eval")
    def eval_group():
        """Evaluations: eval runs over eval sets, comparisons, plots, lm-eval-harness."""

    @eval_group.command("run")
    @click.option("--project", required=True)
    @click.option("--model", "models", multiple=True, required=True,
                  help='A model id, or a variant {"model": id, "name": ..., "system": ...}; give two to compare.')
    @click.option("--set", "eval_set", required=True, help="An eval file id, or a local JSONL to upload.")
    @click.option("--grader", "graders", multiple=True, help="A grader type (includes) or a JSON object; "
                  "default: includes.")
    @click.option("--name", default=None)
    @click.option("--max-tokens", type=int, default=64, show_default=True)
    @click.option("--no-wait", is_flag=True, help="Print the run id and return.")
    @data_dir_option
    @cli_errors
    def run(project, models, eval_set, graders, name, max_tokens, no_wait, data_dir):
        """Queue an eval run (the running gateway does it), follow it, show the comparison."""
        from rixin.evals.service import start_run

        platform = open_platform(data_dir)
        caller = project_caller(platform, project)
        file_id = eval_set
        if Path(eval_set).is_file():
            file_id = upload_local(platform, caller, Path(eval_set), purpose="evals").id
        run = start_run(platform, caller, models=[json_option("model", m, str) for m in models],
                        eval_file_id=file_id, name=name,
                        graders=[json_option("grader", g, lambda t: {"type": t}) for g in graders]
                        or [{"type": "includes"}],
                        max_tokens=max_tokens)
        if not no_wait:
            show_run(platform, caller, follow(platform, caller, run.id))
        click.echo(run.id)

    @eval_group.command("list")
    @click.option("--project", required=True)
    @click.option("--set", "eval_file_id", default=None, help="Only runs on this eval file id.")
    @data_dir_option
    @cli_errors
    def list_(project, eval_file_id, data_dir):
        """Eval runs of a project, newest first."""
        from rixin.evals.service import list_runs

        platform = open_platform(data_dir)
        rows, _ = list_runs(platform, project_caller(platform, project), eval_file_id=eval_file_id, limit=100)
        table = Table("name", "status", "set", "models", "means", "created")
        table.add_column("id", no_wrap=True)  # last and whole: people copy it into `eval show`
        for r in rows:
            means = ", ".join(f"{s['mean']:.3f}" for s in (r.summary or {}).get("models", {}).values())
            table.add_row(r.name or "", r.status, r.eval_file_id or "",
                          ", ".join(m if isinstance(m, str) else m.get("name") or m["model"] for m in r.models),
                          means, str(r.created_at)[:19], r.id)
        console.print(table)

    @eval_group.command("show")
    @click.argument("run_id")
    @click.option("--project", required=True)
    @data_dir_option
    @cli_errors
    def show(run_id, project, data_dir):
        """A run's summary, side-by-side per-item table and the confidence interval."""
        from rixin.evals.service import get_run

        platform = open_platform(data_dir)
        caller = project_caller(platform, project)
        show_run(platform, caller, get_run(platform, caller, run_id))

    @eval_group.command("plot")
    @click.argument("run_id", required=False)
    @click.option("--project", required=True)
    @click.option("--set", "eval_file_id", default=None, help="Plot mean scores over time for this eval set.")
    @click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
    @data_dir_option
    @cli_errors
    def plot(run_id, project, eval_file_id, out, data_dir):
        """Per-grader bars of one run, or scores over time per model for an eval set."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from rixin.evals.service import get_run, list_runs

        if bool(run_id) == bool(eval_file_id):
            raise InvalidRequest("Give a RUN id or --set FILE_ID (one of them).", param="run_id")
        platform = open_platform(data_dir)
        caller = project_caller(platform, project)
        if run_id:
            run = get_run(platform, caller, run_id)
            if run.status != "succeeded":
                raise InvalidRequest(f"Run {run_id} is {run.status}; only finished runs have scores.", param="run_id")
            plot_run(run, out, plt)
        else:
            runs, _ = list_runs(platform, caller, eval_file_id=eval_file_id, limit=1000)
            done = [r for r in runs if r.status == "succeeded"]
            if not done:
                raise InvalidRequest(f"No finished runs on {eval_file_id}.", param="set")
            plot_history(done, out, plt)
        click.echo(str(out))

    @eval_group.command("harness")
    @click.option("--model", required=True, help="A rixin model id (served by the gateway at --url).")
    @click.option("--tasks", required=True, help="A task YAML file or a directory of them (local data only).")
    @click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The gateway.")
    @click.option("--api-key", envvar="RIXIN_API_KEY", required=True, help="A key of the project (or $RIXIN_API_KEY).")
    @click.option("--limit", type=int, default=None, help="At most this many items per task.")
    @click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the results JSON here.")
    @cli_errors
    def harness(model, tasks, url, api_key, limit, out):
        """Run lm-eval-harness tasks against MODEL through rixin's OpenAI-compatible endpoint."""
        from rixin.evals.harness import run_harness

        results = run_harness(model=model, tasks=Path(tasks), base_url=url, api_key=api_key, limit=limit)
        table = Table("task", "metric", "value")
        for task, metrics in results["results"].items():
            for metric, value in metrics.items():
                if isinstance(value, int | float) and not metric.endswith("_stderr,none"):
                    table.add_row(task, metric, f"{value:.4f}")
        console.print(table)
        if out:
            out.write_text(json.dumps(results, indent=2, default=str))
            click.echo(str(out))

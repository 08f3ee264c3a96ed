"""`rixin eval …`: run evaluations (the gateway's runner does the work), follow them live,
compare models side by side, plot scores; run lm-eval-harness tasks against a live server.
Every command is a client of the gateway's /v1/evals routes."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.table import Table

from rixin.cli.client import Api, api_options, cli_errors, console
from rixin.errors import InvalidRequest

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


def run_progress(run: dict) -> tuple[str, int | None, int]:
    p = run.get("progress") or {}
    return f"{run['status']} {p.get('stage', '')}".strip(), p.get("items_total"), p.get("items_done", 0)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"


def show_run(api: Api, run: dict) -> None:
    """Summary per model and grader, the per-item side-by-side table, the difference with its CI."""
    if run["status"] != "succeeded":
        error = run.get("error") or {}
        console.print(f"{run['id']}: {run['status']}" + (f" — {error['message']}" if error.get("message") else ""))
        return
    summary = run["summary"]
    names = list(summary["models"])
    graders = list(summary["models"][names[0]]["graders"])
    table = Table("model", "mean", *graders, title=f"{run['id']} {run['name'] or ''} — {summary['n']} items")
    for name in names:
        s = summary["models"][name]
        table.add_row(name, f"{s['mean']:.3f}", *(f"{s['graders'][g]:.3f}" for g in graders))
    console.print(table)
    side = Table("item", "ideal", *(f"{n} (score)" for n in names), *(["b − a"] if len(names) == 2 else []))
    for it in api.offset_pages(f"/v1/evals/runs/{run['id']}/items", limit=1000):
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

    summary = run["summary"]
    names = list(summary["models"])
    graders = list(summary["models"][names[0]]["graders"]) + ["mean"]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(graders) * len(names)), 4), dpi=120)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        s = summary["models"][name]
        values = [s["graders"][g] for g in graders[:-1]] + [s["mean"]]
        ax.bar(np.arange(len(graders)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(graders)) + 0.4 - width / 2, graders)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean score")
    ax.set_title(f"{run['id']} ({summary['n']} items)")
    ax.legend()
    fig.savefig(out, bbox_inches="tight")


def plot_history(runs, out: Path, plt) -> None:
    """Mean score per model over the runs of one eval set, oldest first."""
    series: dict[str, tuple[list, list]] = {}
    for run in sorted(runs, key=lambda r: r["created_at"]):
        for name, s in (run["summary"] or {}).get("models", {}).items():
            series.setdefault(name, ([], []))
            series[name][0].append(datetime.fromtimestamp(run["created_at"], timezone.utc))
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


def register(main: click.Group) -> None:
    @main.group("eval")
    def eval_group():
        """Evaluations: eval runs over eval sets, comparisons, plots, lm-eval-harness."""

    @eval_group.command("run")
    @click.option("--model", "models", multiple=True, required=True,
                  help='A model id, or a variant {"model": id, "name": ..., "system": ...}; give two to compare.')
    @click.option("--set", "eval_set", required=True, help="An eval file id, or a local JSONL to upload.")
    @click.option("--grader", "graders", multiple=True, help="A grader type (includes) or a JSON object; "
                  "default: includes.")
    @click.option("--name", default=None)
    @click.option("--max-tokens", type=int, default=64, show_default=True)
    @click.option("--no-wait", is_flag=True, help="Print the run id and return.")
    @api_options
    @cli_errors
    def run(models, eval_set, graders, name, max_tokens, no_wait, api):
        """Queue an eval run (the gateway does it), follow it, show the comparison; prints the run id last."""
        body = {"models": [json_option("model", m, str) for m in models],
                "eval_file_id": api.file_id(eval_set, "evals"), "name": name, "max_tokens": max_tokens,
                "graders": [json_option("grader", g, lambda t: {"type": t}) for g in graders]
                or [{"type": "includes"}]}
        run = api.post("/v1/evals/runs", {k: v for k, v in body.items() if v is not None})
        if not no_wait:
            show_run(api, api.follow(f"/v1/evals/runs/{run['id']}", run_progress))
        click.echo(run["id"])

    @eval_group.command("list")
    @click.option("--set", "eval_file_id", default=None, help="Only runs on this eval file id.")
    @api_options
    @cli_errors
    def list_(eval_file_id, api):
        """Eval runs of the project, newest first (the 100 newest)."""
        rows = api.get("/v1/evals/runs", eval_file_id=eval_file_id, limit=100)["data"]
        table = Table("name", "status", "set", "models", "means", "created")
        table.add_column("id", no_wrap=True)  # last and whole: people copy it into `eval show`
        for r in rows:
            means = ", ".join(f"{s['mean']:.3f}" for s in (r["summary"] or {}).get("models", {}).values())
            created = datetime.fromtimestamp(r["created_at"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(r["name"] or "", r["status"], r["eval_file_id"] or "",
                          ", ".join(m if isinstance(m, str) else m.get("name") or m["model"] for m in r["models"]),
                          means, created, r["id"])
        console.print(table)

    @eval_group.command("show")
    @click.argument("run_id")
    @api_options
    @cli_errors
    def show(run_id, api):
        """A run's summary, side-by-side per-item table and the confidence interval."""
        show_run(api, api.get(f"/v1/evals/runs/{run_id}"))

    @eval_group.command("plot")
    @click.argument("run_id", required=False)
    @click.option("--set", "eval_file_id", default=None, help="Plot mean scores over time for this eval set.")
    @click.option("-o", "--out", type=click.Path(path_type=Path), required=True)
    @api_options
    @cli_errors
    def plot(run_id, eval_file_id, out, api):
        """Per-grader bars of one run, or scores over time per model for an eval set."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if bool(run_id) == bool(eval_file_id):
            raise InvalidRequest("Give a RUN id or --set FILE_ID (one of them).", param="run_id")
        if run_id:
            run = api.get(f"/v1/evals/runs/{run_id}")
            if run["status"] != "succeeded":
                raise InvalidRequest(f"Run {run_id} is {run['status']}; only finished runs have scores.",
                                     param="run_id")
            plot_run(run, out, plt)
        else:
            done = [r for r in api.pages("/v1/evals/runs", eval_file_id=eval_file_id) if r["status"] == "succeeded"]
            if not done:
                raise InvalidRequest(f"No finished runs on {eval_file_id}.", param="set")
            plot_history(done, out, plt)
        click.echo(str(out))

    @eval_group.command("harness")
    @click.option("--model", required=True, help="A rixin model id (served by the gateway at --url).")
    @click.option("--tasks", required=True, help="A task YAML file or a directory of them (local data only).")
    @click.option("--limit", type=int, default=None, help="At most this many items per task.")
    @click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the results JSON here.")
    @api_options
    @cli_errors
    def harness(model, tasks, limit, out, api):
        """Run lm-eval-harness tasks against MODEL through rixin's OpenAI-compatible endpoint."""
        from rixin.evals.harness import run_harness

        api.me()  # a wrong key or url fails here, clearly, rather than inside lm-eval
        results = run_harness(model=model, tasks=Path(tasks), base_url=api.url, api_key=api.key, limit=limit)
        table = Table("task", "metric", "value")
        for task, metrics in results["results"].items():
            for metric, value in metrics.items():
                if isinstance(value, int | float) and not metric.endswith("_stderr,none"):
                    table.add_row(task, metric, f"{value:.4f}")
        console.print(table)
        if out:
            out.write_text(json.dumps(results, indent=2, default=str))
            click.echo(str(out))

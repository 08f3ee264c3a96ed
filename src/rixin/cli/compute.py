"""`rixin quota show|set` and `rixin usage`: the shared compute's operator surface, over the Admin
API (/v1/organization/…, docs/usage.md). Values are typed as a person writes them (`10GB`,
`gpu=1`) and checked here, so a typo is a usage error (exit status 2) before any request."""

from __future__ import annotations

import json
import math
import re
import time
from collections import defaultdict

import click
from rich.table import Table

from rixin.cli.client import Api, ApiError, api_options, cli_errors, console

# Ray spells its accelerator resources in capitals; a lower-case `gpu=1` would name a class no
# node advertises, and the guarantee would never be usable.
RAY_NAMES = {"gpu": "GPU", "npu": "NPU", "hpu": "HPU", "tpu": "TPU"}
UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
         "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
NONE = ("none", "null", "unlimited")
GROUPS = {"project": "project_id", "model": "model", "day": "day"}


def parse_bytes(value: str) -> int | None:
    """`10GB` (powers of 1000), `1.5GiB` (powers of 1024), `1024`; `none` = no limit."""
    if value.strip().lower() in NONE:
        return None
    m = SIZE.match(value)
    if not m or m.group(2).lower() not in UNITS:
        raise click.BadParameter(f"{value!r} is not a size: write e.g. 500MB, 10GB, 1.5GiB or a "
                                 "number of bytes (or 'none' for no limit).", param_hint="--storage-bytes")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def parse_amounts(value: str, option: str) -> dict[str, float]:
    """`cpu=2,gpu=1,job_slot=1` → {"cpu": 2.0, "GPU": 1.0, "job_slot": 1.0}; empty = none."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, eq, amount = item.partition("=")
        try:
            number = float(amount)
        except ValueError:
            number = -1.0
        if not eq or not name.strip() or not math.isfinite(number) or number < 0:
            raise click.BadParameter(f"{item!r} is not CLASS=AMOUNT: write e.g. job_slot=2,gpu=1 "
                                     "(amounts are numbers ≥ 0).", param_hint=option)
        out[RAY_NAMES.get(name.strip().lower(), name.strip())] = number
    return out


def parse_number(value: str, kind: type, low: float, option: str) -> int | float | None:
    """A number ≥ `low` (int or float), or None for `none` (no limit)."""
    if value.strip().lower() in NONE:
        return None
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number < low:
        raise click.BadParameter(f"{value!r}: give a number ≥ {low:g}, or 'none' for no limit.",
                                 param_hint=option)
    return number


def human_bytes(n: int | None) -> str:
    """`10 GB`, `1.5 GiB`: the unit that shows the limit exactly, else 3 digits in powers of 1000."""
    if n is None:
        return "no limit"
    units = [(u, UNITS[u.lower()]) for u in ("TB", "TiB", "GB", "GiB", "MB", "MiB", "kB", "KiB")]
    exact = [(u, s) for u, s in units if n >= s and n * 100 % s == 0]
    unit, size = exact[0] if exact else next(((u, s) for u, s in units if n >= s and "i" not in u), ("B", 1))
    return f"{n / size:.3g} {unit}" if size > 1 else f"{n} B"


def amounts(value: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(value.items())) or "-"


def quota_table(quotas: list[dict]) -> Table:
    t = Table("project", "guaranteed", "borrow limit", "running jobs", "storage", "budget (USD/month)")
    for q in quotas:
        t.add_row(q["project"], amounts(q["guaranteed"]), amounts(q["borrow_limit"]),
                  "default" if q["running_jobs"] is None else str(q["running_jobs"]),
                  human_bytes(q["storage_bytes"]), "no limit" if q["budget"] is None else f"{q['budget']:g}")
    return t


def quota_path(project: str) -> str:
    return f"/v1/organization/projects/{project}/quota"


def register(main: click.Group) -> None:
    @main.group()
    def quota():
        """Projects' shares of the compute, storage and spend (admin key)."""

    @quota.command("show")
    # (the project is `ref` in Python: api_options takes a `project` keyword of its own)
    @click.argument("ref", metavar="[PROJECT]", required=False)
    @click.option("--json", "as_json", is_flag=True, help="Print the quota objects as JSON.")
    @api_options(project_check=False)
    @cli_errors
    def quota_show(ref, as_json, api):
        """One project's quota (name or id), or every project's."""
        names = [ref] if ref else [p["id"] for p in api.get("/v1/organization/projects")["data"]]
        quotas = [api.get(quota_path(p)) for p in names]
        if as_json:
            click.echo(json.dumps(quotas if ref is None else quotas[0], indent=2))
        else:
            console.print(quota_table(quotas))

    @quota.command("set")
    @click.argument("ref", metavar="PROJECT")
    @click.option("--guaranteed", default=None, help="Capacity always available to the project, CLASS=AMOUNT,… "
                  "(e.g. job_slot=2,gpu=1; gpu/npu/hpu/tpu are Ray's GPU/NPU/HPU/TPU); '' clears it.")
    @click.option("--borrow-limit", default=None, help="How much above the guarantee the project may "
                  "borrow while others leave it idle, CLASS=AMOUNT,… (a class not named: no limit).")
    @click.option("--running-jobs", default=None,
                  help="Jobs of the project running at once ('none': the gateway's default).")
    @click.option("--storage-bytes", default=None, help="Bytes of files the project may store: 500MB, "
                  "10GB, 1.5GiB ('none': no limit).")
    @click.option("--budget", default=None,
                  help="Monthly spend limit in USD ('none': no limit).")
    @api_options(project_check=False)
    @cli_errors
    def quota_set(ref, guaranteed, borrow_limit, running_jobs, storage_bytes, budget, api):
        """Change the options given; the rest of PROJECT's quota stays as it is."""
        parsers = {"guaranteed": (guaranteed, lambda v: parse_amounts(v, "--guaranteed")),
                   "borrow_limit": (borrow_limit, lambda v: parse_amounts(v, "--borrow-limit")),
                   "running_jobs": (running_jobs, lambda v: parse_number(v, int, 1, "--running-jobs")),
                   "storage_bytes": (storage_bytes, parse_bytes),
                   "budget": (budget, lambda v: parse_number(v, float, 0, "--budget"))}
        changes = {name: parse(value) for name, (value, parse) in parsers.items() if value is not None}
        if not changes:
            raise click.UsageError("Nothing to set: give --guaranteed, --borrow-limit, --running-jobs, "
                                   "--storage-bytes or --budget.")
        now = api.get(quota_path(ref))
        keep = ("guaranteed", "borrow_limit", "running_jobs", "storage_bytes", "budget")
        body = {k: now[k] for k in keep} | changes
        new = api.request("PUT", quota_path(ref), json=body)
        console.print(quota_table([new]))

    @main.command()
    @click.option("--project", "ref", default=None, help="Only this project (name or id); a project "
                  "key sees its own project only.")
    @click.option("--model", default=None, help="Only this model.")
    @click.option("--days", default=7, show_default=True, type=click.IntRange(1, 366),
                  help="Calendar days (UTC) up to today.")
    @click.option("--group-by", "group_by", default="model", show_default=True,
                  type=click.Choice(list(GROUPS)), help="One row per project, model or day.")
    @click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
    @api_options(project_check=False)
    @cli_errors
    def usage(ref, model, days, group_by, as_json, api):
        """Tokens (input, cached, output) and cost of model requests, from the gateway's meter."""
        rows = usage_rows(api, ref, model, days, GROUPS[group_by])
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        t = Table(group_by, "requests", "input tokens", "cached input", "output tokens", "cost (USD)")
        for r in rows + [total(rows)] if rows else []:
            t.add_row(str(r["key"]), f"{r['requests']:,}", f"{r['input_tokens']:,}",
                      f"{r['input_cached_tokens']:,}", f"{r['output_tokens']:,}", f"{r['cost']:.4f}")
        console.print(t if rows else f"No model requests in the last {days} day(s).")


def scope(api: Api, project: str | None) -> tuple[str, list[str], dict[str, str]]:
    """(where usage is read, the project_ids filter, id → name of the projects the key may see):
    an admin key reads /v1/organization/ (every project), a project key /v1/me/ (its own)."""
    try:
        names = {p["id"]: p["name"] for p in api.get("/v1/organization/projects")["data"]}
        prefix = "/v1/organization"
    except ApiError as e:
        if e.status != 403:
            raise
        me = api.me()
        names, prefix = {me["project_id"]: me["project"]}, "/v1/me"
    if project is None:
        return prefix, [], names
    found = [pid for pid, name in names.items() if project in (pid, name)]
    if not found:
        raise ApiError(f"No project {project!r} that this key may read.", status=404, param="project",
                       hint="A project key reads its own project's usage only; an admin key reads every project's.")
    return prefix, found, names


def buckets(api: Api, path: str, params: dict) -> list[dict]:
    """Every daily bucket of a usage or costs query (following next_page)."""
    out, page = [], None
    while True:
        answer = api.get(path, **params, page=page)
        out += answer["data"]
        page = answer.get("next_page")
        if not answer.get("has_more") or page is None:
            return out


def usage_rows(api: Api, project: str | None, model: str | None, days: int, by: str) -> list[dict]:
    """Rows of tokens and cost per `by` (project_id, model or day), largest cost first (days in order)."""
    prefix, ids, names = scope(api, project)
    today = int(time.time()) // 86400 * 86400
    base = {"start_time": today - (days - 1) * 86400, "bucket_width": "1d", "limit": 31,
            "project_ids": ids or None, "models": [model] if model else None}
    rows = defaultdict(lambda: {"requests": 0, "input_tokens": 0, "input_cached_tokens": 0, "output_tokens": 0,
                                "cost": 0.0})

    def key(bucket: dict, result: dict, model_field: str) -> str:
        if by == "day":
            return time.strftime("%Y-%m-%d", time.gmtime(bucket["start_time"]))
        if by == "project_id":
            return names.get(result["project_id"], result["project_id"])
        return result[model_field]

    for kind in ("completions", "embeddings"):
        for b in buckets(api, f"{prefix}/usage/{kind}", {**base, "group_by": ["project_id", "model"]}):
            for r in b["results"]:
                row = rows[key(b, r, "model")]
                row["requests"] += r["num_model_requests"]
                for field in ("input_tokens", "input_cached_tokens", "output_tokens"):
                    row[field] += r.get(field) or 0
    for b in buckets(api, f"{prefix}/costs", {**base, "group_by": ["project_id", "line_item"]}):
        for r in b["results"]:
            rows[key(b, r, "line_item")]["cost"] += r["amount"]["value"]
    out = [{"key": k, **v} for k, v in rows.items()]
    return sorted(out, key=lambda r: r["key"]) if by == "day" else sorted(out, key=lambda r: (-r["cost"], r["key"]))


def total(rows: list[dict]) -> dict:
    return {"key": "total", **{f: sum(r[f] for r in rows) for f in
                               ("requests", "input_tokens", "input_cached_tokens", "output_tokens", "cost")}}

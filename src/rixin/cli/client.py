"""The CLI's one way to a gateway: an HTTP client of the API, as the `openai` CLI is.

Every command but `up`, the bootstrap `keys create` and the offline `models add`/`export`
goes through `Api`: the Bearer key chooses the project, the gateway's job runner does the
work, and the CLI follows the job's status until it ends. An OpenAI-shaped error answer
becomes an `ApiError`, which `cli_errors` prints as a message and a hint (exit status 2)."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rixin.errors import RixinError

DEFAULT_URL = "http://127.0.0.1:8000"  # `rixin up`'s default host and port
FINAL = ("succeeded", "failed", "cancelled")
POLL_S = 0.5  # between two looks at a followed job: a light GET, and the progress bar stays live

console = Console()
if not console.is_terminal:  # piped or captured: keep ids whole rather than wrapped at 80
    console = Console(width=200)

HINTS = {
    401: "Pass a key of the project with --key or RIXIN_API_KEY (make one with "
         "`rixin keys create --project NAME`).",
    403: "This needs an admin key (RIXIN_ADMIN_KEY or the key the first `rixin up` printed).",
    404: "Check the id; ids are per project, and the key chooses the project.",
}


class ApiError(RixinError):
    """An error answer of the gateway (or no gateway at all), with what to do about it."""

    def __init__(self, message: str, *, status: int = 0, param: str | None = None, code: str | None = None,
                 hint: str | None = None):
        super().__init__(message, param=param, code=code)
        self.status = status
        self.hint = hint if hint is not None else HINTS.get(status)


class Api:
    """A gateway at `url`, reached with `key` (its project is the caller's project)."""

    def __init__(self, url: str, key: str | None, timeout: float = 120):
        self.url, self.key = url.rstrip("/"), key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, *, also_ok: tuple[int, ...] = (), **kwargs) -> dict:
        """The JSON answer; an error answer (other than `also_ok`) raises ApiError."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise ApiError(f"No rixin gateway answers at {self.url} ({e}).",
                           hint="Start one with `rixin up`, or pass --url / RIXIN_BASE_URL.") from e
        if response.is_success or response.status_code in also_ok:
            return response.json()
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        raise ApiError(error.get("message") or f"HTTP {response.status_code} from {method} {path}",
                       status=response.status_code, param=error.get("param"), code=error.get("code"))

    def get(self, path: str, **params) -> dict:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict | None = None) -> dict:
        return self.request("POST", path, json=body if body is not None else {})

    def delete(self, path: str) -> dict:
        return self.request("DELETE", path)

    def upload(self, path: Path, purpose: str) -> dict:
        """POST /v1/files: a file of this machine becomes a file object of the project."""
        with path.open("rb") as f:
            return self.request("POST", "/v1/files", data={"purpose": purpose}, files={"file": (path.name, f)})

    def file_id(self, value: str | None, purpose: str) -> str | None:
        """A file id stays an id; a path of this machine is uploaded and its new id returned."""
        if value is None or not Path(value).is_file():
            return value
        return self.upload(Path(value), purpose)["id"]

    def pages(self, path: str, limit: int = 100, **params):
        """Every object of a cursor-paged list (`has_more`, `after` = the last id)."""
        after = None
        while True:
            page = self.get(path, limit=limit, after=after, **params)
            yield from page["data"]
            if not page.get("has_more") or not page["data"]:
                return
            after = page["data"][-1]["id"]

    def offset_pages(self, path: str, limit: int = 100, **params):
        """Every object of an offset-paged list."""
        offset = 0
        while True:
            page = self.get(path, limit=limit, offset=offset, **params)
            yield from page["data"]
            offset += len(page["data"])
            if not page.get("has_more") or not page["data"]:
                return

    def me(self) -> dict:
        return self.get("/v1/me")

    def follow(self, path: str, describe: Callable[[dict], tuple[str, int | None, int]],
               done: Callable[[dict], bool] = lambda o: o["status"] in FINAL) -> dict:
        """Poll GET `path` and show `describe(object)` = (stage, total, completed) as a progress
        bar until `done(object)`; returns the last object. Ctrl-C stops following, not the job."""
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, console=console, transient=False) as progress:
                task = progress.add_task("queued", total=None)
                while True:
                    obj = self.get(path)
                    stage, total, completed = describe(obj)
                    progress.update(task, description=stage, total=total, completed=completed)
                    if done(obj):
                        return obj
                    time.sleep(POLL_S)
        except KeyboardInterrupt:
            click.echo(f"Stopped following {self.url}{path}; the gateway carries on with it.", err=True)
            sys.exit(130)


def job_progress(job: dict) -> tuple[str, int | None, int]:
    """A data job's (cleaning, labeling) shard progress, for `Api.follow`."""
    p = job.get("progress") or {}
    stage = p.get("stage") if job["status"] == "running" else job["status"]
    return stage or job["status"], p.get("shards_total"), p.get("shards_done", 0)


def check_ended(obj: dict, what: str) -> dict:
    """A followed job that did not succeed is an error of the command."""
    if obj["status"] != "succeeded":
        error = obj.get("error") or {}
        raise ApiError(f"{what} {obj['id']} {obj['status']}: {error.get('message') or json.dumps(error)}",
                       hint="")
    return obj


def cli_errors(fn):
    """The one mapper from rixin errors to CLI output: a message (and a hint) on stderr, exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RixinError as e:
            where = f" ({e.param})" if e.param else ""
            click.echo(f"error{where}: {e.message}", err=True)
            if isinstance(e, ApiError) and e.hint:
                click.echo(f"hint: {e.hint}", err=True)
            sys.exit(2)

    return wrapper


def api_options(fn=None, *, project_check: bool = True):
    """`--url`, `--key` and `--project` on a command; the command receives `api: Api`.

    The url and key default to the group's (`rixin --url … --key … COMMAND`), then to
    RIXIN_BASE_URL / RIXIN_API_KEY. `--project` is a check: the key chooses the project, and a
    key of another project is refused here rather than acting on the wrong data. Commands whose
    own `--project` names another project (admin `keys list`) pass project_check=False."""
    if fn is None:
        return functools.partial(api_options, project_check=project_check)

    @functools.wraps(fn)
    @cli_errors  # the --project check below fails like the command would
    def wrapper(*args, url, key, project=None, **kwargs):
        api = make_api(url, key)
        if project is not None:
            mine = api.me()["project"]
            if mine != project:
                raise ApiError(f"The key belongs to project '{mine}', not '{project}'.", param="project",
                               hint=f"Pass a key of '{project}' (`rixin keys create --project {project}`).")
        return fn(*args, api=api, **kwargs)

    if project_check:
        wrapper = click.option("--project", default=None,
                               help="Fail unless the key belongs to this project (the key chooses it).")(wrapper)
    wrapper = click.option("--key", "--api-key", "key", default=None,
                           help="An API key; it chooses the project (default: $RIXIN_API_KEY).")(wrapper)
    return click.option("--url", default=None,
                        help=f"The gateway (default: $RIXIN_BASE_URL or {DEFAULT_URL}).")(wrapper)


def make_api(url: str | None, key: str | None, fallback_key_env: str | None = None) -> Api:
    root = (click.get_current_context(silent=True) or click.Context(click.Command("rixin"))).find_root().obj or {}
    url = url or root.get("url") or os.environ.get("RIXIN_BASE_URL") or DEFAULT_URL
    key = key or root.get("key") or os.environ.get("RIXIN_API_KEY")
    if not key and fallback_key_env:
        key = os.environ.get(fallback_key_env)
    return Api(url, key)

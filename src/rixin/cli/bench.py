"""`rixin bench NAME [ARGS]`: run one of the benchmarks in the source checkout's bench/.

The benchmarks are scripts (bench/README.md says what each measures and against which
peer); this command finds them next to the installed package and runs one with this
interpreter, passing every further argument through (`rixin bench serve --help`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from rixin.cli.client import cli_errors
from rixin.errors import RixinError

SCRIPTS = {"serve": "serve.py", "train": "train.py", "data": "clean.py", "recovery": "recovery.py",
           "evals": "evals.py", "logs": "request_logs.py"}


def bench_dir() -> Path:
    import rixin

    here = Path(rixin.__file__).resolve().parents[2] / "bench"  # src/rixin/__init__.py → checkout
    if not (here / "serve.py").is_file():
        raise RixinError("The benchmarks live in the bench/ folder of a rixin source checkout, which this "
                         "installation does not have: clone the repository and run scripts/install.sh --dev.")
    return here


def register(main: click.Group) -> None:
    @main.command("bench", context_settings={"ignore_unknown_options": True,
                                             "allow_interspersed_args": False})
    @click.argument("name", type=click.Choice(sorted(SCRIPTS)))
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @cli_errors
    def bench(name: str, args: tuple[str, ...]) -> None:
        """Run benchmark NAME (serve, train, data, recovery, evals, logs) against its peer; results
        go to bench/results/. Further arguments go to the script: `rixin bench serve --help`."""
        here = bench_dir()
        code = subprocess.call([sys.executable, str(here / SCRIPTS[name]), *args], cwd=here.parent)
        sys.exit(code)

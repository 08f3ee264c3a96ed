"""`rixin bench NAME`: the benchmarks in bench/ reached through the CLI (issue 7)."""

from __future__ import annotations

import subprocess

import pytest

from conftest import RIXIN
from rixin.cli.bench import SCRIPTS, bench_dir


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_benchmark_runs_through_the_cli(name):
    # --help parses the script's arguments and exits without running anything.
    done = subprocess.run([RIXIN, "bench", name, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"usage: {SCRIPTS[name]}" in done.stdout
    assert (bench_dir() / SCRIPTS[name]).is_file()


def test_an_unknown_benchmark_is_a_usage_error_that_lists_the_names():
    done = subprocess.run([RIXIN, "bench", "speed"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "'speed' is not one of" in done.stderr and "'serve'" in done.stderr

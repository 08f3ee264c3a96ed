"""What every benchmark records and writes, defined once: the machine record, the load average,
library versions, where results go (with the command that made them) and the summaries
(median of the per-repeat ratios ours ÷ peer).

Standard library only at import time: clean.py's Data-Juicer child imports this module under
a venv that has neither rixin nor the bench's extras.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from datetime import date
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS = {"sse4_2", "popcnt", "aes", "sha_ni", "bmi2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
         "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}


# ---------------------------------------------------------------------------- the machine


def machine() -> dict:
    """Cores, CPU model, the instruction-set flags that matter for these kernels, memory, Python."""
    flags, model = set(), ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "cpu": model, "memory": " ".join(mem.split()[1:]),
            "flags": sorted(flags & FLAGS), "python": sys.version.split()[0]}


def load_avg() -> float:
    """The 1-minute load average: recorded with every repeat, since the machines are shared."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def versions(names: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """Installed version of each distribution, None where it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------------------- results


def today() -> str:
    return date.today().isoformat()


def command(script: str) -> str:
    """The command line that made a result, as a reader reruns it from the checkout."""
    return " ".join([".venv/bin/python", f"bench/{script}", *sys.argv[1:]])


def results_stem(name: str, tag: str = "", out: Path = RESULTS) -> Path:
    """`out/NAME-DATE[-TAG]`, the common stem of a run's .json, .md and .png (out is created)."""
    out.mkdir(parents=True, exist_ok=True)
    return out / f"{name}-{today()}{'-' + tag if tag else ''}"


def write_json(stem: Path, result: Any, indent: int = 1, ensure_ascii: bool = True) -> Path:
    path = stem.with_suffix(".json")
    path.write_text(json.dumps(result, indent=indent, ensure_ascii=ensure_ascii))
    return path


def write_markdown(stem: Path, text: str) -> Path:
    path = stem.with_suffix(".md")
    path.write_text(text)
    return path


def start_plot():
    """matplotlib's pyplot on the file-only backend (no display on the benchmark machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------- summaries


def median(values) -> float | None:
    """Median of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def pair_ratios(ours: list, peer: list, value: str | Callable[[Any], float | None]) -> list[float]:
    """ours ÷ peer repeat by repeat (same repeat, same work: the pairs the interleaving made).
    A pair where ours has no value, or the peer none or 0, is left out."""
    get = value if callable(value) else (lambda run: run[value])
    out = []
    for a, b in zip(ours, peer):
        x, y = get(a), get(b)
        if x is not None and y:
            out.append(x / y)
    return out

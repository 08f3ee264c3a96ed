"""The machine record every benchmark writes next to its numbers: cores, CPU, flags, memory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

FLAGS = {"sse4_2", "popcnt", "aes", "sha_ni", "bmi2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
         "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}


def machine() -> dict:
    flags, model = set(), ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "cpu": model, "memory": " ".join(mem.split()[1:]),
            "flags": sorted(flags & FLAGS), "python": sys.version.split()[0]}

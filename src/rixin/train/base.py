"""Where a fine-tuning job gets its starting weights.

transformers trains safetensors checkpoints; a GGUF base (the bundled model) is converted
once into <data_dir>/models/hf/<model id>/ (dequantised to float32, tokenizer and chat
template included) by a Ray task, written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from rixin.errors import InvalidRequest
from rixin.store.schema import Model


@dataclass(frozen=True)
class Start:
    base_model: str          # the root base model id (ft ids are named after it)
    base_dir: str            # HF-format directory of the base weights
    init_adapter: str | None  # the parent's LoRA adapter (incremental training)
    init_full: str | None     # the parent's full weights (incremental full fine-tuning)


def convert_gguf(gguf_path: str, target: str) -> str:
    """GGUF → HF safetensors directory (runs as a Ray task: keeps torch out of the gateway)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = Path(gguf_path)
    tmp = Path(target + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    # The weights are dequantised to float32 on load; transformers still flags the model as
    # GGUF-quantised and refuses to save it. Clear the flag: what we save is plain float32.
    model.hf_quantizer, model.is_quantized = None, False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def hf_dir_for(row: Model, data_dir: Path) -> str:
    if row.format == "hf":
        return row.path
    import ray

    target = data_dir.resolve() / "models" / "hf" / re.sub(r"[^A-Za-z0-9._-]", "_", row.id)
    if not (target / "config.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        ray.get(ray.remote(num_cpus=1)(convert_gguf).remote(row.path, str(target)))
    return str(target)


def starting_point(row: Model, data_dir: Path) -> Start:
    """Base weights (and parent adapter) for training from `row`, a base or an ft: model."""
    if row.kind != "chat":
        raise InvalidRequest(f"The model '{row.id}' is an embedding model; fine-tune a chat model.",
                             param="model", code="model_not_supported")
    meta = row.meta or {}
    if row.source == "fine-tune":
        return Start(meta["base_model"], row.path, meta.get("adapter"), meta.get("full_weights"))
    return Start(row.id, hf_dir_for(row, data_dir), None, None)


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _gguf_width(path: Path) -> int | None:
    """`<arch>.embedding_length` from a GGUF header, read key by key (the header only: the
    gguf package's reader maps every tensor too, which takes seconds on a busy machine)."""
    import struct

    def read(f, fmt):
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

    def string(f):
        return f.read(read(f, "<Q")).decode("utf-8", "replace")

    def value(f, kind):
        if kind == 8:
            return string(f)
        if kind == 9:
            item, count = read(f, "<I"), read(f, "<Q")
            if item in _GGUF_SCALARS:  # skip a numeric array without decoding it
                f.seek(count * struct.calcsize(_GGUF_SCALARS[item]), 1)
                return None
            return [value(f, item) for _ in range(count)]
        return read(f, _GGUF_SCALARS[kind])

    with open(path, "rb") as f:
        if f.read(4) != b"GGUF" or read(f, "<I") < 2:
            return None
        read(f, "<Q")  # tensor count
        arch = None
        for _ in range(read(f, "<Q")):
            key, kind = string(f), read(f, "<I")
            found = value(f, kind)
            if key == "general.architecture":
                arch = found
            elif arch and key == f"{arch}.embedding_length":
                return int(found)
    return None


def model_width(row: Model) -> int | None:
    """The hidden size of a chat model (None when it cannot be read): the learning-rate rule
    scales with it. HF directories (ft: models included) have it in config.json."""
    import json

    try:
        path = Path(row.path)
        if row.format == "gguf" or path.suffix == ".gguf":
            return _gguf_width(path)
        config = json.loads((path / "config.json").read_text())
        config = config.get("text_config", config)
        return int(config.get("hidden_size") or config.get("n_embd") or 0) or None
    except (OSError, ValueError, KeyError, TypeError):
        return None

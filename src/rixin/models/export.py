"""Export a chat model to a GGUF file that the llama.cpp engine serves (fast CPU / on-device).

    HF directory (+ LoRA adapter) ─load, merge_and_unload─▶ float32 torch weights
      ─▶ GGUF: llama.* hyperparameters, gpt2-style BPE tokenizer, chat template,
         tensors renamed (gguf.TensorNameMap), q/k rows permuted, 2-D weights quantised
      ─▶ <out>.tmp-<pid>, fsync, rename

Only the Llama architecture (SmolLM2 is LlamaForCausalLM) with a byte-level BPE tokenizer is
supported; anything else is refused up front, before a weight is read, naming what is
unsupported. The conversion is our own, written against the GGUF format and validated in
tests/test_export.py (llama.cpp vs transformers logits, and the bundled GGUF's own tensors).

Two layout facts drive the code:
- GGUF lists a tensor's dimensions fastest-first: a torch weight (out, in) is written as the
  numpy array (out, in) and read by llama.cpp as ne = [in, out]; quantisation blocks of 32 run
  along `in`.
- transformers' Llama rotates the halves of each head (pairs i, i + head_dim/2); llama.cpp's
  LLaMA rope (ROPE_TYPE_NORM) rotates adjacent pairs (2i, 2i+1). The q and k rows of every
  head are therefore interleaved on export (`permute_qk`); transformers undoes the same
  permutation when it loads a GGUF (which is how the bundled model reached HF format).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rixin.errors import Conflict, InvalidRequest
from rixin.models.registry import MODEL_ID, Registry
from rixin.store.schema import Model

QUANTS = ("f32", "f16", "q8_0", "q4_0")
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
BLOCK = 32  # elements per q8_0 / q4_0 block; rows must be a multiple of it


def _gguf():
    import gguf  # imported late: the gateway never needs it

    return gguf


# ── what to export ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Source:
    """The HF-format weights to export, and the LoRA adapter merged into them (if any)."""

    weights_dir: str
    adapter: str | None = None


def source_of(row: Model) -> Source:
    """Where the weights of a registered chat model lie, or InvalidRequest saying why it cannot
    be exported."""
    if row.kind != "chat":
        raise InvalidRequest(f"The model '{row.id}' is not a chat model ({row.kind}); only chat models "
                             "can be exported to GGUF.", param="model")
    meta = row.meta or {}
    if row.source == "fine-tune":
        if meta.get("full_weights"):
            return Source(meta["full_weights"])
        return Source(row.path, meta.get("adapter"))
    if row.format == "hf":
        return Source(row.path)
    raise InvalidRequest(f"The model '{row.id}' is already a {row.format.upper()} model served by "
                         f"{row.engine}; export fine-tuned or Hugging Face-format models.", param="model")


# ── hyperparameters ────────────────────────────────────────────────────────────────────────


def check_architecture(weights_dir: Path) -> dict:
    """config.json of a supported model, or InvalidRequest naming what we do not support."""
    config_file = weights_dir / "config.json"
    if not config_file.is_file():
        raise InvalidRequest(f"{weights_dir} has no config.json; export needs a Hugging Face-format "
                             "model directory.", param="model")
    config = json.loads(config_file.read_text())
    archs = config.get("architectures") or [config.get("model_type", "unknown")]
    if not any(a in SUPPORTED_ARCHITECTURES for a in archs):
        raise InvalidRequest(f"Cannot export architecture {', '.join(map(str, archs))} to GGUF: only "
                             f"{', '.join(SUPPORTED_ARCHITECTURES)} is supported so far.", param="model")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type != "default":
        raise InvalidRequest(f"Cannot export rope scaling {rope_type!r} to GGUF yet; only unscaled "
                             "rope is supported.", param="model")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise InvalidRequest("Cannot export a Llama model with attention or MLP biases to GGUF yet.",
                             param="model")
    return config


@dataclass(frozen=True)
class Hyper:
    context_length: int
    embedding_length: int
    block_count: int
    feed_forward_length: int
    head_count: int
    head_count_kv: int
    head_dim: int
    rope_freq_base: float
    rms_norm_eps: float
    tied: bool


def hyperparameters(config: dict) -> Hyper:
    heads = config["num_attention_heads"]
    rope = config.get("rope_parameters") or {}
    return Hyper(
        context_length=config.get("max_position_embeddings", 2048),
        embedding_length=config["hidden_size"],
        block_count=config["num_hidden_layers"],
        feed_forward_length=config["intermediate_size"],
        head_count=heads,
        head_count_kv=config.get("num_key_value_heads") or heads,
        head_dim=config.get("head_dim") or config["hidden_size"] // heads,
        # transformers ≥ 5 keeps rope_theta in rope_parameters; older configs at the top level
        rope_freq_base=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
        rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        tied=bool(config.get("tie_word_embeddings", False)),
    )


# ── tokenizer ──────────────────────────────────────────────────────────────────────────────


@dataclass
class Vocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    special: dict[str, int] = field(default_factory=dict)  # bos/eos/unk/pad → id
    add_bos: bool = False
    add_eos: bool = False
    chat_template: str | list | None = None


def _pre_tokenizer_name(pre: dict | None) -> str | None:
    """llama.cpp's name for a byte-level pre-tokenizer we recognise, else None.

    gpt-2: ByteLevel with GPT-2's regex. smollm: single digits split off first, then GPT-2's
    regex (what SmolLM2's own tokenizer.json says; llama.cpp knows it by this name)."""
    if not pre:
        return None
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if steps and len(steps) == 2 and steps[0].get("type") == "Digits" and steps[0].get("individual_digits") \
            and steps[1].get("type") == "ByteLevel" and steps[1].get("use_regex", True):
        return "smollm"
    return None


def _token_text(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def _adds_bos(tokenizer: dict, config: dict) -> bool:
    """Whether encoding a text puts a special token first (TemplateProcessing $A)."""
    if "add_bos_token" in config:
        return bool(config["add_bos_token"])
    post = tokenizer.get("post_processor") or {}
    steps = post.get("processors", [post]) if post.get("type") == "Sequence" else [post]
    for step in steps:
        if step.get("type") == "TemplateProcessing" and step.get("single"):
            return "SpecialToken" in step["single"][0]
    return False


def read_vocab(tokenizer_dir: Path, model_config: dict) -> Vocab:
    """The gpt2-style BPE vocabulary of tokenizer.json as llama.cpp wants it: one token per row
    of the embedding (config.vocab_size), rows past the tokenizer's last id as unused pads."""
    gguf = _gguf()
    tok_file = tokenizer_dir / "tokenizer.json"
    if not tok_file.is_file():
        raise InvalidRequest(f"{tokenizer_dir} has no tokenizer.json; GGUF export supports byte-level "
                             "BPE tokenizers (tokenizer.json) only.", param="model")
    tokenizer = json.loads(tok_file.read_text())
    model = tokenizer.get("model") or {}
    pre = _pre_tokenizer_name(tokenizer.get("pre_tokenizer"))
    if model.get("type") != "BPE" or pre is None:
        described = json.dumps(tokenizer.get("pre_tokenizer"))[:200]
        raise InvalidRequest(f"Cannot export the tokenizer in {tokenizer_dir} to GGUF: only byte-level BPE "
                             f"(GPT-2 / SmolLM pre-tokenizers) is supported; this one is model "
                             f"{model.get('type')!r}, pre-tokenizer {described}.", param="model")
    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    types = {i: int(gguf.TokenType.NORMAL) for i in by_id}
    for added in tokenizer.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        types[added["id"]] = int(gguf.TokenType.CONTROL if added.get("special")
                                 else gguf.TokenType.USER_DEFINED)
    size = model_config["vocab_size"]
    if max(by_id) >= size:
        raise InvalidRequest(f"The tokenizer in {tokenizer_dir} has token id {max(by_id)} but the model's "
                             f"embedding has only {size} rows; resize the embeddings before exporting.",
                             param="model")
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    token_types = [types.get(i, int(gguf.TokenType.UNUSED)) for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    config_file = tokenizer_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    ids = {t: i for i, t in by_id.items()}
    special = {}
    for key in ("bos", "eos", "unk", "pad"):
        text = _token_text(config.get(f"{key}_token"))
        if text is not None and text in ids:
            special[key] = ids[text]
        elif isinstance(model_config.get(f"{key}_token_id"), int):  # a list means several: skip
            special[key] = model_config[f"{key}_token_id"]
    template_file = tokenizer_dir / "chat_template.jinja"
    template = template_file.read_text() if template_file.is_file() else config.get("chat_template")
    return Vocab(tokens, token_types, merges, pre, special, _adds_bos(tokenizer, config),
                 bool(config.get("add_eos_token", False)), template)


# ── tensors ────────────────────────────────────────────────────────────────────────────────


def permute_qk(weight: np.ndarray, n_head: int) -> np.ndarray:
    """(n_head·head_dim, in) rows from rotate-half order to llama.cpp's interleaved order.

    Within a head, HF row i pairs with row i + head_dim/2; llama.cpp pairs rows 2i and 2i+1.
    View the rows as (head, half, i) and swap to (head, i, half): new row 2i+half = old row
    i + half·head_dim/2."""
    out, rest = weight.shape[0], weight.shape[1:]
    return (weight.reshape(n_head, 2, out // n_head // 2, *rest)
            .swapaxes(1, 2).reshape(weight.shape))


def tensor_type(name: str, array: np.ndarray, quant: str):
    """The GGML type a tensor is stored as: norms and other 1-D tensors stay float32; 2-D weight
    matrices take the requested type. Under q4_0 the token embedding (which is also the output
    projection when tied) and output.weight get q8_0: 4 bits there cost the most quality, and
    llama.cpp's own quantiser keeps the output at higher precision for the same reason."""
    types = _gguf().GGMLQuantizationType
    if array.ndim < 2 or quant == "f32":
        return types.F32
    if quant == "f16":
        return types.F16
    if array.shape[-1] % BLOCK != 0:  # rows that do not split into blocks: half precision
        return types.F16
    if quant == "q4_0" and name not in ("token_embd.weight", "output.weight"):
        return types.Q4_0
    return types.Q8_0


def encode(array: np.ndarray, qtype) -> np.ndarray:
    """float32 (…, in) → the bytes of `qtype` (numpy uint8 rows for block types)."""
    return _gguf().quants.quantize(np.ascontiguousarray(array, dtype=np.float32), qtype)


def gguf_tensors(state: dict, hp: Hyper):
    """(GGUF name, float32 numpy array) in the order llama.cpp's converter writes them.

    `state` is the merged model's state_dict (torch tensors). The untouched lm_head is left
    out when tied to the embedding (llama.cpp then reuses token_embd.weight as the output)."""
    gguf = _gguf()
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, hp.block_count)
    tied = hp.tied and "lm_head.weight" in state and \
        state["lm_head.weight"].data_ptr() == state["model.embed_tokens.weight"].data_ptr()
    for hf_name, tensor in state.items():
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise InvalidRequest(f"Cannot map tensor {hf_name!r} to a GGUF Llama tensor; the model has "
                                 "parts the llama architecture does not.", param="model")
        array = tensor.detach().to("cpu").float().numpy()
        if hf_name.endswith("self_attn.q_proj.weight"):
            array = permute_qk(array, hp.head_count)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            array = permute_qk(array, hp.head_count_kv)
        yield name, array


# ── loading and writing ───────────────────────────────────────────────────────────────────


def check_adapter(adapter: Path) -> None:
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise InvalidRequest(f"{adapter} is not a LoRA adapter in safetensors (adapter_config.json + "
                             "adapter_model.safetensors); rixin never unpickles weights.", param="model")


def load_merged(source: Source):
    """The float32 torch model with the adapter (if any) merged into its weights."""
    import torch
    from transformers import AutoModelForCausalLM

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        model = AutoModelForCausalLM.from_pretrained(source.weights_dir, local_files_only=True,
                                                     use_safetensors=True, trust_remote_code=False,
                                                     dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        raise InvalidRequest(f"Cannot load the model in {source.weights_dir}: {e}", param="model") from e
    if source.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
    return model.eval()


def _write_metadata(writer, hp: Hyper, vocab: Vocab, quant: str, name: str) -> None:
    gguf = _gguf()
    file_types = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                  "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
    writer.add_type("model")
    writer.add_name(name)
    writer.add_context_length(hp.context_length)
    writer.add_embedding_length(hp.embedding_length)
    writer.add_block_count(hp.block_count)
    writer.add_feed_forward_length(hp.feed_forward_length)
    writer.add_head_count(hp.head_count)
    writer.add_head_count_kv(hp.head_count_kv)
    if hp.head_dim * hp.head_count != hp.embedding_length:
        writer.add_key_length(hp.head_dim)
        writer.add_value_length(hp.head_dim)
    writer.add_rope_freq_base(hp.rope_freq_base)
    writer.add_layer_norm_rms_eps(hp.rms_norm_eps)
    writer.add_file_type(int(file_types[quant]))
    writer.add_vocab_size(len(vocab.tokens))
    writer.add_rope_dimension_count(hp.head_dim)
    if quant in ("q8_0", "q4_0"):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    adders = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id,
              "unk": writer.add_unk_token_id, "pad": writer.add_pad_token_id}
    for key, token_id in vocab.special.items():
        adders[key](token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    writer.add_add_space_prefix(False)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)


def export_gguf(source: Source | Model, out_path: str | Path, quant: str = "q8_0", *, name: str | None = None,
                progress: bool = False) -> Path:
    """Write `source` (weights + merged adapter, or a registry row) as a llama.cpp GGUF at
    `out_path`; returns it.

    Validate (quant, architecture, tokenizer) → load and merge → write metadata and tensor
    table → stream each tensor (converted one at a time) → fsync → rename into place."""
    if isinstance(source, Model):
        name, source = name or source.id, source_of(source)
    if quant not in QUANTS:
        raise InvalidRequest(f"Unknown quantisation {quant!r}: use one of {', '.join(QUANTS)}.", param="quant")
    weights_dir = Path(source.weights_dir)
    config = check_architecture(weights_dir)
    hp = hyperparameters(config)
    if source.adapter:
        check_adapter(Path(source.adapter))
    tokenizer_dir = Path(source.adapter) if source.adapter and (Path(source.adapter) / "tokenizer.json").is_file() \
        else weights_dir
    vocab = read_vocab(tokenizer_dir, config)
    state = load_merged(source).state_dict()

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    try:
        _write(tmp, state, hp, vocab, quant, name or weights_dir.name, progress)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _write(tmp: Path, state: dict, hp: Hyper, vocab: Vocab, quant: str, name: str, progress: bool) -> None:
    gguf = _gguf()
    writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _write_metadata(writer, hp, vocab, quant, name)
    # The tensor table precedes the data, so plan every tensor's type and size first; the data
    # is then converted and written one tensor at a time (never a second copy of the model).
    plan = []
    for gname, array in gguf_tensors(state, hp):
        qtype = tensor_type(gname, array, quant)
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = int(np.prod(array.shape[:-1])) * array.shape[-1] // block * size
        writer.add_tensor_info(gname, array.shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
        plan.append(qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    with _progress(progress, len(plan), f"writing GGUF ({quant})") as advance:
        for (_, array), qtype in zip(gguf_tensors(state, hp), plan):
            writer.write_tensor_data(encode(array, qtype))
            advance()
    writer.flush()
    for f in writer.fout:
        os.fsync(f.fileno())
    writer.close()


class _progress:
    """A rich progress bar over `total` steps when `show`, else nothing."""

    def __init__(self, show: bool, total: int, label: str):
        self.show, self.total, self.label = show, total, label

    def __enter__(self):
        if not self.show:
            return lambda: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc):
        if self.show:
            self.bar.stop()
        return False


# ── the registry side ──────────────────────────────────────────────────────────────────────


def safe_name(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", model_id)


def export_model(registry: Registry, model_id: str, data_dir: Path, *, quant: str = "q8_0",
                 new_id: str | None = None, progress: bool = False) -> Model:
    """Export a registered model to <data_dir>/models/gguf/<safe id>.<quant>.gguf and register the
    GGUF as a new model (llama.cpp engine, source 'export', parent = the exported model, same
    project), so that it is served through the API like any GGUF."""
    if quant not in QUANTS:
        raise InvalidRequest(f"Unknown quantisation {quant!r}: use one of {', '.join(QUANTS)}.", param="quant")
    row = registry.get(model_id)
    source = source_of(row)
    if new_id is not None and (not MODEL_ID.match(new_id) or new_id.startswith("ft:")):
        raise InvalidRequest(f"Invalid model id {new_id!r}: use letters, digits, '.', '_', '-', '/' "
                             "(at most 128, not starting with 'ft:').", param="id")
    new_id = new_id or f"{row.id}-{quant}"
    path = Path(data_dir).resolve() / "models" / "gguf" / f"{safe_name(row.id)}.{quant}.gguf"
    for other in registry.list():
        if other.id == new_id:
            raise Conflict(f"A model with id {new_id!r} already exists; choose another --id.", param="id")
        if other.path == str(path):
            raise Conflict(f"'{row.id}' was already exported at {quant} as '{other.id}'; use that model.",
                           param="model")
    export_gguf(source, path, quant, name=row.id, progress=progress)
    meta = {"quant": quant, "exported_from": row.id,
            "base_model": (row.meta or {}).get("base_model", row.id)}
    return registry.add_export(new_id, row, str(path), meta=meta)

"""Text generation with Hugging Face transformers + peft on the CPU, LoRA adapters per request.

llama.cpp serves the bundled GGUF models faster; this engine exists for what it cannot do
cheaply: many fine-tuned LoRA adapters over ONE shared copy of the base weights, chosen per
request, without merging them into new model files.

Checkpoints: a Hugging Face directory (config.json + *.safetensors + tokenizer files; pickled
weights are refused) or a GGUF file, which transformers dequantises to float32 at load time.
No code is loaded from the checkpoint (never trust_remote_code) and nothing from a hub.

The decode loop (`_decode`) reads top to bottom: prefill the prompt into a KV cache, then one
forward per token, sample, detokenise incrementally, watch for stop strings, yield text.

Logprobs are the log-softmax of the RAW next-token logits, before penalties, temperature and
top_p (as vLLM reports them by default): they describe the model rather than the sampler, so
that they stay comparable across sampling settings and are usable for scoring.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import torch
from jinja2.exceptions import TemplateError
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from rixin.engines.base import (
    Chunk,
    EngineInfo,
    GenerateRequest,
    SamplingParams,
    TokenLogprob,
    TopLogprob,
    check_context,
)
from rixin.engines.prompt_text import PromptText
from rixin.engines.stops import StopScanner
from rixin.errors import InvalidRequest
from rixin.models.engines import TRANSFORMERS, EngineOptions
from rixin.models.registry import ModelSpec

# The attention cost and KV cache grow with the context; on a CPU nobody waits for 32k tokens,
# so a model advertising more is served with this much unless the operator asks otherwise.
DEFAULT_MAX_CONTEXT = 8192
MAX_TOP_LOGPROBS = 20
# Formats that torch.load unpickles, i.e. that can run code when loaded.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Prompt tokens decoded together with the completion: sentencepiece tokenizers drop the leading
# space of the first token of a string, so the first generated word needs left context.
_DETOKENIZE_CONTEXT = 4
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_UNKNOWN = object()  # adapter selection state after peft changed it


def build(spec: ModelSpec, options: EngineOptions) -> "TransformersEngine":
    """The factory the engine registry (models/engines.py) calls; the context is the model's own
    unless its spec names one (options.context_length is llama.cpp's default, not a limit here)."""
    return TransformersEngine(spec.id, spec.path, context_length=spec.context_length, threads=options.threads)


class TransformersEngine:
    """The Engine Protocol (rixin.engines.base) over a transformers causal LM plus peft LoRA."""

    def __init__(
        self,
        model_id: str,
        path: str,
        *,
        gguf_file: str | None = None,
        context_length: int | None = None,
        threads: int | None = None,
        max_adapters: int = 4,
    ):
        if max_adapters < 1:
            raise ValueError(f"max_adapters must be at least 1, got {max_adapters}")
        if threads:
            torch.set_num_threads(threads)
        self.model_id = model_id
        self.max_adapters = max_adapters
        """Adapters kept in memory; the least recently used one is deleted beyond this."""
        self._model, self._tokenizer = _load_model(Path(path), gguf_file)
        self._context_length = _context_length(self._model.config, context_length)
        self._eos_ids = _eos_token_ids(self._model, self._tokenizer)
        self._token_texts = _TokenTexts(self._tokenizer)
        self._prompt_text = PromptText.for_hf(self._tokenizer, self._context_length)
        # The PeftModel is created around self._model when the first adapter is requested;
        # peft injects LoRA layers into self._model in place, so both names see the same modules.
        self._peft = None
        self._adapters: OrderedDict[str, str] = OrderedDict()  # real path -> peft name, LRU first
        self._selected: object = _UNKNOWN  # adapter name the layers are set to; None: disabled

    # ---- the Engine Protocol --------------------------------------------------------------

    def info(self) -> EngineInfo:
        return EngineInfo(self.model_id, TRANSFORMERS.name, self._context_length, os.getpid())

    def count_prompt_tokens(self, request: GenerateRequest) -> int:
        return len(self._prompt_ids(request))

    def generate(self, request: GenerateRequest) -> Iterator[Chunk]:
        """Validate now (errors surface at the call, before any chunk), then stream the decode."""
        params = request.params
        if params.json_schema is not None or params.json_object or params.grammar is not None:
            raise InvalidRequest(
                "The transformers engine cannot constrain output (to JSON or to tool calls). For "
                "response_format json_schema or json_object, or tool_choice 'required' or a named "
                "function, use a GGUF model served by llama.cpp.",
                param="response_format" if params.grammar is None else "tool_choice",
            )
        _check_params(params)
        prompt_ids = self._prompt_ids(request)
        budget = check_context(len(prompt_ids), params.max_tokens, self._context_length)
        if request.adapter is not None:
            self._adapter_name(request.adapter)  # load it now so that a bad adapter fails here
        return self._decode(prompt_ids, budget, params, request.adapter)

    def loaded_adapters(self) -> list[str]:
        """Real paths of the adapters in memory, least recently used first."""
        return list(self._adapters)

    # ---- prompt ----------------------------------------------------------------------------

    def _prompt_ids(self, request: GenerateRequest) -> list[int]:
        """Client text (prompt, contents) is tokenized as text only: special-looking strings in
        it stay characters, never control tokens (engines/prompt_text.py)."""
        if (request.prompt is None) == (request.messages is None):
            raise InvalidRequest("Set exactly one of prompt and messages.", param="messages")
        if request.prompt is not None:
            self._prompt_text.check(request.prompt, "prompt")
            # The tokenizer adds BOS where its model expects one (add_special_tokens).
            ids = self._prompt_text.tokenize([request.prompt], add_bos=True)
            if not ids and self._prompt_text.start_token is not None:
                ids = [self._prompt_text.start_token]  # the model needs one token to start from
            if not ids:
                raise InvalidRequest("The prompt is empty.", param="prompt")
            return ids
        if not self._tokenizer.chat_template:
            raise InvalidRequest(
                f"Model {self.model_id} has no chat template; send a raw prompt to /v1/completions.",
                param="messages",
            )
        self._prompt_text.check_messages(request.messages)
        try:
            text = self._tokenizer.apply_chat_template(
                self._prompt_text.marked(request.messages), add_generation_prompt=True, tokenize=False
            )
        except (TemplateError, TypeError, KeyError, ValueError) as e:
            raise InvalidRequest(
                f"The chat template cannot render these messages: {e}", param="messages"
            ) from e
        # The rendered template already holds its special tokens (BOS, <|im_start|>, ...).
        fragments = self._prompt_text.fragments(text, request.messages)
        return self._prompt_text.tokenize(fragments, add_bos=False)

    # ---- the decode loop -------------------------------------------------------------------

    def _decode(
        self, prompt_ids: list[int], budget: int, params: SamplingParams, adapter: str | None
    ) -> Iterator[Chunk]:
        """Prefill, then one token per forward until end of sequence, a stop string or `budget`.

        completion_tokens counts every sampled token, the end-of-sequence one included; logprobs
        hold one entry per sampled token except that one (stop-string tokens included), each
        attached to the chunk that releases (part of) its text.
        """
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        sampler = _Sampler(params, torch.Generator().manual_seed(seed))
        detokenizer = _Detokenizer(self._tokenizer, prompt_ids[-_DETOKENIZE_CONTEXT:])
        stops = StopScanner(params.stop)
        top_n = params.top_logprobs
        want_logprobs = params.logprobs or top_n > 0
        cache = DynamicCache()  # per request: keys/values (1, kv_heads, seq, head_dim) per layer
        feed = prompt_ids  # the prompt at prefill, then the last sampled token
        pending: list[TokenLogprob] = []  # logprobs of tokens whose text is not yielded yet
        generated, finish, stopped = 0, "length", False
        while generated < budget:
            logits = self._next_logits(feed, cache, adapter)  # (vocab,)
            token = sampler.pick(logits)
            generated += 1
            if token in self._eos_ids:
                finish = "stop"
                break
            if want_logprobs:
                pending.append(self._logprob(logits, token, top_n))
            text, stopped = stops.feed(detokenizer.push(token))
            if stopped:
                break
            if text:
                yield Chunk(text=text, logprobs=pending)
                pending = []
            feed = [token]
        if not stopped:
            # Text held back (an incomplete character, a tail that might have begun a stop
            # string) is final now, unless it completes a stop string after all.
            text, stopped = stops.feed(detokenizer.flush())
            text += "" if stopped else stops.flush()
        finish = "stop" if stopped else finish
        yield Chunk(
            text=text,
            logprobs=pending,
            finish_reason=finish,
            prompt_tokens=len(prompt_ids),
            completion_tokens=generated,
        )

    def _next_logits(self, feed: list[int], cache: DynamicCache, adapter: str | None) -> torch.Tensor:
        """Run `feed` through the model on top of `cache` (which grows); next-token logits (vocab,)."""
        input_ids = torch.tensor([feed])  # (1, n)
        self._select_adapter(adapter)
        with torch.inference_mode():
            # logits_to_keep=1: only the last position goes through lm_head, (1, 1, vocab).
            out = self._model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float()

    def _logprob(self, logits: torch.Tensor, token: int, top_n: int) -> TokenLogprob:
        logprobs = torch.log_softmax(logits, dim=-1)  # (vocab,) raw model distribution
        text, data = self._token_texts(token)
        entry = TokenLogprob(text, float(logprobs[token]), data)
        if top_n:
            values, ids = torch.topk(logprobs, top_n)  # sorted, highest first
            for value, top_id in zip(values.tolist(), ids.tolist()):
                top_text, top_data = self._token_texts(top_id)
                entry.top_logprobs.append(TopLogprob(top_text, value, top_data))
        return entry

    # ---- LoRA adapters -----------------------------------------------------------------------

    def _select_adapter(self, adapter: str | None) -> None:
        """Point the shared model at one adapter, or at the bare base weights for None.

        Called before every forward rather than once per request: a paused stream must not run
        with the adapter that another request selected meanwhile (this also reloads an adapter
        evicted in between). Switching walks all modules (~2-4 ms), so it happens only on change.
        """
        name = None if adapter is None else self._adapter_name(adapter)
        if self._peft is None or name == self._selected:
            return
        if name is None:
            self._peft.base_model.disable_adapter_layers()
        else:
            self._peft.base_model.enable_adapter_layers()
            self._peft.set_adapter(name, inference_mode=True)
        self._selected = name

    def _adapter_name(self, path: str) -> str:
        """The peft name of the adapter at `path`, loading it (and evicting the LRU one) if needed."""
        key = os.path.realpath(path)
        if key in self._adapters:
            self._adapters.move_to_end(key)
            return self._adapters[key]
        self._check_adapter(Path(key))
        # peft turns adapter names into module keys, which must not contain dots.
        name = "lora_" + hashlib.sha1(key.encode()).hexdigest()[:12]
        self._selected = _UNKNOWN  # loading and deleting change peft's active adapter
        self._load_adapter(key, name)
        self._adapters[key] = name
        self._peft.set_adapter(name, inference_mode=True)  # so that no evicted adapter is active
        while len(self._adapters) > self.max_adapters:
            _, evicted = self._adapters.popitem(last=False)
            self._peft.delete_adapter(evicted)  # frees its A/B matrices; base weights stay shared
        return name

    def _load_adapter(self, path: str, name: str) -> None:
        from peft import LoraConfig, PeftModel  # imported late: only adapter users pay for it

        try:
            if self._peft is None:
                # Wrap with this adapter's layers (B = 0: a no-op) and then load its weights like
                # any later adapter's, so that a failure while loading is undone the same way.
                config = LoraConfig.from_pretrained(path)
                config.inference_mode = True
                self._peft = PeftModel(self._model, config, adapter_name=name)
            self._peft.load_adapter(path, adapter_name=name, is_trainable=False)
        except (ValueError, RuntimeError, KeyError, TypeError, OSError) as e:
            # _check_adapter refused the usual mismatches before peft touched the model; this is
            # the rest (e.g. a rank in the config that differs from the weights').
            if self._peft is not None and name in self._peft.peft_config:
                self._peft.delete_adapter(name)  # other requests must not see its layers
            detail = " ".join(str(e).split("\n")[:2])[:300]  # torch lists every tensor: keep the first
            raise InvalidRequest(
                f"Cannot load the adapter at {path} onto {self.model_id}: {detail}", param="model"
            ) from e
        self._peft.eval()

    def _check_adapter(self, root: Path) -> None:
        """Refuse an adapter that is not a safetensors LoRA for this base model, before loading it.

        LoRA stores A (r, in_features) and B (out_features, r) per adapted module; both must
        fit a module of the base model with those dimensions.
        """
        config_file, weights = root / "adapter_config.json", root / "adapter_model.safetensors"
        if not config_file.is_file():
            raise InvalidRequest(f"The adapter directory {root} has no adapter_config.json.", param="model")
        if not weights.is_file():
            pickled = (root / "adapter_model.bin").is_file()
            why = "has none"
            if pickled:
                why = "holds pickled weights (adapter_model.bin), which rixin never loads"
            raise InvalidRequest(
                f"The adapter directory {root} needs adapter_model.safetensors but {why}; "
                "save it with save_pretrained(safe_serialization=True).",
                param="model",
            )
        peft_type = json.loads(config_file.read_text()).get("peft_type")
        if peft_type != "LORA":
            raise InvalidRequest(f"Only LoRA adapters are served; {root} is {peft_type}.", param="model")
        with safe_open(weights, framework="pt") as f:
            for key in f.keys():
                self._check_lora_tensor(root, key, f.get_slice(key).get_shape())

    def _check_lora_tensor(self, root: Path, key: str, shape: list[int]) -> None:
        # key: "base_model.model.<module path>.lora_A.weight"
        module_path, _, kind = key.removeprefix("base_model.model.").rpartition(".lora_")
        try:
            module = self._model.get_submodule(module_path)
        except AttributeError:
            module = None
        module = getattr(module, "base_layer", module)  # already wrapped by an earlier adapter
        expected = None
        if kind == "A.weight":
            expected = getattr(module, "in_features", None), shape[1]
        elif kind == "B.weight":
            expected = getattr(module, "out_features", None), shape[0]
        if module is None or (expected is not None and expected[0] != expected[1]):
            raise InvalidRequest(
                f"The adapter at {root} was trained for another base model: its tensor {key} "
                f"{list(shape)} fits no module of {self.model_id} "
                f"({self._model.config.model_type}, hidden size {self._model.config.hidden_size}).",
                param="model",
            )


# ---- loading --------------------------------------------------------------------------------


def _load_model(root: Path, gguf_file: str | None):
    if not root.is_dir():
        raise InvalidRequest(f"The model path {root} is not a directory.", param="model")
    options: dict = {"trust_remote_code": False, "local_files_only": True}
    if gguf_file is not None:
        if not (root / gguf_file).is_file():
            raise InvalidRequest(f"There is no GGUF file {gguf_file} in {root}.", param="model")
        options["gguf_file"] = gguf_file
    else:
        _require_safetensors(root)
    try:
        tokenizer = AutoTokenizer.from_pretrained(root, **options)
        model_options = options if gguf_file is not None else {**options, "use_safetensors": True}
        model = AutoModelForCausalLM.from_pretrained(root, **model_options)
    except (OSError, ValueError, KeyError) as e:
        raise InvalidRequest(f"Cannot load a causal language model from {root}: {e}", param="model") from e
    # float32 whatever the checkpoint holds: bf16/fp16 matmuls are slow or inexact on most CPUs.
    return model.to(torch.float32).eval(), tokenizer


def _require_safetensors(root: Path) -> None:
    if any(root.glob("*.safetensors")):
        if not (root / "config.json").is_file():
            raise InvalidRequest(f"The model directory {root} has no config.json.", param="model")
        return
    pickled = sorted(p.name for p in root.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickled:
        raise InvalidRequest(
            f"The model directory {root} holds pickled weights ({', '.join(pickled)}) and no "
            "*.safetensors. rixin never unpickles weights, since unpickling can run code; convert "
            "them to safetensors (save_pretrained(safe_serialization=True)) and try again.",
            param="model",
        )
    raise InvalidRequest(
        f"The model directory {root} has no *.safetensors weights; a Hugging Face-format model "
        "needs config.json, *.safetensors and the tokenizer files.",
        param="model",
    )


def _context_length(config, requested: int | None) -> int:
    limit = getattr(config, "max_position_embeddings", None) or DEFAULT_MAX_CONTEXT
    if requested is None:
        return min(limit, DEFAULT_MAX_CONTEXT)
    if not 0 < requested <= limit:
        raise InvalidRequest(
            f"context_length must be between 1 and the model's max_position_embeddings ({limit}); "
            f"got {requested}.",
            param="context_length",
        )
    return requested


def _eos_token_ids(model, tokenizer) -> frozenset[int]:
    """Tokens that end generation: the tokenizer's EOS and the generation config's (int or list)."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return frozenset(i for i in ids if i is not None)


def _check_params(p: SamplingParams) -> None:
    if p.temperature < 0:
        raise InvalidRequest(f"temperature must be >= 0, got {p.temperature}.", param="temperature")
    if not 0 < p.top_p <= 1:
        raise InvalidRequest(f"top_p must be in (0, 1], got {p.top_p}.", param="top_p")
    if not 0 <= p.top_logprobs <= MAX_TOP_LOGPROBS:
        raise InvalidRequest(
            f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}.", param="top_logprobs"
        )
    if p.max_tokens is not None and p.max_tokens < 0:
        raise InvalidRequest(f"max_tokens must be >= 0, got {p.max_tokens}.", param="max_tokens")


# ---- sampling and text ------------------------------------------------------------------------


class _Sampler:
    """Penalties, then greedy (temperature 0) or temperature + nucleus sampling."""

    def __init__(self, params: SamplingParams, generator: torch.Generator):
        self._params = params
        self._generator = generator
        self._counts: torch.Tensor | None = None  # (vocab,) times each token was generated

    def pick(self, logits: torch.Tensor) -> int:
        p = self._params
        if self._counts is None:
            self._counts = torch.zeros_like(logits)
        if p.presence_penalty or p.frequency_penalty:
            # OpenAI's definition, over the completion so far (not the prompt).
            logits = logits - p.presence_penalty * (self._counts > 0) - p.frequency_penalty * self._counts
        if p.temperature == 0:
            token = int(torch.argmax(logits))
        else:
            probs = torch.softmax(logits / p.temperature, dim=-1)  # (vocab,)
            if p.top_p < 1:
                probs = _nucleus(probs, p.top_p)
            token = int(torch.multinomial(probs, 1, generator=self._generator))
        self._counts[token] += 1
        return token


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero all but the smallest set of most likely tokens whose mass reaches top_p."""
    sorted_probs, order = torch.sort(probs, descending=True)  # (vocab,)
    mass_before = torch.cumsum(sorted_probs, dim=0) - sorted_probs
    keep = mass_before < top_p  # the most likely token always stays
    return torch.zeros_like(probs).scatter_(0, order[keep], sorted_probs[keep])  # multinomial renormalises


class _Detokenizer:
    """Token ids in, text out as soon as it is whole: never half of a UTF-8 character.

    A byte-level token may carry part of a multi-byte character; decoding that yields U+FFFD,
    so text is released only when the decoded window no longer ends in one. Each step decodes a
    short window (the previous token(s) plus the new ones), not the whole completion.
    """

    def __init__(self, tokenizer, context_ids: list[int]):
        self._tokenizer = tokenizer
        self._ids = list(context_ids)
        self._prefix = 0  # window start: ids decoded only as left context
        self._read = len(self._ids)  # ids before this have been turned into text

    def push(self, token: int) -> str:
        self._ids.append(token)
        before, after = self._window()
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]

    def flush(self) -> str:
        before, after = self._window()
        self._prefix = self._read = len(self._ids)
        return after[len(before) :]

    def _window(self) -> tuple[str, str]:
        def decode(ids: list[int]) -> str:
            return self._tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

        return decode(self._ids[self._prefix : self._read]), decode(self._ids[self._prefix :])


class _TokenTexts:
    """A token's text and UTF-8 bytes for logprobs, cached per id.

    A token holding part of a multi-byte character decodes to U+FFFD; its true bytes come from
    the byte-level BPE alphabet (GPT-2 style) or from sentencepiece's <0xAB> byte tokens.
    """

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._cache: dict[int, tuple[str, list[int]]] = {}

    def __call__(self, token: int) -> tuple[str, list[int]]:
        if token not in self._cache:
            self._cache[token] = self._lookup(token)
        return self._cache[token]

    def _lookup(self, token: int) -> tuple[str, list[int]]:
        text = self._tokenizer.decode(
            [token], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        if "\ufffd" not in text:
            return text, list(text.encode("utf-8"))
        raw = self._tokenizer.convert_ids_to_tokens(token)
        if (match := _BYTE_TOKEN.fullmatch(raw)) is not None:
            return text, [int(match[1], 16)]
        if all(c in _BYTE_LEVEL_DECODER for c in raw):
            return text, [_BYTE_LEVEL_DECODER[c] for c in raw]
        return text, list(text.encode("utf-8"))


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet inverted: printable bytes stand for themselves, the other
    bytes for the characters from U+0100 on, in order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in chars):
        chars[b] = chr(256 + n)
    return {c: b for b, c in chars.items()}


_BYTE_LEVEL_DECODER = _byte_level_decoder()

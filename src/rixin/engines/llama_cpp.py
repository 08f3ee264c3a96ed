"""llama.cpp engine (GGUF): the default for base models on CPU and edge devices.

We own the decode loop rather than calling `create_chat_completion`, because we need
per-token log-probabilities without `logits_all=True` (which would compute n_vocab logits for
every prompt token), stop strings that may span tokens, OpenAI's sampling semantics (no
hidden top-k/min-p) (docs/decisions/0001), and several sequences decoded in one batch
(engines/llama_batch.py, docs/decisions/0004). `generate` may be called from many threads at
once: each call hands a sequence to the one scheduler thread and streams its chunks back.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rixin.engines.base import Cancelled, Chunk, EngineInfo, GenerateRequest, SamplingParams, check_context
from rixin.engines.llama_batch import BatchScheduler, Sequence
from rixin.engines.prompt_text import PromptText
from rixin.errors import InvalidRequest
from rixin.models.engines import LLAMA_CPP, EngineOptions
from rixin.models.registry import ModelSpec


_LOAD_LOCK = threading.Lock()


def open_llama(path: str, **kwargs):
    """`llama_cpp.Llama(path, **kwargs)` with the weights in plain CPU buffers.

    llama.cpp may move weights into "extra" buffer types at load time (AMX tiles on Intel
    CPUs that have them, repacked layouts elsewhere). On a Xeon with AMX, the AMX copy of this
    build crashes (SIGSEGV) on the first batch of more than one token, so every prompt would
    kill the engine (docs/decisions/0006). `Llama` has no argument for this, so its model
    defaults are swapped while it loads; the lock keeps two loads from racing on the swap.
    """
    import llama_cpp.llama_cpp as lib  # the module `Llama.__init__` looks the defaults up in
    from llama_cpp import Llama

    stock = lib.llama_model_default_params

    def defaults():
        params = stock()
        params.use_extra_bufts = False
        return params

    with _LOAD_LOCK:
        lib.llama_model_default_params = defaults
        try:
            return Llama(model_path=path, **kwargs)
        finally:
            lib.llama_model_default_params = stock


REQUANTIZE_TO_Q8_0 = {3: "Q4_1", 8: "Q5_0", 9: "Q5_1"}
"""GGUF `general.file_type`s served from a Q8_0 copy when `engine_requantize` is on
(docs/decisions/0006): llama.cpp's CPU backend has no matrix-matrix kernel for these block
types, so a prompt or a batch of sequences costs nearly one matrix-vector product per token;
Q8_0 has one (1.75× the prompt speed, 1.15× the 8-sequence step speed here, but 1.5× slower
single-sequence steps) and holds every 4/5-bit weight to within 1/254 of its block's range."""


def serving_weights(path: str, cache_dir: str | None) -> str:
    """The GGUF the engine loads for `path`: the file itself, or its Q8_0 copy in `cache_dir`
    (made once, written to a temporary name and renamed, so a crash leaves no half file)."""
    if cache_dir is None:
        return path
    import llama_cpp

    probe = open_llama(path, vocab_only=True, verbose=False)
    try:
        file_type = int(probe.metadata.get("general.file_type", -1))
    finally:
        probe.close()
    if file_type not in REQUANTIZE_TO_Q8_0:
        return path
    st = os.stat(path)
    key = hashlib.sha256(f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    target = Path(cache_dir) / f"{Path(path).stem}.{key}.q8_0.gguf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype, params.allow_requantize, params.nthread = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, True, 0
        rc = llama_cpp.llama_model_quantize(path.encode(), str(partial).encode(), params)
        if rc != 0:
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"llama.cpp could not convert {path} to Q8_0 (code {rc})")
        os.replace(partial, target)
    return str(target)


def drain(out) -> tuple[list[Chunk], BaseException | None]:
    """Wait for the next item of a sequence's queue, then take every item already behind it
    (up to the last chunk or an error)."""
    items, error = [out.get()], None
    while not isinstance(items[-1], BaseException) and items[-1].finish_reason is None:
        try:
            items.append(out.get_nowait())
        except queue.Empty:
            break
    if isinstance(items[-1], BaseException):
        error = items.pop()
    return items, error


def merge(chunks: list[Chunk]) -> Chunk:
    """One chunk for several in a row: when the reader (the gateway, a slow client) falls
    behind the decode, the tokens waiting for it travel as one Ray object and one SSE event
    instead of one each, so the stream's overhead stops competing with the decode for CPU."""
    if len(chunks) == 1:
        return chunks[0]
    last = chunks[-1]
    return Chunk(text="".join(c.text for c in chunks), logprobs=[lp for c in chunks for lp in c.logprobs],
                 finish_reason=last.finish_reason, prompt_tokens=last.prompt_tokens,
                 completion_tokens=last.completion_tokens)


def build(spec: ModelSpec, options: EngineOptions) -> "LlamaCppEngine":
    """The factory the engine registry (models/engines.py) calls."""
    return LlamaCppEngine(spec.id, spec.path, context_length=spec.context_length or options.context_length,
                          threads=options.threads, slots=options.batch_slots, weights_cache=options.weights_cache)


class LlamaCppEngine:
    concurrent = True
    """Several generate() calls may run at once (they are batched together)."""

    def __init__(self, model_id: str, path: str, *, context_length: int = 2048, threads: int | None = None,
                 slots: int = 8, cache_tokens: int | None = None, weights_cache: str | None = None):
        from llama_cpp._internals import LlamaContext
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = threads or os.cpu_count() or 1
        self.model_id = model_id
        # The Llama object gives us the weights, tokenizer and metadata; its own context is
        # kept minimal because decoding runs in the batched context below.
        self.weights = serving_weights(path, weights_cache)
        self.llm = open_llama(self.weights, n_ctx=32, n_batch=32, n_threads=threads,
                              n_threads_batch=threads, verbose=False)
        params = type(self.llm.context_params).from_buffer_copy(self.llm.context_params)
        # One KV stream of `context_length` cells per slot (not unified: a sequence attends
        # over its own cells only, which measured 1.2-1.5× faster steps than one shared
        # buffer at 8 sequences; decision 0004). Idle slots keep their cells as a prompt cache.
        params.n_ctx, params.n_batch, params.n_ubatch = context_length * slots, 512, 512
        params.n_seq_max, params.kv_unified = slots, False
        self._ctx = LlamaContext(model=self.llm._model, params=params, verbose=False)
        self.n_vocab = self.llm.n_vocab()
        self.context_length = context_length
        template = self.llm.metadata.get("tokenizer.chat_template")
        piece = lambda t: self.llm.detokenize([t], special=True).decode("utf-8", "ignore")  # noqa: E731
        self.formatter = (Jinja2ChatFormatter(template, piece(self.llm.token_eos()), piece(self.llm.token_bos()))
                          if template else None)
        self._grammars: dict[str, object] = {}
        self.prompt_text = PromptText.for_llama(self.llm, context_length)
        self._live: dict[str, _Live] = {}
        self.scheduler = BatchScheduler(self.llm, self._ctx.ctx, n_slots=slots, n_batch=512,
                                        cache_cells=context_length * slots if cache_tokens is None else cache_tokens)

    def info(self) -> EngineInfo:
        return EngineInfo(self.model_id, LLAMA_CPP.name, self.context_length, os.getpid())

    def _prompt_tokens(self, request: GenerateRequest, live: "_Live | None" = None) -> list[int]:
        """The prompt's token ids. Text that a client sent (a raw prompt, message contents) is
        tokenized as text only: `<|im_end|>` typed by a user stays the characters, it never
        becomes the control token that ends a turn (docs/security.md: role injection)."""
        if request.messages is not None:
            return self._chat_tokens(request.messages, live)
        text = request.prompt or ""
        self.prompt_text.check(text, "prompt")
        tokens = self.prompt_text.tokenize([text], add_bos=True, live=live)
        # OpenAI answers an empty prompt: generation starts from the start-of-text token.
        return tokens or [self.prompt_text.start_token]

    def _chat_tokens(self, messages: list[dict], live: "_Live | None") -> list[int]:
        if self.formatter is None:
            raise InvalidRequest(f"The model '{self.model_id}' has no chat template; use "
                                 "/v1/completions with a raw prompt.", param="model")
        self.prompt_text.check_messages(messages)
        try:
            rendered = self.formatter(messages=self.prompt_text.marked(messages)).prompt
        except Exception as e:  # the template's raise_exception, e.g. roles out of order
            raise InvalidRequest(f"The messages do not fit the model's chat template: {e}",
                                 param="messages") from e
        # The template writes the special tokens itself (added_special), so no extra BOS.
        fragments = self.prompt_text.fragments(rendered, messages)
        return self.prompt_text.tokenize(fragments, add_bos=False, live=live)

    def count_prompt_tokens(self, request: GenerateRequest) -> int:
        return len(self._prompt_tokens(request))

    def _grammar(self, params: SamplingParams):
        """The request's grammar, checked twice: rixin.grammar (which the gateway ran too, but
        labelers and graders reach the engine directly), then llama.cpp itself must parse it:
        a NULL sampler added to a chain segfaults this process, every tenant's streams with it."""
        import llama_cpp
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        from rixin.grammar import gbnf
        from rixin.schemas import SchemaProblem, check

        from rixin.gbnf import check_gbnf

        if params.json_schema is None and not params.json_object and params.grammar is None:
            return None
        param = "tools" if params.grammar is not None else "response_format.json_schema.schema"
        # order kept: it is the output's
        key = (f"gbnf:{params.grammar}" if params.grammar is not None
               else json.dumps(params.json_schema) if params.json_schema is not None else "")
        if key not in self._grammars:
            try:
                text = (params.grammar if params.grammar is not None
                        else gbnf(check(params.json_schema)) if key else JSON_GBNF)
            except SchemaProblem as e:
                raise InvalidRequest(f"This JSON schema cannot constrain generation: {e}", param=param) from e
            why = check_gbnf(text) if params.grammar is not None else None
            probe = why is None and llama_cpp.llama_sampler_init_grammar(self.llm._model.vocab, text.encode("utf-8"),
                                                                          b"root")
            if not probe:
                raise InvalidRequest(f"This JSON schema gives a grammar llama.cpp cannot parse ({why or 'refused'}); "
                                     "simplify it.", param=param)
            llama_cpp.llama_sampler_free(probe)
            if len(self._grammars) >= 256:  # one entry per distinct schema: bounded
                self._grammars.clear()
            self._grammars[key] = LlamaGrammar.from_string(text, verbose=False)
        return self._grammars[key]

    def stats(self) -> dict:
        return {"batch_slots": len(self.scheduler.slots), "active": self.scheduler.active(),
                "waiting": self.scheduler.queued(), **self.scheduler.stats}

    def cancel(self, request_id: str) -> None:
        """The caller went away: stop its generation wherever it is (tokenizing, waiting for a
        slot, decoding) and free what it holds."""
        live = self._live.get(request_id)
        if live is None:
            return
        live.cancelled = True
        if live.seq is not None:
            live.seq.cancelled = True
            live.seq.out.put(Cancelled())  # wakes the thread streaming it
            self.scheduler.wake.set()

    def generate(self, request: GenerateRequest) -> Iterator[Chunk]:
        live = _Live()
        if request.request_id is not None:
            self._live[request.request_id] = live
        try:
            p = request.params
            prompt = self._prompt_tokens(request, live)
            budget = check_context(len(prompt), p.max_tokens, self.context_length)
            live.seq = seq = Sequence(prompt, p, budget, grammar=self._grammar(p), project=request.project)
            if live.cancelled:
                return
            self.scheduler.submit(seq)
            yield from self._stream(seq)
        except Cancelled:
            return  # nobody is reading
        finally:
            if request.request_id is not None:
                self._live.pop(request.request_id, None)
            if live.seq is not None:
                live.seq.cancelled = True  # a no-op once finished; otherwise the scheduler drops it
                self.scheduler.wake.set()

    @staticmethod
    def _stream(seq: Sequence) -> Iterator[Chunk]:
        while True:
            chunks, error = drain(seq.out)
            if chunks:
                yield merge(chunks)
                if chunks[-1].finish_reason is not None:
                    return
            if error is not None:
                raise error


@dataclass
class _Live:
    """A generation the actor may cancel: set while it tokenizes, then its sequence."""

    cancelled: bool = False
    seq: Sequence | None = None

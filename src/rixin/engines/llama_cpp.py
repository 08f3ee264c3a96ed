"""llama.cpp engine (GGUF): the default for base models on CPU and edge devices.

We own the decode loop over `Llama.generate` (one token at a time) rather than calling
`create_chat_completion`, because we need per-token log-probabilities without
`logits_all=True` (which would compute n_vocab logits for every prompt token), stop strings
that may span tokens, and OpenAI's sampling semantics (no hidden top-k/min-p).
"""

from __future__ import annotations

import codecs
import json
import os
import random
from typing import Iterator

import numpy as np

from rixin.engines.base import (Chunk, EngineInfo, GenerateRequest, SamplingParams, TokenLogprob,
                                TopLogprob, check_context)
from rixin.errors import InvalidRequest


class StopScanner:
    """Holds back text that might be the start of a stop string; finds the first stop."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.text = ""
        self.sent = 0

    def feed(self, piece: str) -> tuple[str, bool]:
        """(text safe to emit now, whether a stop string was hit)."""
        self.text += piece
        lookback = max((len(s) for s in self.stops), default=0)
        window_start = max(0, self.sent - lookback)
        hits = [i for s in self.stops if (i := self.text.find(s, window_start)) >= 0]
        if hits:
            end = min(hits)
            out, self.sent = self.text[self.sent:end], end
            return out, True
        hold = 0
        for s in self.stops:  # the longest tail of text that begins some stop string
            for k in range(min(len(s) - 1, len(self.text) - self.sent), hold, -1):
                if self.text.endswith(s[:k]):
                    hold = k
                    break
        end = len(self.text) - hold
        out, self.sent = self.text[self.sent:end], end
        return out, False

    def flush(self) -> str:
        out, self.sent = self.text[self.sent:], len(self.text)
        return out


class LlamaCppEngine:
    def __init__(self, model_id: str, path: str, *, context_length: int = 2048, threads: int | None = None):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = threads or os.cpu_count() or 1
        self.model_id = model_id
        self.llm = Llama(model_path=path, n_ctx=context_length, n_threads=threads,
                         n_threads_batch=threads, n_batch=512, verbose=False)
        self.n_vocab = self.llm.n_vocab()
        self.context_length = self.llm.n_ctx()
        template = self.llm.metadata.get("tokenizer.chat_template")
        piece = lambda t: self.llm.detokenize([t], special=True).decode("utf-8", "ignore")  # noqa: E731
        self.formatter = (Jinja2ChatFormatter(template, piece(self.llm.token_eos()), piece(self.llm.token_bos()))
                          if template else None)
        self._grammars: dict[str, object] = {}

    def info(self) -> EngineInfo:
        return EngineInfo(self.model_id, "llama.cpp", self.context_length, os.getpid())

    def _prompt_tokens(self, request: GenerateRequest) -> list[int]:
        if request.messages is not None:
            if self.formatter is None:
                raise InvalidRequest(f"The model '{self.model_id}' has no chat template; use "
                                     "/v1/completions with a raw prompt.", param="model")
            try:
                text = self.formatter(messages=request.messages).prompt
            except Exception as e:  # the template's raise_exception, e.g. roles out of order
                raise InvalidRequest(f"The messages do not fit the model's chat template: {e}",
                                     param="messages") from e
            # The template writes the special tokens itself (added_special), so no extra BOS.
            return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return self.llm.tokenize((request.prompt or "").encode("utf-8"), add_bos=True, special=False)

    def count_prompt_tokens(self, request: GenerateRequest) -> int:
        return len(self._prompt_tokens(request))

    def _grammar(self, params: SamplingParams):
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        if params.json_schema is None and not params.json_object:
            return None
        key = json.dumps(params.json_schema, sort_keys=True) if params.json_schema is not None else ""
        if key not in self._grammars:
            try:
                self._grammars[key] = (LlamaGrammar.from_json_schema(key, verbose=False) if key
                                       else LlamaGrammar.from_string(JSON_GBNF, verbose=False))
            except Exception as e:
                raise InvalidRequest(f"This JSON schema cannot be turned into a grammar: {e}",
                                     param="response_format.json_schema.schema") from e
        return self._grammars[key]

    def _logprob(self, token: int, top_n: int) -> TokenLogprob:
        # Raw next-token distribution of the last decode: (n_vocab,) logits → log-softmax.
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(-1), shape=(self.n_vocab,))
        shifted = logits - logits.max()
        logprobs = shifted - np.log(np.exp(shifted).sum())
        top = []
        if top_n:
            idx = np.argpartition(-logprobs, top_n)[:top_n]
            idx = idx[np.argsort(-logprobs[idx])]
            top = [self._top(int(i), float(logprobs[i])) for i in idx]
        chosen = self._top(token, float(logprobs[token]))
        return TokenLogprob(chosen.token, chosen.logprob, chosen.bytes, top)

    def _top(self, token: int, logprob: float) -> TopLogprob:
        raw = self.llm.detokenize([token], special=True)
        return TopLogprob(raw.decode("utf-8", "replace"), logprob, list(raw))

    def generate(self, request: GenerateRequest) -> Iterator[Chunk]:
        import llama_cpp

        p = request.params
        prompt = self._prompt_tokens(request)
        budget = check_context(len(prompt), p.max_tokens, self.context_length)
        grammar = self._grammar(p)
        self.llm.set_seed(p.seed if p.seed is not None else random.getrandbits(31))
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stops = StopScanner(p.stop)
        produced, finish, hit = 0, "length", False
        tokens = self.llm.generate(prompt, temp=p.temperature, top_p=p.top_p, top_k=0, min_p=0.0,
                                   typical_p=1.0, repeat_penalty=1.0, grammar=grammar,
                                   frequency_penalty=p.frequency_penalty,
                                   presence_penalty=p.presence_penalty)
        for token in tokens:
            if llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token):
                finish = "stop"
                break
            produced += 1
            logprobs = [self._logprob(token, p.top_logprobs)] if p.logprobs else []
            text, hit = stops.feed(decoder.decode(self.llm.detokenize([token])))
            if hit:
                finish = "stop"
                if text or logprobs:
                    yield Chunk(text=text, logprobs=logprobs)
                break
            if text or logprobs:
                yield Chunk(text=text, logprobs=logprobs)
            if produced >= budget:
                break
        tokens.close()
        tail = "" if hit else stops.feed(decoder.decode(b"", final=True))[0] + stops.flush()
        yield Chunk(text=tail, finish_reason=finish, prompt_tokens=len(prompt), completion_tokens=produced)

"""Continuous batching over one llama.cpp context (docs/decisions/0004).

One scheduler thread owns the `llama_context`. Requests become `Sequence`s that wait in a
queue; between two `llama_decode` steps the scheduler admits waiting sequences into free
slots (llama.cpp sequence ids), and every step decodes one batch that holds the next token
of every generating sequence plus a chunk of the prompts still being read. A sequence that
ends (stop, length, cancel) leaves its slot; its KV cells stay as a prompt cache until
the slot is needed, so a later request that starts with the same tokens (a shared system
prompt, the previous turns of a chat) only reads the part that differs.

The KV cache is split into one stream per slot (`kv_unified = false`), so a sequence's
attention reads only its own cells and an idle slot's cache costs the others nothing. A
prefix held by another slot is copied over (llama.cpp copies whole streams: copy, then drop
the cells past the prefix).
"""

from __future__ import annotations

import codecs
import ctypes
import queue
import random
import threading
from dataclasses import dataclass, field

import llama_cpp
import numpy as np

from rixin.engines.base import Chunk, SamplingParams, TokenLogprob, TopLogprob
from rixin.engines.fair import FairQueue
from rixin.engines.stops import StopScanner

PENALTY_LAST_N = 64
"""Tokens the frequency/presence penalties look back on (llama-cpp-python's default)."""


class Sampler:
    """One sequence's sampler chain, built like `Llama._init_sampler` with OpenAI semantics
    (no top-k, no min-p), so the batched path draws the same tokens as the single one."""

    def __init__(self, model, n_vocab: int, p: SamplingParams, grammar):
        from llama_cpp._internals import LlamaSampler

        self.chain = LlamaSampler()
        self.chain.add_penalties(n_vocab=n_vocab, penalty_last_n=PENALTY_LAST_N, penalty_repeat=1.0,
                                 penalty_freq=p.frequency_penalty, penalty_present=p.presence_penalty)
        if grammar is not None:
            self.chain.add_grammar(model, grammar)
        if p.temperature == 0.0:
            self.chain.add_greedy()
        else:
            self.chain.add_top_k(0)
            self.chain.add_typical(1.0, 1)
            self.chain.add_top_p(p.top_p, 1)
            self.chain.add_min_p(0.0, 1)
            self.chain.add_temp(p.temperature)
            self.chain.add_dist(p.seed if p.seed is not None else random.getrandbits(31))

    def sample(self, ctx, batch_index: int) -> int:
        """Draw from the logits of row `batch_index` of the last decode (and accept the token)."""
        return llama_cpp.llama_sampler_sample(self.chain.sampler, ctx, batch_index)

    def close(self) -> None:
        self.chain.close()


@dataclass(eq=False)
class Sequence:
    """One generation, from the caller's side (queue of chunks) and the scheduler's."""

    prompt: list[int]
    params: SamplingParams
    budget: int
    grammar: object = None
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    # Scheduler state:
    slot: int = -1
    fed: int = 0
    """Tokens of `prompt` already in the KV cache."""
    pending: int | None = None
    """The sampled token that the next step feeds."""
    produced: int = 0
    sampler: Sampler | None = None
    scanner: StopScanner | None = None
    decoder: object = None
    project: str | None = None
    """Waiting sequences are admitted round-robin across projects."""
    retries: int = 0
    """Times it was put back in the queue after a failed shared decode."""


@dataclass
class Slot:
    """A llama.cpp sequence id and the tokens its KV cells hold (a cache once idle)."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    active: Sequence | None = None
    last_used: int = 0


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class BatchScheduler:
    """Owns `ctx` on its own thread; `submit` may be called from any thread."""

    def __init__(self, llm, ctx, n_slots: int, n_batch: int, cache_cells: int):
        self.llm, self.ctx, self.n_batch = llm, ctx, n_batch
        self.mem = llama_cpp.llama_get_memory(ctx)
        self.n_vocab = llm.n_vocab()
        self.vocab = llm._model.vocab
        self.slots = [Slot(i) for i in range(n_slots)]
        self.cache_cells = cache_cells
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.waiting: FairQueue[Sequence] = FairQueue()
        self.wake = threading.Event()
        self.clock = 0
        self.stats = {"steps": 0, "batched_tokens": 0, "prompt_tokens_reused": 0, "max_batch_seqs": 0,
                      "dropped": 0}
        """`dropped`: sequences left (queued or decoding) because their caller went away."""
        self.thread = threading.Thread(target=self._loop, name="llama-batch", daemon=True)
        self.thread.start()

    def submit(self, seq: Sequence) -> None:
        """Queue `seq` behind its project's earlier sequences (projects are served in turn)."""
        if not seq.prompt or not all(0 <= t < self.n_vocab for t in seq.prompt):
            # The engine always sends at least one token; a bad sequence fails alone, here,
            # instead of inside a step that every other sequence shares.
            seq.out.put(ValueError("a sequence needs a prompt of at least one valid token id"))
            return
        self.waiting.put(seq.project, seq)
        self.wake.set()

    def active(self) -> int:
        return sum(s.active is not None for s in self.slots)

    def queued(self) -> int:
        """Sequences waiting for a slot (cancelled ones excluded: they leave at the next admit)."""
        return self.waiting.count(lambda seq: not seq.cancelled)

    # ---- the loop ---------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._admit()
            running = [s.active for s in self.slots if s.active is not None]
            if not running:
                self.wake.wait()
                self.wake.clear()
                continue
            for seq in [q for q in running if q.cancelled]:
                self.stats["dropped"] += 1
                self._finish(seq, None)
            running = [q for q in running if not q.cancelled]
            if running:
                try:
                    self._step(running)
                except Exception as e:  # noqa: BLE001 - the shared decode itself failed
                    self._decode_failed(running, e)

    def _admit(self) -> None:
        """Move waiting sequences into free slots, round-robin across projects, reusing the
        longest cached prefix."""
        while True:
            free = [s for s in self.slots if s.active is None]
            if not free:
                return
            seq = self.waiting.pop(drop=self._dropped)
            if seq is None:
                return
            try:
                self._place(seq, free)
            except Exception as e:  # noqa: BLE001 - e.g. a grammar llama.cpp rejects: this caller's error
                self._fail(seq, e)

    def _dropped(self, seq: Sequence) -> bool:
        """Whether a waiting sequence is to be dropped: its caller went away."""
        if seq.cancelled:
            self.stats["dropped"] += 1
        return seq.cancelled

    def _fail(self, seq: Sequence, error: BaseException) -> None:
        """End one sequence with `error`; the others in the batch go on."""
        seq.out.put(error)
        if seq.slot >= 0 and self.slots[seq.slot].active is seq:
            self._release(seq, keep_cache=False)

    def _decode_failed(self, running: list[Sequence], error: BaseException) -> None:
        """A failure of the step every sequence shares. Sequences that streamed nothing yet
        start over once (their cells are dropped: the cache state after a failed decode is not
        trusted); the others, and a second failure, get the error."""
        for seq in running:
            streamed = seq.produced > 0
            self._release(seq, keep_cache=False)
            if streamed or seq.retries >= 1 or seq.cancelled:
                seq.out.put(error)
                continue
            seq.retries += 1
            seq.slot, seq.fed, seq.pending = -1, 0, None
            self.waiting.put(seq.project, seq, front=True)

    def _place(self, seq: Sequence, free: list[Slot]) -> None:
        # The prompt's last token is always fed again: its logits start the generation.
        usable = len(seq.prompt) - 1
        match = lambda s: min(common_prefix(s.tokens, seq.prompt), usable)  # noqa: E731
        best_free = max(free, key=lambda s: (match(s), -s.last_used))
        best_any = max(self.slots, key=match)
        slot = best_free if match(best_free) > 0 else min(free, key=lambda s: (len(s.tokens) > 0, s.last_used))
        keep = match(slot)
        llama_cpp.llama_memory_seq_rm(self.mem, slot.seq_id, keep, -1)
        slot.tokens = slot.tokens[:keep]
        if match(best_any) > keep:  # another slot (maybe generating) holds a longer prefix
            keep = match(best_any)
            llama_cpp.llama_memory_seq_rm(self.mem, slot.seq_id, -1, -1)
            llama_cpp.llama_memory_seq_cp(self.mem, best_any.seq_id, slot.seq_id, -1, -1)
            llama_cpp.llama_memory_seq_rm(self.mem, slot.seq_id, keep, -1)
            slot.tokens = seq.prompt[:keep]
        self.stats["prompt_tokens_reused"] += keep
        self._evict_cache(exclude=slot)
        self.clock += 1
        slot.active, slot.last_used, seq.slot, seq.fed = seq, self.clock, slot.seq_id, keep
        seq.sampler = Sampler(self.llm._model, self.n_vocab, seq.params, seq.grammar)
        seq.scanner = StopScanner(seq.params.stop)
        seq.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def _evict_cache(self, exclude: Slot) -> None:
        """Idle slots keep their cells as a prompt cache up to `cache_cells` tokens in all
        (least recently used dropped first); the default keeps every slot's cells."""
        idle = sorted((s for s in self.slots if s.active is None and s is not exclude and s.tokens),
                      key=lambda s: s.last_used)
        total = sum(len(s.tokens) for s in idle)
        for s in idle:
            if total <= self.cache_cells:
                break
            total -= len(s.tokens)
            llama_cpp.llama_memory_seq_rm(self.mem, s.seq_id, -1, -1)
            s.tokens = []

    def _step(self, running: list[Sequence]) -> None:
        """One llama_decode over every running sequence; then sample where logits are ready."""
        b, n, rows = self.batch, 0, []
        for seq in running:  # generating sequences first: one token each
            if seq.pending is not None:
                self._put(b, n, seq.pending, len(self.slots[seq.slot].tokens), seq.slot, True)
                self.slots[seq.slot].tokens.append(seq.pending)
                rows.append((seq, n))
                n += 1
        for seq in running:  # then prompt chunks, as much as the batch holds
            if seq.pending is None and n < self.n_batch:
                take = min(len(seq.prompt) - seq.fed, self.n_batch - n)
                for i in range(take):
                    last = seq.fed + i == len(seq.prompt) - 1
                    self._put(b, n, seq.prompt[seq.fed + i], seq.fed + i, seq.slot, last)
                    if last:
                        rows.append((seq, n))
                    n += 1
                self.slots[seq.slot].tokens.extend(seq.prompt[seq.fed:seq.fed + take])
                seq.fed += take
        b.n_tokens = n
        rc = llama_cpp.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        self.stats["steps"] += 1
        self.stats["batched_tokens"] += n
        self.stats["max_batch_seqs"] = max(self.stats["max_batch_seqs"], len(running))
        for seq, row in rows:
            try:
                self._advance(seq, row)
            except Exception as e:  # noqa: BLE001 - its sampler, grammar or detokenizer: its own error
                self._fail(seq, e)

    @staticmethod
    def _put(b, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
        b.seq_id[i][0] = seq_id

    def _advance(self, seq: Sequence, row: int) -> None:
        """Sample the next token of `seq` from batch row `row` and stream its text."""
        p = seq.params
        token = seq.sampler.sample(self.ctx, row)
        if llama_cpp.llama_vocab_is_eog(self.vocab, token):
            return self._finish(seq, "stop")
        seq.produced += 1
        logprobs = [self._logprob(row, token, p.top_logprobs)] if p.logprobs else []
        text, hit = seq.scanner.feed(seq.decoder.decode(self.llm.detokenize([token])))
        if text or logprobs:
            seq.out.put(Chunk(text=text, logprobs=logprobs))
        if hit:
            return self._finish(seq, "stop", hit=True)
        if seq.produced >= seq.budget:
            return self._finish(seq, "length")
        seq.pending = token

    def _finish(self, seq: Sequence, reason: str | None, hit: bool = False) -> None:
        if reason is not None:
            tail = "" if hit else seq.scanner.feed(seq.decoder.decode(b"", final=True))[0] + seq.scanner.flush()
            seq.out.put(Chunk(text=tail, finish_reason=reason, prompt_tokens=len(seq.prompt),
                              completion_tokens=seq.produced))
        self._release(seq, keep_cache=True)

    def _release(self, seq: Sequence, keep_cache: bool) -> None:
        if seq.slot < 0:
            return
        slot = self.slots[seq.slot]
        slot.active = None
        self.clock += 1
        slot.last_used = self.clock
        if not keep_cache:
            llama_cpp.llama_memory_seq_rm(self.mem, slot.seq_id, -1, -1)
            slot.tokens = []
        if seq.sampler is not None:
            seq.sampler.close()
            seq.sampler = None
        self._evict_cache(exclude=None)

    def _logprob(self, row: int, token: int, top_n: int) -> TokenLogprob:
        # Raw next-token distribution of this row: (n_vocab,) logits → log-softmax.
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, row)
        logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,))
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

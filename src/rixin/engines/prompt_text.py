"""Turning a request into prompt token ids without trusting the client's text.

Two threats (docs/security.md):

- Role injection. A tokenizer that parses special tokens turns `<|im_end|>\\n<|im_start|>system`
  typed into a message into the control tokens that end the user's turn and open a system
  turn. So a chat template is rendered with a marker in place of each message's content; the
  template's own text is split at the special tokens it writes (kept as control tokens), and
  the contents go back in as text that is tokenized with special-token parsing off. The raw
  text fragments are the ones the whole string would have been split into, so a prompt without
  special-looking text gets exactly the ids a plain tokenization would give.
- CPU exhaustion. Special-token parsing in llama.cpp is quadratic in the number of matches
  (32k copies of `<|im_end|>`: 3.9 s), and even linear tokenization of megabytes is wasted
  when the result cannot fit the context. No token of a vocabulary is longer than its longest
  piece, so a text longer than `context_length × longest piece` bytes is rejected before it
  is tokenized; a request cannot have more messages than the context has tokens either.
  Fragments are tokenized one by one and a cancelled request stops between them.
"""

from __future__ import annotations

import re
from typing import Callable

from rixin.engines.base import Cancelled
from rixin.errors import ContextLengthExceeded, InvalidRequest

_MARK = re.compile("\ue000(\\d+)\ue001")
"""Private-use characters: no template writes them, and contents are not in the rendered text."""


class PromptText:
    """Tokenizes template text with its control tokens and client text as text only."""

    def __init__(self, specials: dict[str, int], longest_piece: int, context_length: int,
                 encode: Callable[[str, bool], list[int]], start_token: int):
        self.specials = specials
        self._split = re.compile("|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True)
                                          if t)) if specials else None
        self.context_length = context_length
        self.longest_piece = max(1, longest_piece)
        self.max_bytes = context_length * self.longest_piece
        self._encode = encode
        self.start_token = start_token

    @classmethod
    def for_llama(cls, llm, context_length: int) -> "PromptText":
        """From a llama-cpp-python `Llama`: control tokens are special; user-defined ones are
        text (llama.cpp matches them in text too)."""
        import llama_cpp

        vocab, specials, longest = llm._model.vocab, {}, 1
        for token in range(llm.n_vocab()):
            attr = llama_cpp.llama_vocab_get_attr(vocab, token)
            if attr & (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN):
                text = llm.detokenize([token], special=True).decode("utf-8", "replace")
                specials.setdefault(text, token)
            else:
                longest = max(longest, len(llm.detokenize([token])))
        start = llm.token_bos() if llm.token_bos() >= 0 else llm.token_eos()

        def encode(text: str, add_bos: bool) -> list[int]:
            # A lone surrogate cannot be UTF-8; llama.cpp must never see invalid UTF-8.
            return llm.tokenize(text.encode("utf-8", "replace"), add_bos=add_bos, special=False)

        return cls(specials, longest, context_length, encode, start)

    @classmethod
    def for_hf(cls, tokenizer, context_length: int) -> "PromptText":
        """From a transformers tokenizer: its added tokens are what it splits text at (kept as
        such in the template's text); contents are tokenized with `split_special_tokens`."""
        specials = {t.content: token for token, t in tokenizer.added_tokens_decoder.items()}
        # A token string's UTF-8 length bounds the bytes it stands for (byte-level BPE: one
        # character per byte; sentencepiece: '▁' is three bytes for one space).
        longest = max((len(t.encode("utf-8")) for t, token in tokenizer.get_vocab().items()
                       if token not in specials.values()), default=1)
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

        def encode(text: str, add_bos: bool) -> list[int]:
            return tokenizer(text, add_special_tokens=add_bos, split_special_tokens=True).input_ids

        return cls(specials, longest, context_length, encode, start)

    # ---- bounds (before any tokenization) ---------------------------------------------------

    def check(self, text: str, param: str) -> None:
        # A character is at least one byte: a too long string is refused without encoding it.
        if len(text) > self.max_bytes or len(text.encode("utf-8", "surrogatepass")) > self.max_bytes:
            self._too_long(param)

    def check_messages(self, messages: list[dict]) -> None:
        if len(messages) > self.context_length:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {self.context_length} tokens. However, you sent "
                f"{len(messages)} messages, and every message takes at least one token. Please send fewer "
                "messages.", param="messages")
        self.check("".join(m["content"] for m in messages), "messages")

    def _too_long(self, param: str) -> None:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {self.context_length} tokens, and no token of it "
            f"covers more than {self.longest_piece} bytes, so your {param} cannot fit (more than "
            f"{self.max_bytes} bytes). Please reduce the length of the {param}.", param=param)

    # ---- chat templates ------------------------------------------------------------------------

    @staticmethod
    def marked(messages: list[dict]) -> list[dict]:
        """The messages with a marker in place of each content, to render the template with."""
        return [{**m, "content": f"\ue000{i}\ue001"} for i, m in enumerate(messages)]

    def fragments(self, rendered: str, messages: list[dict]) -> list[str | int]:
        """The rendered template (of `marked` messages) as raw text fragments (str) and the
        template's control tokens (int), with each message's content back in as text."""
        out: list[str | int] = []
        for k, part in enumerate(_MARK.split(rendered)):
            if k % 2:  # a marker: the content of message int(part)
                self._add_text(out, messages[int(part)]["content"])
                continue
            if "\ue000" in part or "\ue001" in part:
                raise InvalidRequest("This model's chat template changes message contents in a way that "
                                     "cannot be tokenized safely; use /v1/completions with a raw prompt.",
                                     param="model")
            self._add_template(out, part)
        return out

    def _add_template(self, out: list[str | int], text: str) -> None:
        start = 0
        for m in self._split.finditer(text) if self._split else ():
            self._add_text(out, text[start:m.start()])
            out.append(self.specials[m.group()])
            start = m.end()
        self._add_text(out, text[start:])

    @staticmethod
    def _add_text(out: list[str | int], text: str) -> None:
        if not text:
            return
        if out and isinstance(out[-1], str):
            out[-1] += text  # one raw fragment, as a whole-string tokenization would see it
        else:
            out.append(text)

    # ---- tokenization --------------------------------------------------------------------------

    def tokenize(self, fragments: list[str | int], add_bos: bool, live=None) -> list[int]:
        """Token ids of `fragments` (text tokenized without special-token parsing); stops with
        Cancelled between fragments once `live.cancelled` is set."""
        ids: list[int] = []
        for i, fragment in enumerate(fragments):
            if live is not None and live.cancelled:
                raise Cancelled()
            if isinstance(fragment, int):
                ids.append(fragment)
            else:
                ids.extend(self._encode(fragment, add_bos and i == 0))
        return ids

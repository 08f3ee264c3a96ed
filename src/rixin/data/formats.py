"""The fine-tuning file format checker: what OpenAI's data format checker does, for JSONL files.

`check_file` streams a training file line by line (files can be 512 MB, so it never reads one
whole), works out its format (chat, prompt/completion, preference or plain text), and reports
EVERY problem it finds, each with its 1-based line number, the offending field and the fix.
Blank lines are skipped but still counted, so the line numbers match the user's editor.

Formats and the training methods that take them:

    supervised             chat               {"messages": [...], "tools": [...]?}
                           prompt_completion  {"prompt": "...", "completion": "..."}
    dpo                    preference         {"input": {"messages": [...]},
                                               "preferred_output": [...], "non_preferred_output": [...]}
    continued_pretraining  text               {"text": "..."}          (a rixin extension)

Every validator below has the same shape: it takes the parsed value, the parameter path that
names it ("messages[2].role") and a `_Report` for the current line; it never raises on bad
data. An example counts as valid when its validator reported nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rixin.data.format_rules import (MISSING, check_message, check_message_list, check_tools, json_kind,
                                     show, unknown_keys)
from rixin.errors import InvalidRequest

# Every code a Problem can carry; docs/fine-tuning-data.md explains each (a test keeps them equal).
PROBLEM_CODES = (
    "invalid_encoding", "invalid_json", "not_an_object", "missing_messages", "invalid_messages",
    "missing_role", "invalid_role", "missing_content", "invalid_content_type", "unknown_key",
    "invalid_type", "invalid_weight", "no_assistant_message", "invalid_tool_message",
    "invalid_tool_calls", "invalid_tools", "invalid_prompt_completion",
    "invalid_preference_example", "invalid_text", "mixed_formats", "wrong_format_for_method",
    "example_too_long", "empty_file", "too_few_examples", "too_many_problems",
)
METHOD_FORMATS: dict[str, tuple[str, ...]] = {
    "supervised": ("chat", "prompt_completion"),
    "dpo": ("preference",),
    "continued_pretraining": ("text",),
}
# The method that trains on each format, for "use method X instead" hints.
FORMAT_METHOD = {"chat": "supervised", "prompt_completion": "supervised", "preference": "dpo",
                 "text": "continued_pretraining"}
FORMAT_LABELS = {"chat": "chat", "prompt_completion": "prompt/completion",
                 "preference": "preference", "text": "text"}
CHAT_KEYS = ("messages", "tools", "functions", "parallel_tool_calls")
PREFERENCE_KEYS = ("input", "preferred_output", "non_preferred_output")
INPUT_KEYS = ("messages", "tools", "parallel_tool_calls")
PROMPT_COMPLETION_KEYS = ("prompt", "completion")
TEXT_KEYS = ("text",)
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
CHAT_SHAPE = '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'
PREFERENCE_SHAPE = ('{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", ...}], '
                    '"non_preferred_output": [{"role": "assistant", ...}]}')
SHAPES = {"chat": CHAT_SHAPE, "prompt_completion": '{"prompt": "...", "completion": "..."}',
          "preference": PREFERENCE_SHAPE, "text": '{"text": "..."}'}
# What a line with none of a format's keys is reported as: (code, param, the key(s) it lacks).
UNRECOGNISED = {
    "chat": ("missing_messages", "messages", "'messages' key"),
    "prompt_completion": ("invalid_prompt_completion", "prompt", "'prompt' and 'completion' keys"),
    "preference": ("invalid_preference_example", "input", "'input', 'preferred_output' and "
                   "'non_preferred_output' keys"),
    "text": ("invalid_text", "text", "'text' key"),
}


@dataclass
class Problem:
    """One problem in a training file."""

    line: int | None  # 1-based line in the file; None for file-level problems
    code: str  # stable machine-readable code, see docs/fine-tuning-data.md
    param: str  # where in the line: "messages[2].role"; "" for the whole line or file
    message: str  # for people: names the line, the field and the fix


@dataclass
class FormatReport:
    """What `check_file` found: the file's format, its valid examples and every problem."""

    format: str | None  # "chat" | "prompt_completion" | "preference" | "text"; None if unknown
    examples: int  # valid examples in the file's format
    problems: list[Problem] = field(default_factory=list)
    token_counts: list[int] = field(default_factory=list)  # per valid example, with a counter

    @property
    def ok(self) -> bool:
        return not self.problems


class _TooManyProblems(Exception):
    """Raised inside the scan once the problem cap is reached; check_file stops there."""


class _Problems:
    """The problems of one check, capped at `cap`."""

    def __init__(self, cap: int) -> None:
        self.items: list[Problem] = []
        self.cap = cap

    def add(self, problem: Problem) -> None:
        if len(self.items) >= self.cap:
            raise _TooManyProblems
        self.items.append(problem)


class _Report:
    """Reports problems of one line; prefixes each message with "Line N: "."""

    def __init__(self, problems: _Problems, line: int) -> None:
        self.problems = problems
        self.line = line
        self.count = 0

    def __call__(self, code: str, param: str, text: str) -> None:
        self.count += 1
        self.problems.add(Problem(self.line, code, param, f"Line {self.line}: {text}"))



# ---------------------------------------------------------------------------- example formats


def _check_chat(obj: dict, report: _Report) -> None:
    messages = obj.get("messages", MISSING)
    unknown_keys(obj, CHAT_KEYS, "", "a chat example", report)
    check_tools(obj, "", report)
    if not check_message_list(messages, "messages", ("missing_messages", "invalid_messages"), report):
        return
    roles = [check_message(m, f"messages[{i}]", report, allow_weight=True)
             for i, m in enumerate(messages)]
    assistants = [m for m, role in zip(messages, roles) if role == "assistant"]
    if not assistants:
        if all(role is not None for role in roles):  # else the role problems say it already
            report("no_assistant_message", "messages", "no assistant message; every example needs "
                   "at least one message with role 'assistant' (the target the model learns).")
    elif all(m.get("weight", 1) == 0 for m in assistants):
        report("invalid_weight", "messages", "every assistant message in 'messages' has weight 0, so "
               "the model learns nothing from this example; set weight 1 on at least one.")


def _check_output(obj: dict, key: str, report: _Report) -> None:
    """preferred_output / non_preferred_output: a non-empty list of assistant messages."""
    output = obj.get(key, MISSING)
    shape = '[{"role": "assistant", "content": "..."}]'
    if output is MISSING or output is None:
        report("invalid_preference_example", key, f"'{key}' is missing; give the assistant "
               f"answer as a list, e.g. {shape}.")
        return
    if not isinstance(output, list) or not output:
        got = json_kind(output) if output != [] else "an empty list"
        report("invalid_preference_example", key, f"'{key}' must be a non-empty list of assistant "
               f"messages, e.g. {shape}; got {got}.")
        return
    for i, message in enumerate(output):
        role = check_message(message, f"{key}[{i}]", report, allow_weight=False)
        if role is not None and role != "assistant":
            report("invalid_preference_example", f"{key}[{i}].role", f"{key}[{i}].role is "
                   f"{show(role)}; preference outputs are assistant messages, use 'assistant'.")


def _check_preference(obj: dict, report: _Report) -> None:
    unknown_keys(obj, PREFERENCE_KEYS, "", "a preference example", report)
    given = obj.get("input", MISSING)
    if not isinstance(given, dict):
        state = "missing" if given is MISSING else json_kind(given)
        report("invalid_preference_example", "input", f"'input' is {state}; a preference example "
               f"is {PREFERENCE_SHAPE}.")
    else:
        unknown_keys(given, INPUT_KEYS, "input", "a preference input", report)
        messages = given.get("messages", MISSING)
        codes = ("invalid_preference_example", "invalid_preference_example")
        if check_message_list(messages, "input.messages", codes, report):
            for i, message in enumerate(messages):
                check_message(message, f"input.messages[{i}]", report, allow_weight=False)
        check_tools(given, "input", report)
    for key in ("preferred_output", "non_preferred_output"):
        _check_output(obj, key, report)


def _check_prompt_completion(obj: dict, report: _Report) -> None:
    unknown_keys(obj, PROMPT_COMPLETION_KEYS, "", "a prompt/completion example", report)
    for key in PROMPT_COMPLETION_KEYS:
        value = obj.get(key, MISSING)
        if value is MISSING:
            report("invalid_prompt_completion", key, f"'{key}' is missing; a prompt/completion "
                   'example is {"prompt": "...", "completion": "..."}.')
        elif not isinstance(value, str):
            report("invalid_prompt_completion", key, f"'{key}' is {json_kind(value)}; it must be a "
                   "string.")
    if obj.get("completion") == "":
        report("invalid_prompt_completion", "completion", "'completion' is empty; it is the text "
               "the model learns to write, so it must not be empty.")


def _check_text(obj: dict, report: _Report) -> None:
    unknown_keys(obj, TEXT_KEYS, "", "a continued-pretraining example", report)
    text = obj.get("text", MISSING)
    if text is MISSING:
        report("invalid_text", "text", "'text' is missing; a continued-pretraining example is "
               '{"text": "..."}.')
    elif not isinstance(text, str):
        report("invalid_text", "text", f"'text' is {json_kind(text)}; it must be a string.")
    elif not text.strip():
        report("invalid_text", "text", "'text' is empty; put the document's text in it or remove "
               "the line.")


CHECKS: dict[str, Callable[[dict, _Report], None]] = {
    "chat": _check_chat,
    "prompt_completion": _check_prompt_completion,
    "preference": _check_preference,
    "text": _check_text,
}


def detect_format(obj: dict) -> str | None:
    """The format a parsed line claims by its keys; None when it has none of them."""
    if "messages" in obj:
        return "chat"
    if any(key in obj for key in PREFERENCE_KEYS):
        return "preference"
    if any(key in obj for key in PROMPT_COMPLETION_KEYS):
        return "prompt_completion"
    if "text" in obj:
        return "text"
    return None


# ---------------------------------------------------------------------------- the scan


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _parse_line(raw: bytes, report: _Report, method: str) -> dict | None:
    """Decodes and parses one line; reports and returns None when it is not a JSON object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        report("invalid_encoding", "", f"byte 0x{raw[e.start]:02x} at position {e.start + 1} of the "
               "line is not valid UTF-8; save the file as UTF-8.")
        return None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        where = f" at column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        reason = e.msg if isinstance(e, json.JSONDecodeError) else str(e) or type(e).__name__
        hint = (" The file looks like pretty-printed JSON; JSONL needs each example on one line."
                if text.strip() in ("[", "{", "]", "}") else "")
        report("invalid_json", "", f"not valid JSON ({reason}{where}); each line must be one "
               f"complete JSON object.{hint}")
        return None
    if not isinstance(obj, dict):
        kind = "a JSON array" if isinstance(obj, list) else json_kind(obj)
        report("not_an_object", "", f"the line is {kind}, not a JSON object; each line must "
               f"be one example object such as {SHAPES[METHOD_FORMATS[method][0]]}.")
        return None
    return obj


@dataclass
class _Scan:
    """The state of one pass over a file."""

    method: str
    count_tokens: Callable[[dict], int] | None
    max_tokens: int | None
    problems: _Problems
    format: str | None = None
    format_line: int = 0
    mixed_reported: bool = False
    nonblank: int = 0
    examples: int = 0
    line: int = 0
    token_counts: list[int] = field(default_factory=list)

    def feed(self, number: int, raw: bytes) -> None:
        self.line = number
        if not raw.strip():
            return  # blank lines are tolerated, but still counted for line numbers
        self.nonblank += 1
        report = _Report(self.problems, number)
        obj = _parse_line(raw, report, self.method)
        if obj is None:
            return
        kind = detect_format(obj)
        if kind is None:
            self._unrecognised(obj, report)
            return
        self._check_consistency(kind, report)
        before = report.count
        CHECKS[kind](obj, report)
        if report.count == before and kind == self.format:
            self.examples += 1
            self._count_tokens(obj, report)

    def _unrecognised(self, obj: dict, report: _Report) -> None:
        """A line with none of the known keys: one problem, in the terms of the expected format."""
        expected = self.format or METHOD_FORMATS[self.method][0]
        code, param, keys = UNRECOGNISED[expected]
        report(code, param, f"no {keys} (keys found: {', '.join(obj) or 'none'}); "
               f"a {FORMAT_LABELS[expected]} example is {SHAPES[expected]}.")

    def _check_consistency(self, kind: str, report: _Report) -> None:
        """The first recognisable line fixes the file's format; it must suit the method."""
        if self.format is None:
            self.format, self.format_line = kind, report.line
            if kind not in METHOD_FORMATS[self.method]:
                wanted = " or ".join(FORMAT_LABELS[f] for f in METHOD_FORMATS[self.method])
                report("wrong_format_for_method", "", f"this is a {FORMAT_LABELS[kind]} example, but "
                       f"method '{self.method}' trains on {wanted} examples; use method "
                       f"'{FORMAT_METHOD[kind]}' for this file, or convert it.")
        elif kind != self.format and not self.mixed_reported:
            self.mixed_reported = True
            report("mixed_formats", "", f"this is a {FORMAT_LABELS[kind]} example, but the file "
                   f"holds {FORMAT_LABELS[self.format]} examples from line {self.format_line}; "
                   "use one format per file.")

    def _count_tokens(self, obj: dict, report: _Report) -> None:
        if self.count_tokens is None:
            return
        tokens = self.count_tokens(obj)
        self.token_counts.append(tokens)
        if self.max_tokens is not None and tokens > self.max_tokens:
            report("example_too_long", "", f"the example has {tokens:,} tokens; the model's "
                   f"context is {self.max_tokens:,}. Shorten it or split it.")


def _check_arguments(method: str, count_tokens: Callable | None, max_tokens: int | None,
                     min_examples: int, max_problems: int) -> None:
    if method not in METHOD_FORMATS:
        raise InvalidRequest(f"method is {method!r}; use one of {', '.join(METHOD_FORMATS)}.",
                             param="method")
    if max_tokens is not None and (count_tokens is None or max_tokens < 1):
        raise InvalidRequest("max_tokens needs count_tokens (a function that counts an example's "
                             "tokens) and must be at least 1.", param="max_tokens")
    if min_examples < 0:
        raise InvalidRequest(f"min_examples is {min_examples}; use 0 or more.", param="min_examples")
    if max_problems < 1:
        raise InvalidRequest(f"max_problems is {max_problems}; use 1 or more.", param="max_problems")


def _scan(path: Path, scan: _Scan) -> bool:
    """Feeds the file to `scan` one line at a time; False when it had to give up early."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1:
                if raw.startswith(UTF16_BOMS):
                    scan.nonblank += 1
                    scan.problems.add(Problem(1, "invalid_encoding", "", "Line 1: the file is "
                                              "UTF-16; save it as UTF-8."))
                    return False
                raw = raw.removeprefix(UTF8_BOM)
            scan.feed(number, raw)
    return True


def _file_problems(scan: _Scan, min_examples: int) -> None:
    if scan.nonblank == 0:
        scan.problems.add(Problem(None, "empty_file", "", "The file is empty (or has only blank "
                                  "lines); write one JSON example object per line."))
    elif scan.examples < min_examples:
        fix = "fix the problems above or add examples" if scan.problems.items else "add examples"
        scan.problems.add(Problem(None, "too_few_examples", "", f"The file has {scan.examples} "
                                  f"valid example(s); fine-tuning needs at least {min_examples}: {fix}."))


def check_file(path: str | Path, *, method: str = "supervised",
               count_tokens: Callable[[dict], int] | None = None, max_tokens: int | None = None,
               min_examples: int = 10, max_problems: int = 100) -> FormatReport:
    """Checks a JSONL training file for `method`; reports every problem with its line.

    `count_tokens(example) -> int` is called on each valid example (its counts land in
    `token_counts`); with `max_tokens` too, every example longer than that is a problem.
    After `max_problems` problems the check stops and says so ("too_many_problems").
    """
    _check_arguments(method, count_tokens, max_tokens, min_examples, max_problems)
    problems = _Problems(max_problems)
    scan = _Scan(method, count_tokens, max_tokens, problems)
    try:
        if _scan(Path(path), scan):
            _file_problems(scan, min_examples)
    except _TooManyProblems:
        problems.items.append(Problem(None, "too_many_problems", "", f"Stopped at line {scan.line} "
                                      f"after {max_problems} problems; fix these and check the "
                                      "file again to see the rest."))
    return FormatReport(scan.format, scan.examples, problems.items, scan.token_counts)

"""Tool calling's one format (docs/tools.md, docs/decisions/0008): the tools a request (or a
fine-tuning example) declares, the messages rendered for a chat template, the grammar that
constrains a reply, and the reply read back into OpenAI's `tool_calls`.

The format is the Hermes / Qwen2.5 one, written into plain {role, content} messages so that
every chat template renders it (SmolLM2's knows nothing of tools):

- the tools go into the system message, one JSON signature a line inside <tools></tools>;
- an assistant's call is `<tool_call>\\n{"name": NAME, "arguments": {...}}\\n</tool_call>`
  (several calls: one block after another, a newline apart);
- a tool result is a user turn `<tool_response>\\n...\\n</tool_response>` (consecutive
  results share one turn).

A reply is a tool-call block if and only if it begins with `<tool_call>`: the grammar for
`auto` offers exactly two ways to start (that literal, or any other character), so the model
decides with its first token, and the reader never has to guess. Serving (api/chat) and
training (train/data.py) render through `render`, so a model learns the format it is served in.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from rixin.errors import InvalidRequest
from rixin.gbnf import check_gbnf, literal, prefixed
from rixin.grammar import MAX_GRAMMAR_CHARS, check_decodable, gbnf
from rixin.schemas import check_schema

OPEN, CLOSE = "<tool_call>", "</tool_call>"
MAX_TOOLS = 128
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
EMPTY_PARAMETERS = {"type": "object", "properties": {}}
SYSTEM = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{signatures}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


@dataclass(frozen=True)
class Function:
    name: str
    description: str | None
    parameters: dict
    strict: bool

    def signature(self) -> dict:
        fn = {"name": self.name, "parameters": self.parameters}
        if self.description:
            fn["description"] = self.description
        return {"type": "function", "function": fn}


# ------------------------------------------------------------------ requests


def _bad(message: str, param: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def check_tools(tools: list | None) -> list[Function]:
    """The request's `tools` as Functions, or a 400 naming the field that is wrong."""
    if not tools:
        return []
    if len(tools) > MAX_TOOLS:
        raise _bad(f"Too many tools: {len(tools)}; at most {MAX_TOOLS} per request.", "tools", "array_above_max_length")
    out: list[Function] = []
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _bad(f"Invalid '{p}.type': only tools of type 'function' are supported "
                       '(write {"type": "function", "function": {"name": ..., "parameters": {...}}}).', f"{p}.type")
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise _bad(f"Missing required parameter: '{p}.function' (an object with name and parameters).",
                       f"{p}.function", "missing_required_parameter")
        name = fn.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise _bad(f"Invalid '{p}.function.name': {json.dumps(name)}; a name is 1-64 characters of "
                       "a-z, A-Z, 0-9, underscores and dashes.", f"{p}.function.name")
        if any(f.name == name for f in out):
            raise _bad(f"Duplicate tool name '{name}' in '{p}.function.name'; every tool needs its own name.",
                       f"{p}.function.name")
        description = fn.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad(f"Invalid '{p}.function.description': it must be a string.", f"{p}.function.description")
        strict = fn.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise _bad(f"Invalid '{p}.function.strict': it must be a boolean.", f"{p}.function.strict")
        parameters = fn.get("parameters", EMPTY_PARAMETERS)
        param = f"{p}.function.parameters"
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise _bad(f"Invalid '{param}': a function's parameters are a JSON schema of type 'object'.", param)
        check_schema(parameters, param=param, checker=check_decodable)
        out.append(Function(name, description, parameters, bool(strict)))
    return out


def declared(tools: list | None) -> list[Function]:
    """The functions of a fine-tuning example's `tools` (already checked by data/formats.py),
    for rendering only: no grammar is built from them, so their schemas are not re-checked."""
    out = []
    for tool in tools or []:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out.append(Function(fn["name"], fn.get("description"), fn.get("parameters", EMPTY_PARAMETERS),
                                bool(fn.get("strict"))))
    return out


@dataclass(frozen=True)
class Choice:
    """What the reply may be: mode 'none' (text), 'auto' (text or calls), 'required' (calls),
    'named' (calls of `name` only); `parallel`: more than one call allowed."""

    mode: str
    name: str | None = None
    parallel: bool = True

    @property
    def calls(self) -> bool:
        return self.mode != "none"

    @property
    def forced(self) -> bool:
        return self.mode in ("required", "named")


def check_choice(tool_choice, parallel: bool | None, functions: list[Function]) -> Choice:
    """`tool_choice` and `parallel_tool_calls` against the declared tools, or a 400."""
    if not functions:
        for field, value in (("tool_choice", tool_choice), ("parallel_tool_calls", parallel)):
            if value is not None:
                raise _bad(f"'{field}' is only allowed when 'tools' are specified; add tools or remove it.", field)
        return Choice("none")
    parallel = True if parallel is None else parallel
    if tool_choice is None:
        return Choice("auto", parallel=parallel)
    if isinstance(tool_choice, str):
        if tool_choice not in ("none", "auto", "required"):
            raise _bad(f"Invalid 'tool_choice': '{tool_choice}'; use 'none', 'auto', 'required' or "
                       '{"type": "function", "function": {"name": "..."}}.', "tool_choice")
        return Choice(tool_choice, parallel=parallel)
    fn = tool_choice.get("function") if tool_choice.get("type") == "function" else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str):
        raise _bad('Invalid \'tool_choice\': name a function as {"type": "function", "function": {"name": "..."}}.',
                   "tool_choice")
    if not any(f.name == name for f in functions):
        raise _bad(f"Invalid 'tool_choice': function '{name}' is not in 'tools' (declared: "
                   f"{', '.join(f.name for f in functions)}).", "tool_choice.function.name")
    return Choice("named", name, parallel)


# ------------------------------------------------------------------ prompt


def _arguments(text) -> str:
    """A call's arguments as the prompt shows them: normalised JSON when they parse (the form
    the grammar makes the model write), the client's text otherwise."""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except (TypeError, ValueError):
        return text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)


def call_block(name: str, arguments: str) -> str:
    return f'{OPEN}\n{{"name": {json.dumps(name)}, "arguments": {_arguments(arguments)}}}\n{CLOSE}'


def render(messages: list[dict], functions: list[Function]) -> list[dict]:
    """Messages (role; content a string or None; assistant `tool_calls`; tool `tool_call_id`)
    as plain {role, content} messages in the format above. Other keys of a message (a
    training `weight`) are kept on assistant messages."""
    out: list[dict] = []
    for m in messages:
        role, content = m["role"], m.get("content") or ""
        if role == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1].get("tool_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "tool_results": True})
            continue
        if role == "assistant" and m.get("tool_calls"):
            calls = [call_block(c["function"]["name"], c["function"].get("arguments", "{}")) for c in m["tool_calls"]]
            content = "\n".join(([content] if content else []) + calls)
        extra = {k: v for k, v in m.items() if k == "weight"} if role == "assistant" else {}
        out.append({"role": role, "content": content, **extra})
    for m in out:
        m.pop("tool_results", None)
    if functions:
        tools = SYSTEM.format(signatures="\n".join(json.dumps(f.signature(), ensure_ascii=False) for f in functions))
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{tools}" if out[0]["content"] else tools}
        else:
            out.insert(0, {"role": "system", "content": tools})
    return out


# ------------------------------------------------------------------ decoding


def grammar(functions: list[Function], choice: Choice) -> str | None:
    """The GBNF grammar of a reply under `choice`: for 'required' one call (or, parallel, one or
    more, a newline apart) of the declared functions, each call's arguments valid against its
    schema; 'named': of that function only; 'auto': those calls or a text answer, which is any
    text that does not start with '<'. None for 'none' (plain text)."""
    if not choice.calls:
        return None
    rules, alternatives = [], []
    for i, fn in enumerate(functions):
        if choice.mode == "named" and fn.name != choice.name:
            continue
        rules.append(prefixed(gbnf(fn.parameters), f"t{i}-"))
        head = literal(f'{OPEN}\n{{"name": "{fn.name}", "arguments": ')
        alternatives.append(f"{head} t{i}-root {literal('}' + chr(10) + CLOSE)}")
    calls = 'tool-call ("\\n" tool-call)*' if choice.parallel else "tool-call"
    root = f"root ::= {calls} | tool-text" if choice.mode == "auto" else f"root ::= {calls}"
    text = "\n".join([root, f"tool-call ::= {' | '.join(alternatives)}", "tool-text ::= [^<] .*", *rules])
    why = check_gbnf(text)
    if why is not None or len(text) > MAX_GRAMMAR_CHARS:
        raise _bad(f"These tools make a grammar llama.cpp cannot use ({why or 'too large'}); simplify the "
                   "function parameters.", "tools")
    return text


# ------------------------------------------------------------------ replies

_HEAD = re.compile(r'<tool_call>\s*\{\s*"name"\s*:\s*"([^"\\]*)"\s*,\s*"arguments"\s*:\s*')
_END = re.compile(r"\}\n</tool_call>")  # a raw newline never occurs inside a JSON string the grammar allows


@dataclass
class Call:
    name: str
    arguments: str
    """The arguments' JSON text; while `complete` is False, the part known so far."""
    complete: bool


def scan(text: str, final: bool) -> tuple[str, list[Call]]:
    """('text' | 'calls' | 'pending', calls) of a reply so far. 'pending': it may still become
    either (a prefix of `<tool_call>`); with `final`, it is text. A partial call's arguments
    stop before its last '}' (which may be the wrapper's), so they only ever grow."""
    if not text.startswith(OPEN):
        return ("pending" if OPEN.startswith(text) and not final else "text"), []
    calls, pos = [], 0
    while (head := _HEAD.match(text, pos)) is not None:
        end = _END.search(text, head.end())
        if end is None:
            partial = text[head.end():]
            cut = partial.rfind("}")
            calls.append(Call(head.group(1), (partial if final or cut < 0 else partial[:cut]).rstrip(), False))
            break
        calls.append(Call(head.group(1), text[head.end():end.start()].strip(), True))
        pos = end.end()
        while pos < len(text) and text[pos] in " \n":
            pos += 1
    return "calls", calls


def call_id(completion_id: str, choice: int, call: int) -> str:
    """The same id for a call in the stream, the whole answer and the logged one."""
    return "call_" + hashlib.sha256(f"{completion_id}:{choice}:{call}".encode()).hexdigest()[:24]

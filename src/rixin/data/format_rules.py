"""The message-level rules of the fine-tuning format checker (formats.py): roles, content
parts, weights, tool calls and tool definitions, as OpenAI's checker applies them.

Every rule takes the parsed value, the parameter path that names it ("messages[2].role") and
the line's report callable (a `LineReport`); it never raises on bad data. The names without
a leading underscore are what formats.py builds the example formats from.
"""

from __future__ import annotations

import json
from typing import Any, Protocol


class LineReport(Protocol):
    """Where a rule reports a problem of the current line: a stable code, the parameter path
    and a message for people that says what to fix."""

    def __call__(self, code: str, param: str, text: str) -> None: ...


ROLES = ("system", "developer", "user", "assistant", "tool")
LEGACY_ROLES = ("function",)  # accepted like OpenAI does; counted as a tool message
MESSAGE_KEYS = ("role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id",
                "refusal")
PART_KEYS = ("type", "text")
MISSING: Any = object()  # a key absent from its object (None is JSON null)

# ---------------------------------------------------------------------------- small helpers


def json_kind(value: Any) -> str:
    """The JSON type of `value`, with its article: "a string", "null", "an object"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def show(value: Any) -> str:
    """A short rendering of a value for messages: 'bot' for strings, else its JSON kind."""
    if value is MISSING:
        return "missing"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value}"
    return json_kind(value)


def _at(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def unknown_keys(obj: dict, allowed: tuple[str, ...], prefix: str, what: str, report: LineReport) -> None:
    for key in obj:
        if key not in allowed:
            report("unknown_key", _at(prefix, key),
                   f"{_at(prefix, key)} is not a field of {what}; remove it "
                   f"(allowed: {', '.join(allowed)}).")


def _nonempty_string(value: Any) -> bool:
    return isinstance(value, str) and value != ""


# ---------------------------------------------------------------------------- messages


def _check_role(message: dict, param: str, report: LineReport) -> str | None:
    """Reports a missing or unknown role; returns the role when it is a known one."""
    role = message.get("role", MISSING)
    if role is MISSING:
        report("missing_role", f"{param}.role",
               f"{param}.role is missing; add one of {', '.join(ROLES)}.")
        return None
    if role not in ROLES and role not in LEGACY_ROLES:
        report("invalid_role", f"{param}.role",
               f"{param}.role is {show(role)}; use one of {', '.join(ROLES)}.")
        return None
    return role


def _check_part(part: Any, param: str, report: LineReport) -> None:
    """One content part: only {"type": "text", "text": "..."} can be trained on."""
    if not isinstance(part, dict):
        report("invalid_content_type", param,
               f'{param} is {json_kind(part)}; each content part must be {{"type": "text", "text": "..."}}.')
        return
    kind = part.get("type", MISSING)
    if kind != "text":
        report("invalid_content_type", f"{param}.type",
               f"{param}.type is {show(kind)}; only 'text' parts can be trained on: "
               'use {"type": "text", "text": "..."} or remove the part.')
        return
    text = part.get("text", MISSING)
    if text is MISSING:
        report("missing_content", f"{param}.text",
               f"{param}.text is missing; put the part's words in it.")
    elif not isinstance(text, str):
        report("invalid_content_type", f"{param}.text",
               f"{param}.text is {json_kind(text)}; it must be a string.")
    unknown_keys(part, PART_KEYS, param, "a content part", report)


def _check_content(message: dict, role: str | None, param: str, report: LineReport) -> None:
    p = f"{param}.content"
    content = message.get("content", MISSING)
    # An assistant message that calls a tool (or refuses) may leave its content null or empty.
    may_be_empty = role == "assistant" and any(
        message.get(k) for k in ("tool_calls", "function_call", "refusal"))
    if content is MISSING or content is None:
        if not may_be_empty:
            state = "missing" if content is MISSING else "null"
            report("missing_content", p,
                   f"{p} is {state}; give the message's text (only an assistant message with "
                   "tool_calls may leave it null).")
    elif isinstance(content, str):
        if content == "" and not may_be_empty:
            report("missing_content", p, f"{p} is an empty string; write the message's text.")
    elif isinstance(content, list):
        if not content and not may_be_empty:
            report("missing_content", p, f"{p} is an empty list; give at least one text part.")
        for j, part in enumerate(content):
            _check_part(part, f"{p}[{j}]", report)
    else:
        report("invalid_content_type", p,
               f'{p} is {json_kind(content)}; use a string or a list of {{"type": "text", "text": "..."}} '
               "parts.")


def _check_weight(message: dict, role: str | None, param: str, allow: bool, report: LineReport) -> None:
    if "weight" not in message:
        return
    p, weight = f"{param}.weight", message["weight"]
    if not allow:
        report("invalid_weight", p, f"{p} is set, but weight is used only in supervised chat "
               "examples; remove it.")
    elif role is not None and role != "assistant":
        report("invalid_weight", p, f"{p} is set on a {role} message; weight applies only to "
               "assistant messages, remove it.")
    elif isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight not in (0, 1):
        report("invalid_weight", p, f"{p} is {show(weight)}; use 0 (do not train on this "
               "message) or 1 (train on it).")


def _check_function(fn: Any, param: str, report: LineReport) -> None:
    """A function call: {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}."""
    if not isinstance(fn, dict):
        report("invalid_tool_calls", param, f'{param} is {json_kind(fn)}; it must be an object '
               '{"name": "...", "arguments": "{...}"}.')
        return
    if not _nonempty_string(fn.get("name")):
        report("invalid_tool_calls", f"{param}.name", f"{param}.name is {show(fn.get('name', MISSING))}; "
               "give the name of the function called.")
    arguments = fn.get("arguments", MISSING)
    if not isinstance(arguments, str):
        report("invalid_tool_calls", f"{param}.arguments",
               f"{param}.arguments is {show(arguments)}; it must be the arguments encoded as a "
               'JSON string, e.g. "{\\"city\\": \\"Paris\\"}".')
        return
    try:
        json.loads(arguments)
    except (ValueError, RecursionError) as e:
        reason = e.msg if isinstance(e, json.JSONDecodeError) else type(e).__name__
        report("invalid_tool_calls", f"{param}.arguments",
               f"{param}.arguments is not valid JSON ({reason}); encode the arguments object as JSON.")


def _check_tool_call(call: Any, param: str, report: LineReport) -> None:
    if not isinstance(call, dict):
        report("invalid_tool_calls", param, f'{param} is {json_kind(call)}; each tool call must be an '
               'object {"id": "call_1", "type": "function", "function": {...}}.')
        return
    if not _nonempty_string(call.get("id")):
        report("invalid_tool_calls", f"{param}.id", f"{param}.id is {show(call.get('id', MISSING))}; "
               'give the call an id (e.g. "call_1") for the tool message to answer.')
    if call.get("type") != "function":
        report("invalid_tool_calls", f"{param}.type",
               f"{param}.type is {show(call.get('type', MISSING))}; use 'function'.")
    _check_function(call.get("function", MISSING), f"{param}.function", report)


def _check_calls(message: dict, role: str | None, param: str, report: LineReport) -> None:
    """`tool_calls` (and the legacy `function_call`) belong to assistant messages only."""
    for key in ("tool_calls", "function_call"):
        value = message.get(key)
        if value is None:
            continue
        p = f"{param}.{key}"
        if role is not None and role != "assistant":
            report("invalid_tool_calls", p, f"{p} is set on a {role} message; only assistant "
                   "messages call tools, move it or remove it.")
        elif key == "function_call":
            _check_function(value, p, report)
        elif not isinstance(value, list) or not value:
            report("invalid_tool_calls", p, f"{p} is {'empty' if value == [] else json_kind(value)}; it must "
                   "be a non-empty list of tool calls (or left out).")
        else:
            for k, call in enumerate(value):
                _check_tool_call(call, f"{p}[{k}]", report)


def check_message(message: Any, param: str, report: LineReport, *, allow_weight: bool) -> str | None:
    """Checks one message object; returns its role when that role is a known one."""
    if not isinstance(message, dict):
        report("not_an_object", param, f'{param} is {json_kind(message)}; each message must be an '
               'object like {"role": "user", "content": "..."}.')
        return None
    unknown_keys(message, MESSAGE_KEYS, param, "a message", report)
    role = _check_role(message, param, report)
    _check_content(message, role, param, report)
    _check_weight(message, role, param, allow_weight, report)
    _check_calls(message, role, param, report)
    if role == "tool" and not _nonempty_string(message.get("tool_call_id")):
        report("invalid_tool_message", f"{param}.tool_call_id",
               f"{param}.tool_call_id is {show(message.get('tool_call_id', MISSING))}; a tool "
               "message must give the id of the "
               'assistant tool call it answers (e.g. "call_1").')
    for key in ("name", "refusal"):
        if message.get(key) is not None and not isinstance(message[key], str):
            report("invalid_type", f"{param}.{key}", f"{param}.{key} is {json_kind(message[key])}; "
                   "it must be a string.")
    return role


def check_message_list(value: Any, param: str, codes: tuple[str, str], report: LineReport) -> bool:
    """A non-empty list of messages? Reports with codes (missing or empty, not a list) if not."""
    missing, invalid = codes
    if value is MISSING:
        report(missing, param, f"'{param}' is missing; give a list of message objects.")
    elif not isinstance(value, list):
        report(invalid, param, f"'{param}' must be a list of message objects, got {json_kind(value)}.")
    elif not value:
        report(missing, param, f"'{param}' is empty; give at least one message.")
    else:
        return True
    return False


def _check_tool_definition(item: Any, param: str, report: LineReport) -> None:
    """One entry of `tools`: {"type": "function", "function": {"name": "...", ...}}."""
    if not isinstance(item, dict):
        report("invalid_tools", param, f'{param} is {json_kind(item)}; each tool must be an object '
               '{"type": "function", "function": {"name": "...", "parameters": {...}}}.')
    elif item.get("type") != "function":
        report("invalid_tools", f"{param}.type",
               f"{param}.type is {show(item.get('type', MISSING))}; use 'function'.")
    else:
        _check_function_definition(item.get("function", MISSING), f"{param}.function", report)


def _check_function_definition(fn: Any, param: str, report: LineReport) -> None:
    if not isinstance(fn, dict) or not _nonempty_string(fn.get("name")):
        report("invalid_tools", param, f"{param} must be an object with a 'name' (and optional "
               "'description' and 'parameters'), e.g. {\"name\": \"get_weather\"}.")
    elif "parameters" in fn and not isinstance(fn["parameters"], dict):
        report("invalid_tools", f"{param}.parameters", f"{param}.parameters is "
               f"{json_kind(fn['parameters'])}; it must be a JSON Schema object.")


def check_tools(obj: dict, prefix: str, report: LineReport) -> None:
    """Optional tool definitions: tools, legacy functions, parallel_tool_calls."""
    for key in ("tools", "functions"):
        if key not in obj:
            continue
        p, items = _at(prefix, key), obj[key]
        if not isinstance(items, list):
            report("invalid_tools", p, f"{p} is {json_kind(items)}; it must be a list of definitions.")
            continue
        for i, item in enumerate(items):
            if key == "tools":
                _check_tool_definition(item, f"{p}[{i}]", report)
            else:
                _check_function_definition(item, f"{p}[{i}]", report)
    if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
        p = _at(prefix, "parallel_tool_calls")
        report("invalid_tools", p, f"{p} is {json_kind(obj['parallel_tool_calls'])}; use true or false.")

"""Tool calls in a chat answer: the request's tools checked and rendered (rixin/toolcalls.py),
and a reply read back into OpenAI's shapes, whole (`message`) or as stream deltas (`Deltas`).
Both read the reply through `toolcalls.scan`, so a streamed answer accumulates to exactly the
calls of the whole one, with the same ids."""

from __future__ import annotations

from dataclasses import dataclass, field

from rixin import toolcalls
from rixin.errors import InvalidRequest
from rixin.toolcalls import Choice, Function


@dataclass(frozen=True)
class ToolPlan:
    """A request's tools: what the prompt declares, what the reply may be, its grammar."""

    functions: list[Function]
    choice: Choice
    grammar: str | None


def plan(body, constrains: bool) -> ToolPlan:
    """The request's tools, tool_choice and parallel_tool_calls checked (400 naming the field).
    `constrains`: the model's engine decodes under a grammar (llama.cpp); without one, 'auto'
    leaves the model free (its reply is still read as calls when it writes the format) and
    forcing a call is refused."""
    functions = toolcalls.check_tools(body.tools)
    choice = toolcalls.check_choice(body.tool_choice, body.parallel_tool_calls, functions)
    if choice.calls and body.response_format is not None and body.response_format.type != "text":
        raise InvalidRequest("'response_format' cannot be combined with tools yet; send tool_choice 'none' or "
                             "leave response_format out.", param="response_format", code="unsupported_parameter")
    if choice.forced and not constrains:
        raise InvalidRequest(f"The model '{body.model}' cannot force a tool call (its engine has no constrained "
                             "decoding); use tool_choice 'auto' or a GGUF model served by llama.cpp.",
                             param="tool_choice", code="unsupported_parameter")
    return ToolPlan(functions, choice, toolcalls.grammar(functions, choice) if constrains else None)


def _calls(text: str, final: bool, tools: ToolPlan) -> tuple[str, list[toolcalls.Call]]:
    if not tools.choice.calls:
        return "text", []
    return toolcalls.scan(text, final)


def message(text: str, finish_reason: str | None, tools: ToolPlan, cid: str, index: int) -> tuple[dict, str | None]:
    """(the assistant message, finish_reason) of a whole reply."""
    kind, calls = _calls(text, True, tools)
    if kind != "calls" or not calls:
        return {"role": "assistant", "content": text, "refusal": None}, finish_reason
    shaped = [{"id": toolcalls.call_id(cid, index, k), "type": "function",
               "function": {"name": c.name, "arguments": c.arguments}} for k, c in enumerate(calls)]
    reason = "tool_calls" if finish_reason == "stop" else finish_reason
    return {"role": "assistant", "content": None, "refusal": None, "tool_calls": shaped}, reason


@dataclass
class Deltas:
    """One choice's stream: the reply so far and what was sent of it."""

    tools: ToolPlan
    cid: str
    index: int
    text: str = ""
    sent_text: int = 0
    sent_args: list[int] = field(default_factory=list)

    def add(self, text: str, finish_reason: str | None) -> tuple[list[dict], str | None]:
        """The deltas this chunk's text adds, and the finish_reason to send with the last one."""
        self.text += text
        final = finish_reason is not None
        kind, calls = _calls(self.text, final, self.tools)
        if kind == "pending":
            return [], finish_reason
        if kind == "text" or (final and not calls and not self.sent_args):
            out = [{"content": self.text[self.sent_text:]}] if len(self.text) > self.sent_text else []
            self.sent_text = len(self.text)
            return out, finish_reason
        out = []
        for k, call in enumerate(calls):
            if k == len(self.sent_args):  # a new call: its id, type and name, arguments ""
                self.sent_args.append(0)
                out.append({"tool_calls": [{"index": k, "id": toolcalls.call_id(self.cid, self.index, k),
                                            "type": "function", "function": {"name": call.name, "arguments": ""}}]})
            if len(call.arguments) > self.sent_args[k]:
                fragment = call.arguments[self.sent_args[k]:]
                out.append({"tool_calls": [{"index": k, "function": {"arguments": fragment}}]})
                self.sent_args[k] = len(call.arguments)
        return out, ("tool_calls" if finish_reason == "stop" and calls else finish_reason)

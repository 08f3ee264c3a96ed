"""The fine-tuning file format checker: every malformed file reports exactly its problems.

Each case writes a JSONL file in tmp_path and asserts the exact (line, code, param) of every
problem reported, and that each line-level message starts with its line number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rixin.data import formats
from rixin.data.formats import PROBLEM_CODES, FormatReport, check_file
from rixin.errors import InvalidRequest

ROOT = Path(__file__).resolve().parents[1]

USER = {"role": "user", "content": "What is the capital of France?"}
ASSISTANT = {"role": "assistant", "content": "Paris."}
CHAT = {"messages": [{"role": "system", "content": "You are terse."}, USER, ASSISTANT]}
PROMPT_COMPLETION = {"prompt": "2 + 2 =", "completion": " 4"}
PREFERENCE = {
    "input": {"messages": [USER]},
    "preferred_output": [{"role": "assistant", "content": "Paris."}],
    "non_preferred_output": [{"role": "assistant", "content": "Lyon, I think."}],
}
TEXT = {"text": "Paris is the capital and largest city of France."}
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
TOOL_CHAT = {
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "20 C, sunny"},
        {"role": "assistant", "content": "20 C and sunny."},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    "parallel_tool_calls": False,
}


def jsonl(valid: dict, n: int = 12, bad: dict[int, Any] | None = None) -> bytes:
    """`n` lines of `valid`, with line i (1-based) replaced by bad[i] (a dict, or raw str/bytes)."""
    lines = []
    for i in range(1, n + 1):
        line = (bad or {}).get(i, valid)
        if isinstance(line, dict | list):
            line = json.dumps(line)
        lines.append(line.encode() if isinstance(line, str) else line)
    return b"\n".join(lines) + b"\n"


def chat(*messages: Any, **extra: Any) -> dict:
    return {"messages": list(messages), **extra}


def with_call(**changes: Any) -> dict:
    """A chat example whose assistant tool call has `changes` applied to its function."""
    call = {**CALL, "function": {**CALL["function"], **changes}}
    for key, value in changes.items():
        if value is ...:
            del call["function"][key]
    return chat(USER, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "20 C"}, ASSISTANT)


@dataclass
class Case:
    id: str
    content: bytes
    expected: list[tuple[int | None, str, str]]
    kwargs: dict = field(default_factory=dict)


def whitespace_tokens(example: dict) -> int:
    return sum(len(m["content"].split()) for m in example["messages"] if isinstance(m.get("content"), str))


CASES = [
    Case("invalid_json_line_3_of_12", jsonl(CHAT, bad={3: '{"messages": [}'}), [(3, "invalid_json", "")]),
    Case("line_is_json_array", jsonl(CHAT, bad={2: "[1, 2, 3]"}), [(2, "not_an_object", "")]),
    Case("line_is_json_string", jsonl(CHAT, bad={5: '"hello"'}), [(5, "not_an_object", "")]),
    Case("missing_messages", jsonl(CHAT, bad={4: {"msgs": [USER, ASSISTANT]}}),
         [(4, "missing_messages", "messages")]),
    Case("unrecognised_line_in_prompt_completion_file", jsonl(PROMPT_COMPLETION, bad={9: {"question": "?"}}),
         [(9, "invalid_prompt_completion", "prompt")]),
    Case("unrecognised_line_with_method_dpo", jsonl(PREFERENCE, bad={1: {"chosen": "a", "rejected": "b"}}),
         [(1, "invalid_preference_example", "input")], {"method": "dpo"}),
    Case("unrecognised_line_with_continued_pretraining", jsonl(TEXT, bad={12: {"body": "x"}}),
         [(12, "invalid_text", "text")], {"method": "continued_pretraining"}),
    Case("messages_not_a_list", jsonl(CHAT, bad={3: {"messages": "hello"}}),
         [(3, "invalid_messages", "messages")]),
    Case("empty_messages", jsonl(CHAT, bad={6: {"messages": []}}), [(6, "missing_messages", "messages")]),
    Case("message_not_an_object", jsonl(CHAT, bad={2: chat("hello", ASSISTANT)}),
         [(2, "not_an_object", "messages[0]")]),
    Case("role_missing", jsonl(CHAT, bad={7: chat({"content": "Hi"}, ASSISTANT)}),
         [(7, "missing_role", "messages[0].role")]),
    Case("unknown_role", jsonl(CHAT, bad={12: chat(USER, ASSISTANT, {"role": "bot", "content": "x"})}),
         [(12, "invalid_role", "messages[2].role")]),
    Case("content_a_number", jsonl(CHAT, bad={3: chat({"role": "user", "content": 42}, ASSISTANT)}),
         [(3, "invalid_content_type", "messages[0].content")]),
    Case("content_missing", jsonl(CHAT, bad={3: chat(USER, {"role": "assistant"})}),
         [(3, "missing_content", "messages[1].content")]),
    Case("content_part_image_url",
         jsonl(CHAT, bad={4: chat({"role": "user", "content": [
             {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}, ASSISTANT)}),
         [(4, "invalid_content_type", "messages[0].content[0].type")]),
    Case("content_part_without_text",
         jsonl(CHAT, bad={5: chat({"role": "user", "content": [{"type": "text"}]}, ASSISTANT)}),
         [(5, "missing_content", "messages[0].content[0].text")]),
    Case("no_assistant_message", jsonl(CHAT, bad={5: chat(USER, USER)}),
         [(5, "no_assistant_message", "messages")]),
    Case("weight_2", jsonl(CHAT, bad={8: chat(USER, {**ASSISTANT, "weight": 2})}),
         [(8, "invalid_weight", "messages[1].weight")]),
    Case("weight_true", jsonl(CHAT, bad={8: chat(USER, {**ASSISTANT, "weight": True})}),
         [(8, "invalid_weight", "messages[1].weight")]),
    Case("weight_on_user_message", jsonl(CHAT, bad={9: chat({**USER, "weight": 1}, ASSISTANT)}),
         [(9, "invalid_weight", "messages[0].weight")]),
    Case("all_assistant_weights_0", jsonl(CHAT, bad={9: chat(USER, {**ASSISTANT, "weight": 0})}),
         [(9, "invalid_weight", "messages")]),
    Case("tool_message_without_tool_call_id",
         jsonl(TOOL_CHAT, bad={3: {**TOOL_CHAT, "messages": [
             *TOOL_CHAT["messages"][:2], {"role": "tool", "content": "20 C"}, TOOL_CHAT["messages"][3]]}}),
         [(3, "invalid_tool_message", "messages[2].tool_call_id")]),
    Case("tool_calls_without_function_name", jsonl(TOOL_CHAT, bad={2: with_call(name=...)}),
         [(2, "invalid_tool_calls", "messages[1].tool_calls[0].function.name")]),
    Case("function_arguments_not_a_string", jsonl(TOOL_CHAT, bad={6: with_call(arguments={"city": "Paris"})}),
         [(6, "invalid_tool_calls", "messages[1].tool_calls[0].function.arguments")]),
    Case("function_arguments_not_json", jsonl(TOOL_CHAT, bad={6: with_call(arguments="{city: Paris")}),
         [(6, "invalid_tool_calls", "messages[1].tool_calls[0].function.arguments")]),
    Case("tool_calls_on_user_message",
         jsonl(CHAT, bad={4: chat({**USER, "tool_calls": [CALL]}, ASSISTANT)}),
         [(4, "invalid_tool_calls", "messages[0].tool_calls")]),
    Case("tool_definition_without_name",
         jsonl(TOOL_CHAT, bad={7: {**TOOL_CHAT, "tools": [{"type": "function", "function": {}}]}}),
         [(7, "invalid_tools", "tools[0].function")]),
    Case("unknown_key_in_message", jsonl(CHAT, bad={10: chat(USER, {**ASSISTANT, "foo": 1})}),
         [(10, "unknown_key", "messages[1].foo")]),
    Case("name_not_a_string", jsonl(CHAT, bad={11: chat({**USER, "name": 7}, ASSISTANT)}),
         [(11, "invalid_type", "messages[0].name")]),
    Case("unknown_top_level_key", jsonl(CHAT, bad={10: {**CHAT, "id": "ex-10"}}),
         [(10, "unknown_key", "id")]),
    Case("completion_a_number", jsonl(PROMPT_COMPLETION, bad={4: {"prompt": "2 + 2 =", "completion": 4}}),
         [(4, "invalid_prompt_completion", "completion")]),
    Case("completion_missing", jsonl(PROMPT_COMPLETION, bad={11: {"prompt": "2 + 2 ="}}),
         [(11, "invalid_prompt_completion", "completion")]),
    Case("mixed_chat_and_prompt_completion", jsonl(CHAT, bad={6: PROMPT_COMPLETION, 9: PROMPT_COMPLETION}),
         [(6, "mixed_formats", "")]),
    Case("preferred_output_empty", jsonl(PREFERENCE, bad={3: {**PREFERENCE, "preferred_output": []}}),
         [(3, "invalid_preference_example", "preferred_output")], {"method": "dpo"}),
    Case("non_preferred_output_missing",
         jsonl(PREFERENCE, bad={5: {k: v for k, v in PREFERENCE.items() if k != "non_preferred_output"}}),
         [(5, "invalid_preference_example", "non_preferred_output")], {"method": "dpo"}),
    Case("preferred_output_from_user",
         jsonl(PREFERENCE, bad={2: {**PREFERENCE, "preferred_output": [USER]}}),
         [(2, "invalid_preference_example", "preferred_output[0].role")], {"method": "dpo"}),
    Case("preference_input_without_messages", jsonl(PREFERENCE, bad={4: {**PREFERENCE, "input": {}}}),
         [(4, "invalid_preference_example", "input.messages")], {"method": "dpo"}),
    Case("preference_file_with_method_supervised", jsonl(PREFERENCE), [(1, "wrong_format_for_method", "")]),
    Case("chat_file_with_method_dpo", jsonl(CHAT), [(1, "wrong_format_for_method", "")], {"method": "dpo"}),
    Case("prompt_completion_with_continued_pretraining", jsonl(PROMPT_COMPLETION),
         [(1, "wrong_format_for_method", "")], {"method": "continued_pretraining"}),
    Case("continued_pretraining_empty_text", jsonl(TEXT, bad={2: {"text": ""}}),
         [(2, "invalid_text", "text")], {"method": "continued_pretraining"}),
    Case("continued_pretraining_text_not_a_string", jsonl(TEXT, bad={7: {"text": ["a"]}}),
         [(7, "invalid_text", "text")], {"method": "continued_pretraining"}),
    Case("invalid_utf8_on_line_4",
         jsonl(CHAT, bad={4: b'{"messages": [{"role": "user", "content": "caf\xe9"}]}'}),
         [(4, "invalid_encoding", "")]),
    Case("utf16_file", "\n".join([json.dumps(CHAT)] * 12).encode("utf-16"), [(1, "invalid_encoding", "")]),
    Case("nan_is_not_json", jsonl(PROMPT_COMPLETION, bad={8: '{"prompt": "x", "completion": NaN}'}),
         [(8, "invalid_json", "")]),
    Case("empty_file", b"", [(None, "empty_file", "")]),
    Case("only_blank_lines", b"\n\n   \n\t\n", [(None, "empty_file", "")]),
    Case("five_valid_examples", jsonl(CHAT, n=5), [(None, "too_few_examples", "")]),
    Case("two_problems_on_different_lines",
         jsonl(CHAT, bad={2: "{not json", 8: chat(USER, ASSISTANT, {"role": "bot", "content": "x"})}),
         [(2, "invalid_json", ""), (8, "invalid_role", "messages[2].role")]),
    Case("two_problems_on_one_line",
         jsonl(CHAT, bad={3: chat({"role": "user", "content": 1, "foo": 2}, ASSISTANT)}),
         [(3, "unknown_key", "messages[0].foo"), (3, "invalid_content_type", "messages[0].content")]),
    Case("blank_lines_count_for_line_numbers",
         jsonl(CHAT, bad={2: "", 3: "   ", 5: "[]"}, n=14), [(5, "not_an_object", "")]),
    Case("example_over_max_tokens",
         jsonl(CHAT, bad={7: chat(USER, {"role": "assistant", "content": " ".join(["word"] * 30)})}),
         [(7, "example_too_long", "")], {"count_tokens": whitespace_tokens, "max_tokens": 20}),
    Case("more_than_max_problems", jsonl(CHAT, bad={i: "{" for i in range(1, 13)}),
         [(i, "invalid_json", "") for i in range(1, 6)] + [(None, "too_many_problems", "")],
         {"max_problems": 5}),
    Case("all_invalid_is_also_too_few", jsonl(CHAT, n=2, bad={1: "[]", 2: "[]"}),
         [(1, "not_an_object", ""), (2, "not_an_object", ""), (None, "too_few_examples", "")]),
]


def check(tmp_path: Path, content: bytes, **kwargs: Any) -> FormatReport:
    path = tmp_path / "train.jsonl"
    path.write_bytes(content)
    return check_file(path, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_file_reports_exact_problems(tmp_path: Path, case: Case) -> None:
    report = check(tmp_path, case.content, **case.kwargs)
    assert [(p.line, p.code, p.param) for p in report.problems] == case.expected, [
        p.message for p in report.problems]
    assert not report.ok
    for p in report.problems:
        if p.line is not None:
            assert p.message.startswith(f"Line {p.line}: "), p.message
        else:
            assert not p.message.startswith("Line "), p.message
        if p.param and p.code != "no_assistant_message":  # that message keeps OpenAI's wording
            assert p.param in p.message, p.message


def test_messages_name_the_line_the_field_and_the_fix(tmp_path: Path) -> None:
    content = jsonl(CHAT, n=13, bad={3: {"messages": "hello"}, 5: chat(USER, USER),
                                     12: chat(USER, ASSISTANT, {"role": "bot", "content": "x"})})
    messages = [p.message for p in check(tmp_path, content).problems]
    assert messages == [
        "Line 3: 'messages' must be a list of message objects, got a string.",
        "Line 5: no assistant message; every example needs at least one message with role "
        "'assistant' (the target the model learns).",
        "Line 12: messages[2].role is 'bot'; use one of system, developer, user, assistant, tool.",
    ]


def test_too_long_message_gives_both_counts(tmp_path: Path) -> None:
    long = chat(USER, {"role": "assistant", "content": " ".join(["w"] * 2339)})
    report = check(tmp_path, jsonl(CHAT, bad={7: long}), count_tokens=whitespace_tokens, max_tokens=2048)
    assert [p.message for p in report.problems] == [
        "Line 7: the example has 2,345 tokens; the model's context is 2,048. Shorten it or split it."]
    assert report.examples == 12
    assert report.token_counts[6] == 2345 and len(report.token_counts) == 12


def test_too_many_problems_says_where_it_stopped(tmp_path: Path) -> None:
    report = check(tmp_path, jsonl(CHAT, bad={i: "[]" for i in range(1, 13)}), max_problems=3)
    assert report.problems[-1].message.startswith("Stopped at line 4 after 3 problems")


def test_mixed_formats_names_both_formats(tmp_path: Path) -> None:
    report = check(tmp_path, jsonl(CHAT, bad={6: PROMPT_COMPLETION}))
    (problem,) = report.problems
    assert "prompt/completion" in problem.message and "chat" in problem.message
    assert "line 1" in problem.message
    assert report.format == "chat" and report.examples == 11


def test_wrong_method_suggests_the_right_one(tmp_path: Path) -> None:
    (problem,) = check(tmp_path, jsonl(PREFERENCE)).problems
    assert "'dpo'" in problem.message and "'supervised'" in problem.message


@pytest.mark.parametrize(
    ("valid", "method", "expected_format"),
    [
        (CHAT, "supervised", "chat"),
        (TOOL_CHAT, "supervised", "chat"),
        (chat({"role": "developer", "content": [{"type": "text", "text": "Be terse."}]}, USER,
              {**ASSISTANT, "weight": 0}, {"role": "user", "content": "And Spain?"},
              {"role": "assistant", "content": [{"type": "text", "text": "Madrid."}], "weight": 1}),
         "supervised", "chat"),
        (chat(USER, {"role": "assistant", "content": None,
                     "function_call": {"name": "lookup", "arguments": "{}"}},
              {"role": "function", "name": "lookup", "content": "Paris"}, ASSISTANT,
              ), "supervised", "chat"),
        (PROMPT_COMPLETION, "supervised", "prompt_completion"),
        (PREFERENCE, "dpo", "preference"),
        ({**PREFERENCE,
          "input": {"messages": [USER], "tools": TOOL_CHAT["tools"], "parallel_tool_calls": True}},
         "dpo", "preference"),
        (TEXT, "continued_pretraining", "text"),
    ],
    ids=["chat", "chat_tools", "chat_parts_and_weights", "chat_legacy_function", "prompt_completion",
         "preference", "preference_with_tools", "text"],
)
def test_valid_files_are_ok(tmp_path: Path, valid: dict, method: str, expected_format: str) -> None:
    report = check(tmp_path, jsonl(valid, n=11), method=method)
    assert report.problems == []
    assert report.ok
    assert (report.format, report.examples, report.token_counts) == (expected_format, 11, [])


def test_bom_crlf_and_trailing_blank_lines_are_tolerated(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbf" + b"\r\n".join(json.dumps(CHAT).encode() for _ in range(10)) + b"\r\n\r\n\n"
    report = check(tmp_path, content, count_tokens=whitespace_tokens)
    assert report.ok and report.examples == 10
    assert report.token_counts == [whitespace_tokens(CHAT)] * 10


def test_min_examples_is_configurable(tmp_path: Path) -> None:
    assert check(tmp_path, jsonl(CHAT, n=3), min_examples=3).ok
    report = check(tmp_path, jsonl(CHAT, n=3), min_examples=4)
    assert [p.code for p in report.problems] == ["too_few_examples"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"method": "rlhf"}, "method"),
        ({"max_tokens": 100}, "max_tokens"),
        ({"max_problems": 0}, "max_problems"),
        ({"min_examples": -1}, "min_examples"),
    ],
)
def test_bad_arguments_raise_invalid_request(tmp_path: Path, kwargs: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check(tmp_path, jsonl(CHAT), **kwargs)
    assert info.value.param == param
    assert param in info.value.message


def test_codes_are_the_documented_ones() -> None:
    """The module's codes, the docs table and the codes these tests reach are the same set."""
    emitted = set(re.findall(r'"([a-z_]+)"', Path(formats.__file__).read_text()))
    table = (ROOT / "docs/fine-tuning-data.md").read_text().split("## Problem codes")[1]
    documented = re.findall(r"^\| `([a-z_]+)` \|", table, re.M)
    tested = {code for case in CASES for _, code, _ in case.expected}
    assert sorted(documented) == sorted(PROBLEM_CODES)
    assert set(PROBLEM_CODES) <= emitted
    assert set(PROBLEM_CODES) - tested == set()

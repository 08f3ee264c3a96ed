"""Graders against hand-checked cases (no server): each grader's score and reason, including
empty output, unicode (NFC vs NFD, CJK, emoji), invalid JSON, numbers with units and commas;
typed config errors name the field; eval-set parsing reports line numbers; the paired
bootstrap comparison on known differences."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest

from rixin.engines.base import Chunk
from rixin.errors import InvalidRequest
from rixin.evals.compare import paired_diff, summarise
from rixin.evals.evalset import parse_lines
from rixin.evals.graders import build_grader, numbers, parse_graders
from rixin.evals.graders.embedding import EmbeddingSimilarity
from rixin.evals.graders.model_graded import ModelGraded


def item(ideal=None, schema=None, prompt="q"):
    line = {"input": prompt}
    if ideal is not None:
        line["ideal"] = ideal
    if schema is not None:
        line["schema"] = schema
    return parse_lines([json.dumps(line)], "test")[0]


def grader(**config):
    return build_grader(parse_graders([config])[0])


def score(config: dict, ideal, output: str, schema=None) -> tuple[float, str]:
    g = grader(**config).grade(item(ideal, schema), output)
    return g.score, g.reason


CAFE_NFC = unicodedata.normalize("NFC", "Café")
CAFE_NFD = unicodedata.normalize("NFD", "Café")


@pytest.mark.parametrize("ideal, output, expected", [
    ("Paris", "Paris", (1.0, "match")),
    ("Paris", "  paris \n", (1.0, "match")),  # trimmed, case-folded
    ("New York", "new   york", (1.0, "match")),  # whitespace collapsed
    ("Paris", "Paris.", (0.0, "no_match")),  # exact: punctuation counts
    ("Paris", "", (0.0, "no_match")),  # empty output
    (["Paris", "Lutetia"], "lutetia", (1.0, "match")),  # any of several ideals
    (CAFE_NFC, CAFE_NFD, (1.0, "match")),  # composed vs decomposed é
    ("東京", "東京", (1.0, "match")),
    ("東京", "京都", (0.0, "no_match")),
    ("👍🏽", "👍🏽", (1.0, "match")),
    ("👍🏽", "👍", (0.0, "no_match")),  # the skin-tone modifier is part of the answer
    ("STRASSE", "straße", (1.0, "match")),  # casefold, not lower
])
def test_exact_match(ideal, output, expected):
    assert score({"type": "exact_match"}, ideal, output) == expected


def test_exact_match_options():
    assert score({"type": "exact_match", "case_sensitive": True}, "Paris", "paris") == (0.0, "no_match")
    assert score({"type": "exact_match", "normalize": False}, CAFE_NFC, CAFE_NFD) == (0.0, "no_match")
    assert score({"type": "exact_match", "normalize": False}, "Paris", " Paris") == (0.0, "no_match")
    assert score({"type": "exact_match"}, None, "Paris") == (0.0, "no_ideal")


@pytest.mark.parametrize("ideal, output, expected", [
    ("Paris", "The capital is Paris.", (1.0, "included")),
    ("paris", "PARIS!", (1.0, "included")),
    ("Paris", "", (0.0, "not_included")),
    ("Paris", "Lyon", (0.0, "not_included")),
    (CAFE_NFD, f"un {CAFE_NFC} noir", (1.0, "included")),
    ("北京", "中国的首都是北京。", (1.0, "included")),
    ("🚀", "launch 🚀 now", (1.0, "included")),
    (["Rome", "Paris"], "I think Paris", (1.0, "included")),
])
def test_includes(ideal, output, expected):
    assert score({"type": "includes"}, ideal, output) == expected


def test_includes_case_sensitive_and_no_ideal():
    assert score({"type": "includes", "case_sensitive": True}, "Paris", "paris") == (0.0, "not_included")
    assert score({"type": "includes"}, None, "anything") == (0.0, "no_ideal")


def test_regex():
    assert score({"type": "regex", "pattern": r"\b\d{4}\b"}, None, "in 1969, men") == (1.0, "match")
    assert score({"type": "regex", "pattern": r"\b\d{4}\b"}, None, "") == (0.0, "no_match")
    assert score({"type": "regex", "pattern": "yes", "full_match": True}, None, " yes \n") == (1.0, "match")
    assert score({"type": "regex", "pattern": "yes", "full_match": True}, None, "yes sir") == (0.0, "no_match")
    assert score({"type": "regex", "pattern": "YES", "ignore_case": True}, None, "oh yes") == (1.0, "match")
    assert score({"type": "regex", "pattern": "caf\u00e9"}, None, CAFE_NFD.lower()) == (1.0, "match")  # NFC first
    assert score({"type": "regex", "pattern": "[一-龥]+"}, None, "abc") == (0.0, "no_match")
    assert score({"type": "regex", "pattern": "[一-龥]+"}, None, "abc汉字") == (1.0, "match")


SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}


@pytest.mark.parametrize("output, expected", [
    ('{"name": "Ada"}', (1.0, "valid")),
    ('  {"name": "艾达 🎉"}\n', (1.0, "valid")),
    ('```json\n{"name": "Ada"}\n```', (1.0, "valid")),  # a fenced block
    ('{"name": 3}', (0.0, "schema_mismatch")),
    ('{"nam": "Ada"}', (0.0, "schema_mismatch")),
    ('{"name": "Ada"', (0.0, "invalid_json")),
    ("name: Ada", (0.0, "invalid_json")),
    ("NaN", (0.0, "schema_mismatch")),  # Python's json reads NaN; it is not an object
    ("", (0.0, "empty_output")),
])
def test_json_schema_from_grader(output, expected):
    assert score({"type": "json_schema", "schema": SCHEMA}, None, output) == expected


def test_json_schema_from_item_and_missing():
    assert score({"type": "json_schema"}, None, '{"name": "x"}', schema=SCHEMA) == (1.0, "valid")
    assert score({"type": "json_schema"}, None, '{"x": 1}', schema=SCHEMA) == (0.0, "schema_mismatch")
    assert score({"type": "json_schema"}, None, '{"name": "x"}') == (0.0, "no_schema")


def test_json_schema_grading_survives_deep_output_and_recursive_schemas():
    """An output nested past Python's stack is invalid JSON, not a crashed job; a recursive
    schema against a deep value is a mismatch, not a RecursionError."""
    assert score({"type": "json_schema"}, None, "[" * 100_000 + "]" * 100_000, schema=SCHEMA) == (0.0, "invalid_json")
    tree = {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"}
    assert score({"type": "json_schema", "schema": tree}, None, "[" * 900 + "]" * 900) == (0.0, "schema_mismatch")


def test_numbers_parsing():
    assert numbers("1,234.5 kg") == [1234.5]
    assert numbers("$-3 and −7") == [-3.0, -7.0]  # unicode minus
    assert numbers("12% of 3e2") == [12.0, 300.0]
    assert numbers("about ٣ apples") == [3.0]  # Arabic-Indic digits are digits (float reads them)
    assert numbers("no digits here, really.") == []
    assert numbers("１２３") == [123.0]  # full-width digits (NFKC)


@pytest.mark.parametrize("config, ideal, output, expected", [
    ({}, "42", "The answer is 42.", (1.0, "within_tolerance")),
    ({}, "1234", "It costs $1,234.", (1.0, "within_tolerance")),
    ({}, "1234", "It costs $1,235.", (0.0, "out_of_tolerance")),
    ({"abs_tol": 1}, "1234", "It costs $1,235.", (1.0, "within_tolerance")),
    ({"rel_tol": 0.01}, "100", "101 km", (1.0, "within_tolerance")),
    ({"rel_tol": 0.01}, "100", "102 km", (0.0, "out_of_tolerance")),
    ({}, "3", "From 10 we take 7, leaving 3", (1.0, "within_tolerance")),  # last number by default
    ({"pick": "first"}, "3", "From 10 we take 7, leaving 3", (0.0, "out_of_tolerance")),
    ({}, "-2.5", "−2.5 °C", (1.0, "within_tolerance")),
    ({}, "42", "", (0.0, "no_number")),
    ({}, "forty-two", "42", (0.0, "no_ideal_number")),
])
def test_numeric(config, ideal, output, expected):
    assert score({"type": "numeric", **config}, ideal, output) == expected


class FakeEmbedder:
    """Fixed unit vectors per text; stands in for the embedding replica (the live path is
    covered in tests/test_evals.py)."""

    VECTORS = {"cat": [1, 0, 0], "kitten": [0.8, 0.6, 0], "car": [0, 0, 1], "anti": [-1, 0, 0]}

    def embed(self, texts):
        return np.array([self.VECTORS[t] for t in texts], dtype=np.float32)


def test_embedding_similarity():
    config = parse_graders([{"type": "embedding"}])[0]
    g = EmbeddingSimilarity(config, FakeEmbedder())
    assert g.grade(item("cat"), "cat").score == pytest.approx(1.0)
    assert g.grade(item("cat"), "kitten").score == pytest.approx(0.8)
    assert g.grade(item(["car", "cat"]), "kitten").score == pytest.approx(0.8)  # best ideal
    assert g.grade(item("cat"), "anti").score == 0.0  # negative cosine clipped
    assert (g.grade(item("cat"), "").score, g.grade(item("cat"), "").reason) == (0.0, "empty_output")
    thresholded = EmbeddingSimilarity(parse_graders([{"type": "embedding", "threshold": 0.9}])[0], FakeEmbedder())
    assert thresholded.grade(item("cat"), "kitten").reason == "dissimilar"
    assert thresholded.grade(item("cat"), "cat").score == 1.0


class FakeJudge:
    """Answers with a fixed text, and keeps the request so the prompt and grammar can be checked."""

    def __init__(self, text: str):
        self.text, self.requests = text, []

    def generate(self, request):
        self.requests.append(request)
        return [Chunk(text=self.text, finish_reason="stop")]


@pytest.mark.parametrize("reply, expected", [
    ('{"score": "5"}', (1.0, "judge_5")),
    ('{"score": "1"}', (0.0, "judge_1")),
    ('{"score": "3"}', (0.5, "judge_3")),
    ('{"score": 4}', (0.75, "judge_4")),  # a number where a string was asked: still read
    ('{"score": "7"}', (0.0, "judge_choice_outside_set")),
    ('{"score": ', (0.0, "judge_unparseable")),
    ("[1]", (0.0, "judge_choice_outside_set")),
])
def test_model_graded_parsing(reply, expected):
    judge = FakeJudge(reply)
    g = ModelGraded(parse_graders([{"type": "model_graded", "rubric": "Correct capital."}])[0], judge)
    result = g.grade(item("Paris", prompt="Capital of France?"), "Paris")
    assert (result.score, result.reason) == expected
    request = judge.requests[0]
    assert request.params.temperature == 0.0
    assert request.params.json_schema["properties"]["score"]["enum"] == ["1", "2", "3", "4", "5"]
    assert "Correct capital." in request.messages[0]["content"]
    assert "Capital of France?" in request.messages[1]["content"] and "Paris" in request.messages[1]["content"]


def test_model_graded_empty_output_skips_the_judge():
    judge = FakeJudge('{"score": "5"}')
    g = ModelGraded(parse_graders([{"type": "model_graded", "rubric": "r", "choices": ["bad", "good"]}])[0], judge)
    assert (g.grade(item("x"), "  ").score, g.grade(item("x"), "").reason) == (0.0, "empty_output")
    assert judge.requests == []


@pytest.mark.parametrize("configs, param", [
    ([{"type": "regex", "pattern": "(unclosed"}], "graders[0].pattern"),
    ([{"type": "regex", "pattern": "[z-a]"}], "graders[0].pattern"),
    ([{"type": "includes"}, {"type": "regex", "patern": "x"}], "graders[1].patern"),
    ([{"type": "levenshtein"}], "graders[0].type"),
    ([{"pattern": "x"}], "graders[0].type"),
    ([{"type": "numeric", "abs_tol": -1}], "graders[0].abs_tol"),
    ([{"type": "json_schema", "schema": {"type": "nonsense"}}], "graders[0].schema"),
    ([{"type": "model_graded"}], "graders[0].rubric"),
    ([{"type": "includes"}, {"type": "includes"}], "graders[1].name"),
    ([], "graders"),
    ("includes", "graders"),
])
def test_bad_config_names_the_field(configs, param):
    with pytest.raises(InvalidRequest) as e:
        parse_graders(configs)
    assert e.value.param == param, e.value.message
    assert e.value.status == 400


def test_grader_names():
    configs = parse_graders([{"type": "includes"}, {"type": "includes", "name": "strict", "case_sensitive": True}])
    assert [c.label for c in configs] == ["includes", "strict"]


def test_eval_set_lines():
    lines = ['{"input": "a", "ideal": "1"}', "", '{"input": [{"role": "user", "content": "b"}], "ideal": ["2", "II"]}',
             '{"input": "c", "ideal": 3, "id": "third", "tags": ["kept"]}']
    items = parse_lines(lines, "test")
    assert [i.id for i in items] == ["1", "3", "third"]  # default id: the line number (blanks count)
    assert items[0].messages == [{"role": "user", "content": "a"}]
    assert items[1].ideal == ["2", "II"] and items[2].ideal == ["3"]


@pytest.mark.parametrize("lines, fragment", [
    (['{"input": "a"}', "{not json"], "Line 2:"),
    (['{"ideal": "x"}'], "Line 1: missing required key 'input'"),
    (['{"input": ""}'], "Line 1: 'input' is an empty string"),
    (['{"input": [{"role": "robot", "content": "x"}]}'], "Line 1: input[0]"),
    (['{"input": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}'], "assistant"),
    (['{"input": "a", "ideal": {"x": 1}}'], "'ideal' must be"),
    (['{"input": "a", "schema": {"type": 5}}'], "not a valid JSON schema"),
    (["[1, 2]"], "expected a JSON object"),
    ([b'{"input": "\xff"}'], "Line 1:"),
    (["", "  "], "no items"),
])
def test_eval_set_problems(lines, fragment):
    with pytest.raises(InvalidRequest) as e:
        parse_lines(lines, "test")
    assert fragment in e.value.message
    assert e.value.param == "eval_file_id"


def test_paired_diff_known_values():
    same = paired_diff([0.5, 1.0, 0.0], [0.5, 1.0, 0.0])
    assert same == {"a": "a", "b": "b", "mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "wins": 0, "ties": 3,
                    "losses": 0}
    better = paired_diff([0.0] * 20, [1.0] * 15 + [0.0] * 5)
    assert better["mean"] == pytest.approx(0.75)
    assert (better["wins"], better["ties"], better["losses"]) == (15, 5, 0)
    assert 0.5 < better["ci_low"] < 0.75 < better["ci_high"] <= 1.0
    assert paired_diff([0.0] * 20, [1.0] * 15 + [0.0] * 5) == better  # seeded: the same CI again
    mixed = paired_diff([1, 0, 1, 0], [0, 1, 1, 0])
    assert (mixed["wins"], mixed["ties"], mixed["losses"]) == (1, 2, 1)
    assert mixed["ci_low"] < 0 < mixed["ci_high"]


def test_summarise():
    def out(mean, s):
        return {"mean": mean, "scores": s, "reasons": {k: "r" for k in s}}

    items = [{"outputs": {"A": out(1.0, {"g1": 1.0, "g2": 1.0}), "B": out(0.5, {"g1": 1.0, "g2": 0.0})}},
             {"outputs": {"A": out(0.0, {"g1": 0.0, "g2": 0.0}), "B": out(0.5, {"g1": 0.0, "g2": 1.0})}}]
    summary = summarise(items, ["A", "B"], ["g1", "g2"])
    assert summary["n"] == 2
    assert summary["models"]["A"] == {"mean": 0.5, "graders": {"g1": 0.5, "g2": 0.5}}
    assert summary["models"]["B"] == {"mean": 0.5, "graders": {"g1": 0.5, "g2": 0.5}}
    assert summary["diff"]["mean"] == 0.0 and summary["diff"]["wins"] == 1 and summary["diff"]["losses"] == 1
    assert summarise(items, ["A"], ["g1"])["diff"] is None


def test_model_graded_truncated_reply():
    class Cut(FakeJudge):
        def generate(self, request):
            self.requests.append(request)
            return [Chunk(text='{"score', finish_reason="length")]

    g = ModelGraded(parse_graders([{"type": "model_graded", "rubric": "r"}])[0], Cut(""))
    assert (g.grade(item("x"), "y").score, g.grade(item("x"), "y").reason) == (0.0, "judge_truncated")

"""A JSON schema as the GBNF grammar that constrains llama.cpp's decoding, or SchemaProblem.

llama.cpp does not survive every grammar: one it cannot parse gives a NULL sampler (which
segfaulted the shared engine when added to a chain: `{"enum": []}` converts to an empty rule),
and one whose language is empty masks every token (the sampler then has nothing to pick).
So `gbnf` accepts a schema only when all of these hold, in this order:

1. sizes llama.cpp and the converter handle: repetition counts (minLength, maxItems, pattern
   quantifiers) at most MAX_REPEAT, at most MAX_PROPERTIES properties per object (the
   converter recurses once per optional property);
2. every subschema the converter visits can hold a value (`enum: []`, `false`, `not: {}`,
   minItems > maxItems, a required property that additionalProperties: false forbids, ...);
3. llama_cpp's own converter (llama_grammar.json_schema_to_gbnf, pure Python, no fetching)
   turns it into GBNF without error, and the text is at most MAX_GRAMMAR_CHARS;
4. that GBNF parses, every referenced rule exists, every rule reachable from `root` derives
   some non-empty text, and no rule is left-recursive (llama.cpp refuses those).

Steps 2 and 4 overlap on purpose: 2 gives the person a message about their schema, 4 holds
for whatever the converter does. The engine calls `gbnf` too and keeps its own last check
(llama.cpp must return a sampler), so a gateway that skipped this still cannot crash it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import jsonschema

from rixin.schemas import SchemaProblem, check, walk

MAX_REPEAT = 500
MAX_PROPERTIES = 200
MAX_GRAMMAR_CHARS = 256_000
_BOUND_KEYS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
_PAIRS = (("minLength", "maxLength"), ("minItems", "maxItems"), ("minProperties", "maxProperties"),
          ("minContains", "maxContains"))
# Keywords a value can be checked against on its own (no references, no regular expressions:
# a tenant's pattern must not backtrack in the gateway).
_LOCAL = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
          "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "required",
          "const", "enum")


# ---------------------------------------------------------------------- 1. sizes


def _pattern_cost(pattern: str) -> int:
    """How many copies of an atom the converter writes for `pattern` (it expands a{3} to aaa):
    quantifiers multiply what they repeat, nested ones multiply each other."""
    stack = [[0, 0]]  # per open group: [cost so far, cost of the last atom]
    i = 0
    while i < len(pattern):
        c, atom = pattern[i], 0
        if c == "\\":
            atom, i = 1, i + 2
        elif c == "[":
            j = i + 1
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            atom, i = 1, j + 1
        elif c == "(":
            stack.append([0, 0])
            i += 1
        elif c == ")" and len(stack) > 1:
            inner = stack.pop()[0]
            stack[-1][0] += inner
            stack[-1][1] = inner
            i += 1
        elif (m := re.match(r"\{(\d+)(?:,(\d*))?\}", pattern[i:])) is not None:
            times = max(int(m.group(1)), int(m.group(2) or 0))
            if times > MAX_REPEAT:
                raise SchemaProblem(f"a pattern repeats {times} times; at most {MAX_REPEAT} when the schema "
                                    "constrains generation")
            stack[-1][0] += stack[-1][1] * max(times - 1, 0)
            stack[-1][1] *= max(times, 1)
            i += m.end()
        else:
            atom, i = (0 if c in "*+?|^$" else 1), i + 1
        if atom:
            stack[-1][0] += atom
            stack[-1][1] = atom
    return sum(frame[0] for frame in stack)


def _check_sizes(schema: dict) -> None:
    for path, node in walk(schema):
        if not isinstance(node, dict):
            continue
        where = f"'{path}'" if path else "the root"
        for key in _BOUND_KEYS:
            if isinstance(node.get(key), int) and node[key] > MAX_REPEAT:
                raise SchemaProblem(f"{key} {node[key]} at {where} is too large: at most {MAX_REPEAT} when the "
                                    "schema constrains generation")
        if isinstance(node.get("properties"), dict) and len(node["properties"]) > MAX_PROPERTIES:
            raise SchemaProblem(f"{where} has {len(node['properties'])} properties; at most {MAX_PROPERTIES} "
                                "per object when the schema constrains generation")
        if isinstance(node.get("pattern"), str) and _pattern_cost(node["pattern"]) > MAX_REPEAT * 2:
            raise SchemaProblem(f"the pattern at {where} expands too far (its repetitions multiply past "
                                f"{MAX_REPEAT * 2}); use shorter counts")


# ---------------------------------------------------------------------- 2. can a value exist


def _subschemas(node: dict, path: str) -> Iterator[tuple[str, Any]]:
    """The subschemas the converter visits (not, if, contains, ... it does not)."""
    join = (lambda k: f"{path}.{k}") if path else str
    for key in ("items", "additionalProperties"):
        if key in node and not (key == "additionalProperties" and isinstance(node[key], bool)):
            yield join(key), node[key]
    for key in ("prefixItems", "anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(node.get(key) or []):
            yield f"{join(key)}[{i}]", sub
    for key in ("properties", "$defs", "definitions"):
        for name, sub in (node.get(key) or {}).items():
            yield f"{join(key)}.{name}", sub


def _bounds_clash(node: dict) -> str | None:
    for lo, hi in _PAIRS:
        if isinstance(node.get(lo), int) and isinstance(node.get(hi), int) and node[lo] > node[hi]:
            return f"{lo} {node[lo]} is above {hi} {node[hi]}"
    low = [(node[k], k) for k in ("minimum", "exclusiveMinimum") if isinstance(node.get(k), int | float)]
    high = [(node[k], k) for k in ("maximum", "exclusiveMaximum") if isinstance(node.get(k), int | float)]
    for lo, lo_key in low:
        for hi, hi_key in high:
            if lo > hi or (lo == hi and "exclusive" in lo_key + hi_key):
                return f"{lo_key} {lo} leaves no room below {hi_key} {hi}"
    if isinstance(node.get("maxProperties"), int) and len(node.get("required") or []) > node["maxProperties"]:
        return f"it requires {len(node['required'])} properties but maxProperties is {node['maxProperties']}"
    return None


def _no_value(node: Any, root: dict, memo: dict) -> str | None:
    """Why no JSON value satisfies `node`, for the cases people write by mistake; None when
    some value may (this is not a full satisfiability check, step 4 backs it). `memo` holds
    the answer per node, so shared $refs cost once; a node met again while being answered
    (a recursive $ref) counts as allowing a value."""
    if id(node) not in memo:
        memo[id(node)] = None
        memo[id(node)] = _why_no_value(node, root, memo)
    return memo[id(node)]


def _why_no_value(node: Any, root: dict, memo: dict) -> str | None:
    if node is False:
        return "it is false"
    if not isinstance(node, dict):
        return None
    if node.get("not") is True or node.get("not") == {}:
        return "'not' excludes every value"
    if "enum" in node and not node["enum"]:
        return "'enum' is empty"
    values = [node["const"]] if "const" in node else node.get("enum")
    if values is not None:
        local = jsonschema.Draft202012Validator({k: node[k] for k in _LOCAL if k in node})
        if not any(local.is_valid(v) for v in values):
            return "no value of 'enum'/'const' fits the rest of the schema"
    if (why := _bounds_clash(node)) is not None:
        return why
    ref = node.get("$ref")
    if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
        target = root
        for part in ref[2:].split("/") if ref != "#" else []:
            target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
        if (why := _no_value(target, root, memo)) is not None:
            return f"its $ref {ref} allows no value: {why}"
    for key in ("anyOf", "oneOf"):
        alternatives = node.get(key) or []
        if alternatives and all(_no_value(a, root, memo) for a in alternatives):
            return f"no alternative of '{key}' allows a value"
    for i, part in enumerate(node.get("allOf") or []):
        if (why := _no_value(part, root, memo)) is not None:
            return f"allOf[{i}] allows no value: {why}"
    return _no_object_or_array(node, root, memo)


def _no_object_or_array(node: dict, root: dict, memo: dict) -> str | None:
    properties = node.get("properties") or {}
    extra = node.get("additionalProperties", True)
    for name in node.get("required") or []:
        if name in properties:
            if (why := _no_value(properties[name], root, memo)) is not None:
                return f"it requires '{name}', which allows no value: {why}"
        elif extra is False and not node.get("patternProperties"):
            return f"it requires '{name}', which is not in 'properties' and additionalProperties: false forbids"
    if isinstance(node.get("minItems"), int) and node["minItems"] > len(node.get("prefixItems") or []):
        if "items" in node and (why := _no_value(node["items"], root, memo)) is not None:
            return f"it needs at least {node['minItems']} items but 'items' allows none: {why}"
    return None


def _check_values(schema: dict) -> None:
    stack, memo = [("", schema)], {}
    while stack:
        path, node = stack.pop()
        where = f"at '{path}'" if path else "(the root)"
        if node is True:
            raise SchemaProblem(f"the schema {where} is `true`; write {{}} for any value instead")
        if (why := _no_value(node, schema, memo)) is not None:
            raise SchemaProblem(f"the schema {where} allows no value ({why}), so no output could satisfy it")
        if isinstance(node, dict):
            stack.extend(_subschemas(node, path))


# ---------------------------------------------------------------------- 3. convert


def _to_gbnf(schema: dict) -> str:
    """llama_cpp's converter (json_schema_to_gbnf, with no fetching) with one fix: it puts the
    JSON text of a const, an enum value or a property name into a GBNF literal escaping only
    quotes and line ends, so JSON's own escapes (\\n, \\\\, \\u00e9, \\ud83d\\ude00) became
    GBNF escapes: raw control characters in the output (invalid JSON), lone surrogates and NUL
    that no token can write (the sampler then had nothing to pick). Backslashes are escaped too,
    and non-ASCII text is kept as text (fewer tokens than \\u escapes)."""
    from llama_cpp.llama_grammar import SchemaConverter

    class Converter(SchemaConverter):
        def _format_literal(self, literal: str) -> str:
            try:  # JSON text, written by json.dumps with ASCII escapes: keep 中文 and 😀 as they are
                literal = json.dumps(json.loads(literal), ensure_ascii=False)
            except ValueError:
                pass
            escaped = literal.replace("\\", "\\\\").replace('"', '\\"')
            return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'

    converter = Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    document = json.loads(json.dumps(schema))  # resolve_refs rewrites references in place
    # resolve_refs stops at a mapping with a $ref, so a root `$ref` hid the references inside
    # its siblings ($defs): resolve those first, then the root's own.
    root_ref = document.pop("$ref", None)
    document = converter.resolve_refs(document, "stdin")
    if root_ref is not None:
        document = converter.resolve_refs({**document, "$ref": root_ref}, "stdin")
    converter.visit(document, "")
    return converter.format_grammar()


def check_decodable(schema: Any) -> dict:
    """`schema` if it is a usable JSON schema (schemas.check) that also makes a grammar
    llama.cpp can decode with; else SchemaProblem saying why."""
    gbnf(check(schema))
    return schema


def gbnf(schema: dict) -> str:
    """The grammar for `schema` (already through schemas.check), or SchemaProblem."""
    _check_sizes(schema)
    _check_values(schema)
    try:
        text = _to_gbnf(schema)
    except RecursionError:
        raise SchemaProblem("the schema is too complex to turn into a grammar for constrained decoding") from None
    except Exception as e:  # noqa: BLE001 - the converter raises Assertion/Value/Key/Type errors alike
        detail = f"{type(e).__name__}: {str(e)[:200]}"
        raise SchemaProblem(f"this schema cannot be turned into a grammar for constrained decoding "
                            f"(supported: type, properties, required, additionalProperties, items, "
                            f"prefixItems, enum, const, anyOf, oneOf, allOf, $ref, pattern, format, "
                            f"min/maxLength, min/maxItems): {detail}") from None
    if len(text) > MAX_GRAMMAR_CHARS:
        raise SchemaProblem(f"the schema's grammar would be {len(text)} characters; at most {MAX_GRAMMAR_CHARS}")
    from rixin.gbnf import check_gbnf

    why = check_gbnf(text)
    if why is not None:
        raise SchemaProblem(f"this schema gives a grammar llama.cpp cannot use: {why}")
    return text

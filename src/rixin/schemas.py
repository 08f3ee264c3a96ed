"""JSON Schema, one way in: every schema a request carries (response_format, eval graders and
eval items, label tasks) is checked by `check_schema` and applied by `validator` /
`first_error` from here, so that the defences below hold everywhere at once.

- References stay inside the document. jsonschema resolves a `$ref` it does not know by
  fetching it (http, and `file:` through urllib), which would make the server request any URL
  or read any file a tenant names. So `$ref`, `$dynamicRef` and `$recursiveRef` must start
  with `#` and point at something in the same schema, `$schema` must name a dialect jsonschema
  ships, and `$id` is allowed only at the root (a nested `$id` would move the base of the `#`
  references under it). Belt and braces: `validator` builds on a registry whose `retrieve`
  refuses every URI, so nothing is fetched even for a schema that skipped the check.
- Bounded size: a schema nests at most MAX_DEPTH containers, holds at most MAX_NODES values
  and MAX_CHARS characters of JSON, measured without recursion before jsonschema (which
  recurses per level and raised RecursionError at ~300 levels) sees it.
- A schema that constrains decoding (`rixin.grammar.check_decodable`: response_format, extraction label tasks)
  must also have a valid output and a grammar llama.cpp accepts: rixin/grammar.py.

The walks look at every mapping of the document, data (`const`, `enum`, `default`) included:
a `"$ref": "http:..."` inside a `const` is refused too, which costs nothing real.
"""

from __future__ import annotations

import json
from typing import Any, Iterator
from urllib.parse import unquote

import jsonschema
import referencing.jsonschema
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable

from rixin.errors import InvalidRequest

MAX_DEPTH = 32
"""Nested objects and arrays (a property's schema is two levels below its object's)."""
MAX_NODES = 10_000
"""Values in the whole schema: every key's value and every list item."""
MAX_CHARS = 200_000
"""Characters of the schema as compact JSON."""
REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")
ANCHOR_KEYS = ("$anchor", "$dynamicAnchor")


class SchemaProblem(ValueError):
    """What is wrong with a schema, said for the person who wrote it (no field name: the
    caller knows which field the schema came in)."""


def _refuse(uri: str):
    raise NoSuchResource(ref=uri)


# No retrieval at all: a reference the document does not hold is Unresolvable, never fetched.
_REGISTRY: Registry = Registry(retrieve=_refuse)


# ---------------------------------------------------------------------- the checks


def walk(schema: Any) -> Iterator[tuple[str, Any]]:
    """(path, value) of every value in the document, parents first, without recursion.
    Paths are dotted (`properties.a.items[0]`); stops being called past the bounds."""
    stack = [("", schema)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))


def _check_bounds(schema: Any) -> None:
    nodes = 0
    stack = [(schema, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise SchemaProblem(f"the schema is too large: at most {MAX_NODES} values in all")
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise SchemaProblem(f"the schema is nested too deeply: at most {MAX_DEPTH} levels of "
                                    "objects and arrays (use $defs and \"$ref\": \"#/$defs/...\" to share parts)")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    if len(json.dumps(schema, ensure_ascii=False)) > MAX_CHARS:
        raise SchemaProblem(f"the schema is too large: at most {MAX_CHARS} characters of JSON")


def _pointer(document: Any, fragment: str) -> bool:
    """Whether the JSON pointer `fragment` ('' or '/a/b', percent- and ~-escaped) finds a value."""
    target = document
    for part in fragment.split("/")[1:] if fragment else []:
        part = unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return False
    return True


def _check_references(schema: dict) -> None:
    anchors = {v for path, node in walk(schema) if isinstance(node, dict)
               for k, v in node.items() if k in ANCHOR_KEYS and isinstance(v, str)}
    for path, node in walk(schema):
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if not isinstance(value, str):  # e.g. a property named "$ref": not a reference
                continue
            where = f"{path}.{key}" if path else key
            if key in REF_KEYS:
                if not value.startswith("#"):
                    raise SchemaProblem(f"'{where}' refers outside the schema ({value!r}); only local references "
                                        "are allowed: '#', '#/$defs/name' or an '#anchor' of this schema")
                fragment = value[1:]
                found = _pointer(schema, fragment) if fragment == "" or fragment.startswith("/") else fragment in anchors
                if not found:
                    raise SchemaProblem(f"'{where}' ({value!r}) points at nothing in this schema; define it "
                                        "under $defs or fix the pointer")
            elif key == "$id" and path:
                raise SchemaProblem(f"'{where}': '$id' is allowed only at the schema's root; remove it "
                                    "(nested schema resources are not supported)")
            elif key == "$schema":
                try:
                    referencing.jsonschema.specification_with(value)
                except referencing.jsonschema.UnknownDialect:
                    raise SchemaProblem(f"'{where}' names an unknown dialect ({value!r}); use "
                                        "'https://json-schema.org/draft/2020-12/schema' or leave it out") from None


def check(schema: Any) -> dict:
    """`schema` if it is a usable JSON schema object, else SchemaProblem saying why. A schema
    that will also constrain decoding goes through rixin.grammar.check_decodable instead."""
    if not isinstance(schema, dict):
        raise SchemaProblem(f"a JSON schema here must be a JSON object, got {type(schema).__name__}")
    _check_bounds(schema)
    _check_references(schema)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        where = ".".join(str(p) for p in e.absolute_path)
        raise SchemaProblem(f"not a valid JSON schema (draft 2020-12){f' at {where!r}' if where else ''}: "
                            f"{e.message}") from None
    return schema


def check_schema(schema: Any, *, param: str, checker=check) -> dict:
    """`checker(schema)` (`check`, or rixin.grammar.check_decodable) with a 400 naming the
    request field `param`."""
    try:
        return checker(schema)
    except SchemaProblem as e:
        raise InvalidRequest(f"Invalid '{param}': {e}.", param=param) from None


# ---------------------------------------------------------------------- applying one


def validator(schema: dict) -> jsonschema.Draft202012Validator:
    """A draft 2020-12 validator that can never fetch a reference (see _REGISTRY)."""
    return jsonschema.Draft202012Validator(schema, registry=_REGISTRY)


def first_error(schema: dict, instance: Any) -> tuple[str, str] | None:
    """(where, message) of the first way `instance` fails `schema` (errors sorted, so the
    answer is stable), or None when it is valid. A value too deep to check, or a reference
    that cannot be resolved (a schema that skipped `check`), counts as a failure."""
    try:
        errors = sorted(validator(schema).iter_errors(instance), key=str)
    except RecursionError:
        return "(root)", "the value is nested too deeply to check"
    except Unresolvable as e:
        return "(root)", f"the schema refers to something it does not hold ({e})"
    if not errors:
        return None
    return "/".join(str(p) for p in errors[0].absolute_path) or "(root)", errors[0].message

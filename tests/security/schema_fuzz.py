"""Random small JSON schemas against rixin.schemas and llama.cpp, run as a subprocess by
test_sec_schema_grammar.py (so a segfault fails that test instead of killing pytest).

    python schema_fuzz.py SEED COUNT

Each schema is printed before it is tried. One the checks accept must give a grammar that
llama.cpp parses (a sampler, not NULL) and that never masks every token while sampling from
random logits (vocab only, no model weights). Prints one JSON summary line at the end; exits
1 when a schema broke that promise.
"""

from __future__ import annotations

import json
import random
import sys

import llama_cpp
import numpy as np

from rixin.grammar import gbnf
from rixin.models.registry import CHAT_MODEL, bundled_models
from rixin.schemas import SchemaProblem, check

STRINGS = ["a", "", "x y", 'q"uote', "back\\slash", "ünï", "中文", "😀", "\ud800", "new\nline", "\u0000", "-"]
PATTERNS = ["^a{3}$", "^[^a]*$", "^()$", "^(a|)$", "^$", "^\\d+$", "^[a-z]{0,5}@x\\.com$", "[\\u0000-\\uffff]",
            "^(ab)+c?$", "^[\\]\\\\]$", "a|b", "^.{2,4}$", "^(a{2}){3}$", "^[^\\x00-\\uffff]$", "^\\w+-\\s$"]


def value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["str", "str", "int", "float", "bool", "null", "list", "obj"] if depth < 2 else ["str", "int"])
    if kind == "str":
        return rng.choice(STRINGS)
    if kind == "int":
        return rng.choice([0, 1, -5, 10**20])
    if kind == "float":
        return rng.choice([0.5, -1.25, 1e300])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 2))]
    return {rng.choice(STRINGS): value(rng, depth + 1) for _ in range(rng.randint(0, 2))}


def schema(rng: random.Random, depth: int = 0):
    leaf = depth >= 3
    kinds = ["type", "enum", "const", "string", "pattern", "format", "number", "empty", "bool", "ref"]
    if not leaf:
        kinds += ["object", "object", "array", "anyOf", "allOf", "not", "typelist"]
    kind = rng.choice(kinds)
    if kind == "type":
        return {"type": rng.choice(["string", "integer", "number", "boolean", "null", "object", "array"])}
    if kind == "enum":
        return {"enum": [value(rng) for _ in range(rng.randint(0, 3))]}
    if kind == "const":
        return {"const": value(rng), **({"type": rng.choice(["string", "integer"])} if rng.random() < 0.3 else {})}
    if kind == "string":
        return {"type": "string", "minLength": rng.randint(0, 6), "maxLength": rng.randint(0, 6)}
    if kind == "pattern":
        return {"type": "string", "pattern": rng.choice(PATTERNS)}
    if kind == "format":
        return {"type": "string", "format": rng.choice(["date", "time", "date-time", "uuid", "email", "nope"])}
    if kind == "number":
        return {"type": rng.choice(["integer", "number"]), "minimum": rng.randint(-3, 3), "maximum": rng.randint(-3, 3)}
    if kind == "empty":
        return {}
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "ref":
        return {"$ref": rng.choice(["#", "#/$defs/a", "#/$defs/b", "#/$defs/missing"])}
    if kind == "object":
        props = {rng.choice(["a", "b", "c d", "$ref", "é"]): schema(rng, depth + 1) for _ in range(rng.randint(0, 3))}
        out = {"type": "object", "properties": props,
               "required": sorted(set(rng.sample(list(props) + ["zz"], rng.randint(0, len(props)))))}
        if rng.random() < 0.5:
            out["additionalProperties"] = rng.choice([True, False, schema(rng, depth + 1)])
        return out
    if kind == "array":
        out = {"type": "array", "items": schema(rng, depth + 1)}
        if rng.random() < 0.6:
            out.update(minItems=rng.randint(0, 3), maxItems=rng.randint(0, 3))
        if rng.random() < 0.2:
            out["prefixItems"] = [schema(rng, depth + 1) for _ in range(rng.randint(1, 2))]
        return out
    if kind in ("anyOf", "allOf"):
        return {kind: [schema(rng, depth + 1) for _ in range(rng.randint(0, 3))]}
    if kind == "not":
        return {"not": rng.choice([{}, True, schema(rng, depth + 1)])}
    return {"type": rng.sample(["string", "integer", "null", "boolean"], rng.randint(1, 3))}


def root(rng: random.Random):
    s = schema(rng)
    if isinstance(s, dict) and rng.random() < 0.4:
        s["$defs"] = {"a": schema(rng, 2), "b": {"type": "object", "properties": {"next": {"$ref": "#/$defs/b"}}}}
    return s


def sample(vocab, text: str, steps: int, rng: np.random.Generator, n_vocab: int) -> str | None:
    """None if llama.cpp took the grammar and always left a token to pick, else what went wrong."""
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
    if not sampler:
        return "llama.cpp returned no sampler (the grammar does not parse)"
    data = (llama_cpp.llama_token_data * n_vocab)()
    view = np.ctypeslib.as_array(data)
    view["id"] = np.arange(n_vocab)
    try:
        for _ in range(steps):
            view["logit"], view["p"] = rng.random(n_vocab, dtype=np.float32), 0.0
            cur = llama_cpp.llama_token_data_array(data=data, size=n_vocab, selected=-1, sorted=False)
            llama_cpp.llama_sampler_apply(sampler, llama_cpp.ctypes.byref(cur))
            best = int(np.argmax(view["logit"]))
            if not np.isfinite(view["logit"][best]):
                return "the grammar masked every token"
            llama_cpp.llama_sampler_accept(sampler, int(view["id"][best]))
        return None
    finally:
        llama_cpp.llama_sampler_free(sampler)


def main(seed: int, count: int) -> int:
    path = next(m.path for m in bundled_models() if m.id == CHAT_MODEL)
    llm = llama_cpp.Llama(path, vocab_only=True, verbose=False)
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    accepted, rejected, broken = 0, 0, []
    for i in range(count):
        s = root(rng)
        print(f"schema {i}: {json.dumps(s)}", flush=True)
        try:
            text = gbnf(check(s))
        except SchemaProblem:
            rejected += 1
            continue
        accepted += 1
        why = sample(llm._model.vocab, text, 8, nprng, llm.n_vocab())
        if why is not None:
            broken.append({"schema": s, "why": why, "grammar": text[:2000]})
    print(json.dumps({"accepted": accepted, "rejected": rejected, "broken": broken}), flush=True)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))

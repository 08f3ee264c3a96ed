"""Is a GBNF grammar (as llama_cpp's schema converter writes it: one `name ::= body` rule a
line) safe to hand to llama.cpp? `check_gbnf` answers None, or why not:

- it parses: literals, character classes, rule names, groups, `|`, `? * +` and `{m,n}`;
  a rule with an empty body is refused (llama.cpp reads past the line end and fails);
- every referenced rule is defined;
- every rule reachable from `root` derives some non-empty text, and each of its alternatives
  derives something (a rule that derives nothing, or only the empty string, or an alternative
  that dead-ends, e.g. on a lone surrogate, would leave the sampler with no token to pick);
- no rule reaches itself without consuming a character (left recursion: llama.cpp refuses).

Groups are flattened into numbered rules while parsing (as llama.cpp does), so the fixpoints
below are flat loops: a 500-deep nest of optional groups needs no recursion.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r'''\s*(?:
    (?P<lit>"(?:[^"\\]|\\.)*")
  | (?P<cls>\[(?:[^\]\\]|\\.)*\])
  | (?P<name>[a-zA-Z0-9-]+)
  | (?P<rep>\{\s*\d+\s*(?:,\s*\d*\s*)?\})
  | (?P<op>[()|?*+.])
)''', re.X | re.S)
_RULE = re.compile(r"^([a-zA-Z0-9-]+) ::= (.*)$")
_ESCAPES = {"n": 10, "r": 13, "t": 9, "\\": 92, '"': 34, "[": 91, "]": 93}
MAX_CODE_POINT = 0x10FFFF

# An item of a sequence: (kind, value, min, max); kind 'lit' (value: produces text?),
# 'cls' (value: matches some character?), 'ref' (value: rule name); max None = unbounded.
Item = tuple[str, object, int, int | None]


def _one(body: str, i: int) -> tuple[int, int] | None:
    """(code point, next index) of the character at body[i], escapes decoded; None if malformed."""
    if body[i] != "\\":
        return ord(body[i]), i + 1
    e = body[i + 1:i + 2]
    if e in _ESCAPES:
        return _ESCAPES[e], i + 2
    if e in ("x", "u", "U"):
        n = {"x": 2, "u": 4, "U": 8}[e]
        digits = body[i + 2:i + 2 + n]
        if len(digits) == n and all(d in "0123456789abcdefABCDEF" for d in digits):
            return int(digits, 16), i + 2 + n
    return None


def _chars(body: str) -> list[int] | None:
    """Code points of a literal's inside; None if malformed."""
    out, i = [], 0
    while i < len(body):
        got = _one(body, i)
        if got is None:
            return None
        out.append(got[0])
        i = got[1]
    return out


def _producible(cp: int) -> bool:
    """A character text from a token can hold: not NUL (llama.cpp's end marker), not a
    surrogate, in range."""
    return 0 < cp <= MAX_CODE_POINT and not 0xD800 <= cp <= 0xDFFF


def _any_producible(lo: int, hi: int) -> bool:
    """Whether lo..hi holds a producible character (the surrogates are one block)."""
    lo, hi = max(lo, 1), min(hi, MAX_CODE_POINT)
    return lo <= hi and (_producible(lo) or _producible(hi))  # both ends unproducible: all surrogates


def _class_matches(inside: str) -> bool | None:
    """Whether `[inside]` matches some producible character; None if malformed."""
    negated = inside.startswith("^")
    i, ranges = (1 if negated else 0), []
    while i < len(inside):
        got = _one(inside, i)
        if got is None:
            return None
        lo, i = got
        hi = lo
        if i + 1 < len(inside) and inside[i] == "-":  # a range (a '-' last is itself)
            got = _one(inside, i + 1)
            if got is None:
                return None
            hi, i = got
        ranges.append((lo, hi))
    if not negated:
        return any(_any_producible(lo, hi) for lo, hi in ranges)
    nxt = 1  # the smallest character not yet excluded
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if lo > nxt and _any_producible(nxt, lo - 1):
            return True
        nxt = max(nxt, hi + 1)
    return _any_producible(nxt, MAX_CODE_POINT)


def _parse(text: str) -> tuple[dict[str, list[list[Item]]], str | None]:
    rules: dict[str, list[list[Item]]] = {}
    for line in text.split("\n"):
        if not line.strip():
            continue
        m = _RULE.match(line)
        if m is None:
            return rules, f"unparseable line {line[:80]!r}"
        if not m.group(2).strip():
            return rules, f"rule '{m.group(1)}' is empty (a part of the schema allows no value)"
        why = _parse_body(m.group(1), m.group(2), rules)
        if why is not None:
            return rules, why
    return rules, None


def _parse_body(name: str, body: str, rules: dict) -> str | None:
    frames: list[list[list[Item]]] = [[[]]]  # per open group: its alternatives (sequences)
    pos, groups = 0, 0
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None or m.end() == pos:
            if body[pos:].strip():
                return f"rule '{name}': cannot read {body[pos:pos + 40]!r}"
            break
        pos, seq = m.end(), frames[-1][-1]
        if m.group("lit") is not None:
            cps = _chars(m.group("lit")[1:-1])
            if cps is None:
                return (f"rule '{name}': bad escape in {m.group('lit')[:40]} (in a pattern, the converter "
                        "passes escapes like \\d and \\. through: write [0-9] and [.] instead)")
            seq.append(("lit", bool(cps) and all(_producible(c) for c in cps), 1, 1))
            if cps and not all(_producible(c) for c in cps):
                seq[-1] = ("cls", False, 1, 1)  # text no token can write: derives nothing
        elif m.group("cls") is not None:
            matches = _class_matches(m.group("cls")[1:-1])
            if matches is None:
                return f"rule '{name}': bad character class {m.group('cls')[:40]}"
            seq.append(("cls", matches, 1, 1))
        elif m.group("name") is not None:
            seq.append(("ref", m.group("name"), 1, 1))
        elif m.group("rep") is not None or m.group("op") in ("?", "*", "+"):
            if not seq:
                return f"rule '{name}': a repetition follows nothing"
            kind, value, _, _ = seq[-1]
            if m.group("rep") is not None:
                lo, _, hi = m.group("rep")[1:-1].replace(" ", "").partition(",")
                bounds = (int(lo), int(lo) if "," not in m.group("rep") else (int(hi) if hi else None))
            else:
                bounds = {"?": (0, 1), "*": (0, None), "+": (1, None)}[m.group("op")]
            seq[-1] = (kind, value, *bounds)
        elif m.group("op") == ".":
            seq.append(("cls", True, 1, 1))
        elif m.group("op") == "|":
            frames[-1].append([])
        elif m.group("op") == "(":
            frames.append([[]])
        elif m.group("op") == ")":
            if len(frames) == 1:
                return f"rule '{name}': unbalanced ')'"
            groups += 1
            group = f"{name}--group{groups}"
            rules[group] = frames.pop()
            frames[-1][-1].append(("ref", group, 1, 1))
    if len(frames) != 1:
        return f"rule '{name}': unbalanced '('"
    rules[name] = frames[0]
    return None


def _fixpoint(rules: dict) -> tuple[set, set, set]:
    """(productive, nullable, non_empty) rule names: derives some text / the empty text /
    some non-empty text."""
    productive, nullable, non_empty = set(), set(), set()

    def prod(kind, value, lo, hi) -> bool:
        return lo == 0 or (value in productive if kind == "ref" else kind == "lit" or bool(value))

    def null(kind, value, lo, hi) -> bool:
        return lo == 0 or (value in nullable if kind == "ref" else kind == "lit" and not value)

    def some(kind, value, lo, hi) -> bool:
        return hi != 0 and (value in non_empty if kind == "ref" else bool(value))

    changed = True
    while changed:
        changed = False
        for name, alternatives in rules.items():
            for seq in alternatives:
                p = all(prod(*item) for item in seq)
                for found, ok in ((productive, p), (nullable, all(null(*item) for item in seq)),
                                  (non_empty, p and any(some(*item) for item in seq))):
                    if ok and name not in found:
                        found.add(name)
                        changed = True
    return productive, nullable, non_empty


def _left_cycle(rules: dict, nullable: set, reachable: set) -> str | None:
    """A rule that reaches itself through leftmost positions (only nullable items before)."""
    edges: dict[str, set[str]] = {}
    for name in reachable:
        out = edges.setdefault(name, set())
        for seq in rules[name]:
            for kind, value, lo, hi in seq:
                if kind == "ref":
                    out.add(value)
                if not (lo == 0 or (kind == "lit" and not value) or (kind == "ref" and value in nullable)):
                    break
    state: dict[str, int] = {}  # 1 on the path, 2 done
    for start in sorted(edges):
        if start in state:
            continue
        stack = [(start, iter(sorted(edges[start])))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                return child
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(sorted(edges.get(child, ())))))
    return None


def _public(name: str) -> str:
    return name.split("--group")[0]


def check_gbnf(text: str) -> str | None:
    """None when llama.cpp can use `text` from its `root` rule, else why not."""
    rules, why = _parse(text)
    if why is not None:
        return why
    if "root" not in rules:
        return "no 'root' rule"
    reachable, stack = {"root"}, ["root"]
    while stack:
        for seq in rules[stack.pop()]:
            for kind, value, _, _ in seq:
                if kind != "ref":
                    continue
                if value not in rules:
                    return f"rule '{value}' is used but not defined"
                if value not in reachable:
                    reachable.add(value)
                    stack.append(value)
    productive, nullable, non_empty = _fixpoint(rules)
    for name in sorted(reachable):
        # Every alternative must lead somewhere: the sampler may start down any of them, and a
        # dead end half-way leaves it no token to pick.
        dead = any(not all(lo == 0 or (v in productive if k == "ref" else k == "lit" or v) for k, v, lo, _ in seq)
                   for seq in rules[name])
        if name not in non_empty or dead:
            return (f"rule '{_public(name)}' {'can produce no text' if name not in non_empty else 'has a dead end'} "
                    "(the part of the schema it comes from allows no value, or text no model can write)")
    cycle = _left_cycle(rules, nullable, reachable)
    if cycle is not None:
        return f"rule '{_public(cycle)}' refers to itself before producing any text (left recursion)"
    return None


def literal(text: str) -> str:
    """`text` as a GBNF string literal (quotes, backslashes and line ends escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


def prefixed(text: str, prefix: str) -> str:
    """`text` with every rule name, defined or referenced, given `prefix`: several converted
    grammars (each with its own `root`, `space`, `char`...) then share one grammar without
    their rules colliding. Literals and character classes are kept as written."""
    lines = []
    for line in text.split("\n"):
        m = _RULE.match(line)
        if m is None:
            lines.append(line)
            continue
        body, pos, out = m.group(2), 0, []
        while pos < len(body):
            token = _TOKEN.match(body, pos)
            if token is None or token.end() == pos:
                out.append(body[pos:])
                break
            piece = body[pos:token.end()]
            if token.group("name") is not None:
                piece = piece[:token.start("name") - pos] + prefix + token.group("name")
            out.append(piece)
            pos = token.end()
        lines.append(f"{prefix}{m.group(1)} ::= {''.join(out)}")
    return "\n".join(lines)

"""The house's import rules, checked on the source of src/rixin: no import cycles between
modules, and no room importing a room above it (/work/shared/DESIGN.md "The house",
docs/ARCHITECTURE.md "Rooms").

Every `import` and `from ... import` counts wherever it is written: at module level, inside a
function (a function-local import hides a loop from Python at import time, not from the
design) and under `if TYPE_CHECKING:`. Only imports whose target is spelled out are seen;
the block registry's importlib call (data/blocks) names no module, on purpose.

    PYTHONPATH=src python -m pytest tests/test_imports.py -q
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# The rooms, lowest first. A room may import rooms of its own level and of the levels below,
# never one above. errors/config/metrics are leaves every room may use; jobs/ is the generic
# job machinery (rows, claiming, the runner), so it sits below the rooms whose jobs it runs;
# platform.py is the composition root (it wires every domain service and the job kinds), so
# it sits above them and below the HTTP api; cli/ is the outermost client. `serving` is the
# room issue 19 adds (deployments, routing, the engine pool and client).
ROOMS: list[tuple[str, ...]] = [
    ("errors", "config", "metrics", "rixin", "extensions"),  # "rixin": the package itself (__version__)
    ("schemas", "gbnf", "grammar", "toolcalls"),  # JSON Schema checks, grammars, the tool-call format: engines, api, train
    ("store",),
    ("models",),
    ("engines",),
    ("serving",),
    ("compute",),
    ("jobs",),
    ("data",),
    ("label",),
    ("evals",),
    ("train",),
    ("flywheel",),
    ("batches",),  # OpenAI's Batch API: a job kind that answers requests the way the gateway does
    ("platform",),
    ("console",),
    ("api",),
    ("cli",),
]
LEVEL = {room: level for level, rooms in enumerate(ROOMS) for room in rooms}

# The imports that still break a rule, each with the issue-19 item that removes it. The test
# fails when one of them no longer breaks a rule (delete it here) and when any other import
# does. An import listed here is also left out of the cycle search.
ALLOWED: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module under src/rixin."""
    found = {}
    for path in sorted((SRC / "rixin").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict) -> list[str]:
    """The modules an import statement names: `from a.b import c` is a.b.c when c is a module,
    else a.b; relative imports are resolved against `module`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def _graph() -> dict[tuple[str, str], int]:
    """(importer, imported) -> the line of the first such import, between modules of rixin."""
    modules, edges = _modules(), {}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(module, path, node, modules):
                while target not in modules and "." in target:  # `import rixin.x.Name` -> rixin.x
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != module and target.split(".")[0] == "rixin":
                    edges.setdefault((module, target), node.lineno)
    return edges


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _upward(edges) -> set[tuple[str, str]]:
    return {(a, b) for a, b in edges if LEVEL[_room(b)] > LEVEL[_room(a)]}


def _cycles(edges) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    out: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        out[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack, on_stack, found = [], set(), []
    for root in sorted(out):
        if root in index:
            continue
        work = [(root, iter(sorted(out[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(out[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _show(edges, pairs) -> str:
    return "\n".join(f"  {a} ({_room(a)}) imports {b} ({_room(b)}), line {edges[a, b]}" for a, b in sorted(pairs))


@pytest.fixture(scope="module")
def edges() -> dict[tuple[str, str], int]:
    return _graph()


def test_every_room_has_a_place_in_the_order(edges) -> None:
    rooms = {_room(module) for module in _modules()}
    unplaced = sorted(rooms - set(LEVEL))
    assert not unplaced, f"new room(s) {unplaced}: add them to ROOMS in tests/test_imports.py, at their level"


def test_no_import_cycles(edges) -> None:
    kept = {edge: line for edge, line in edges.items() if edge not in ALLOWED}
    cycles = _cycles(kept)
    inside = [{(a, b) for a, b in kept if a in set(c) and b in set(c)} for c in cycles]
    assert not cycles, "import cycles between modules:\n" + "\n".join(
        f"cycle {' <-> '.join(c)}:\n{_show(kept, pairs)}" for c, pairs in zip(cycles, inside)
    )


def test_no_room_imports_a_room_above_it(edges) -> None:
    new = _upward(edges) - set(ALLOWED)
    assert not new, "a lower room imports a higher one (see ROOMS):\n" + _show(edges, new)


def test_the_allow_list_is_not_stale(edges) -> None:
    """Each allowed import must still exist and still break a rule; once the work that
    removes it lands, this fails until its line is deleted from ALLOWED."""
    in_cycle = {edge for c in _cycles(edges) for edge in edges if edge[0] in c and edge[1] in c}
    stale = [edge for edge in ALLOWED if edge not in edges or edge not in _upward(edges) | in_cycle]
    assert not stale, f"no longer a violation, delete from ALLOWED: {stale}"

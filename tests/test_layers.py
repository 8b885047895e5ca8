"""The layers as the tools see them: no import circles, no edge hidden from the import graph,
and docs/architecture.md matching the code (every module placed, every rule it says a tool
holds an import-linter contract of that name)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "userphoto"
ARCHITECTURE = REPO / "docs" / "architecture.md"


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "vendor" not in p.relative_to(PACKAGE).parts)


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_the_cycle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    """Every import counts, those inside functions and under TYPE_CHECKING too: a circle
    there is still two modules that cannot be understood (or split) one without the other."""
    graph = grimp.build_graph("userphoto", cache_dir=None)
    ours = {m for m in graph.modules if not m.startswith("userphoto.vendor")}
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & ours for m in ours}
    assert sum(map(len, edges.values())) > 500  # the graph was read
    assert circles(edges) == []


def test_no_import_is_hidden_from_the_graph() -> None:
    """Modules are imported by name (`import`, `from ... import`), never through importlib or
    `__import__`: an edge the linter cannot see is a layer it cannot hold."""
    hidden = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "import_module":
                hidden.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id == "__import__":
                hidden.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert hidden == []


def contracts() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [c["name"] for c in config["tool"]["importlinter"]["contracts"]]


def test_every_rule_the_architecture_says_a_tool_holds_is_a_contract() -> None:
    """The table under "Held by tools" names each contract exactly as pyproject.toml does,
    and every contract is in it."""
    text = ARCHITECTURE.read_text()
    held = text.split("## Held by tools", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\| ([^|`][^|]*?) \|", held, re.M)
    named = [n for n in named if n != "contract"]
    assert named, "the table of contracts was not found"
    assert sorted(named) == sorted(contracts())


def test_every_module_is_placed_in_the_architecture() -> None:
    """Each module is named in docs/architecture.md: its path (`api/lookup.py`), or, in the
    row of its package (`userphoto/store/`), its name in backticks (`base.py`, `sqlite/`,
    `schema`)."""
    text = ARCHITECTURE.read_text()
    rows = {m[1]: m[0] for m in re.finditer(r"^\| `userphoto/([a-z_]+)/` \|.*$", text, re.M)}
    missing = []
    for path in modules():
        rel = path.relative_to(PACKAGE)
        if rel == Path("__init__.py"):  # the package itself (the version)
            continue
        if f"`userphoto/{rel.as_posix()}`" in text or f"`{rel.as_posix()}`" in text:
            continue
        top = rel.parts[0]
        row = rows.get(top, "")
        if len(rel.parts) == 1:  # a top-level module: userphoto/x.py
            missing.append(rel.as_posix())
            continue
        if rel.name == "__init__.py":
            package = "/".join(rel.parts[1:-1])
            if not package or f"`{package}/`" in row:
                continue
        elif any(f"`{n}`" in row for n in (rel.name, rel.stem, "/".join(rel.parts[1:]))):
            continue
        missing.append(rel.as_posix())
    assert missing == []

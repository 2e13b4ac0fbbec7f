"""The package's shape, read from the source with ast: no import cycle, and each stage depends only on those before.

avatar/ -> speech/ -> animate/ -> live/ ; server/ and cli.py are thin edges over them. The root modules
(settings.py, visemes.py, spring.py: knowledge every stage shares) are importable by all and import no stage.
photoavatar/testing/ holds instruments for tests and benchmarks: nothing in the package imports it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "photoavatar"
STAGES = ("avatar", "speech", "animate", "live", "server")  # in order: each may import only those before it
EDGES = {"cli", "server", "testing"}  # the thin edges (and the instruments): no stage imports them


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(body: list[ast.stmt], module_level_only: bool):
    """Import statements; module level: those run on import (not in functions, classes or TYPE_CHECKING)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and module_level_only and _is_type_checking(node):
            yield from _import_nodes(node.orelse, module_level_only)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and module_level_only:
            continue
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _import_nodes(getattr(node, field, []) or [], module_level_only)


def _resolve(name: str) -> str | None:
    """The photoavatar module NAME refers to (a module, else its package), or None outside the package."""
    while name:
        if name in modules():
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def imports_of(module: str, module_level_only: bool) -> frozenset[str]:
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path)).body, module_level_only):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        found |= {target for name in targets if (target := _resolve(name)) and target != module}
    return frozenset(found)


def area_of(module: str) -> str:
    """The stage or edge a module belongs to ('avatar', ..., 'cli', 'testing'), or 'root'."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] in STAGES or parts[1] in EDGES or parts[1] == "web":
        return parts[1]
    return "root"


def allowed(importer: str, imported: str) -> bool:
    source, target = area_of(importer), area_of(imported)
    if target in ("root", "package") or source == target:
        return True
    if source in ("root", "package"):
        return False  # shared knowledge depends on no stage
    if target in EDGES:
        return source == "testing" or (source == "cli" and target == "server")
    if source in EDGES:
        return True
    return STAGES.index(target) < STAGES.index(source)


def find_cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One import cycle of GRAPH, as the modules along it, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_reader_sees_every_module_and_its_imports():
    assert {"photoavatar.settings", "photoavatar.speech.ipa", "photoavatar.live.protocol"} <= modules().keys()
    assert "photoavatar.speech.ipa" in imports_of("photoavatar.speech.timeline", True)
    assert "photoavatar.live.protocol" in imports_of("photoavatar.live.webrtc", True)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({**graph, "c": frozenset()}) is None


@pytest.mark.parametrize("module_level_only", [True, False], ids=["on-import", "with-lazy-imports"])
def test_no_import_cycle(module_level_only):
    # with lazy imports too: a function-local import that dodges a cycle (elevenlabs <-> elevenlabs_ws at
    # 8b19a9e) still ties the two modules into one
    graph = {module: imports_of(module, module_level_only) for module in modules()}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_each_stage_imports_only_the_stages_before_it():
    # every import, function-local ones too: a lazy import is still a dependency
    wrong = sorted(f"{module} imports {target}" for module in modules()
                   for target in imports_of(module, module_level_only=False) if not allowed(module, target))
    assert not wrong, "a stage depends on a later stage or an edge:\n" + "\n".join(wrong)


def test_the_stage_rule_itself():
    assert allowed("photoavatar.speech.timeline", "photoavatar.avatar.bundle")
    assert allowed("photoavatar.live.session", "photoavatar.spring")
    assert allowed("photoavatar.server.app", "photoavatar.live.transports")
    assert not allowed("photoavatar.avatar.compose", "photoavatar.animate.jaw")
    assert not allowed("photoavatar.speech.pipeline", "photoavatar.live.protocol")
    assert not allowed("photoavatar.live.session", "photoavatar.server.config")
    assert not allowed("photoavatar.settings", "photoavatar.speech.ipa")
    assert not allowed("photoavatar.live.webrtc", "photoavatar.testing.peer")

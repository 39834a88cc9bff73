"""The Engine is the only door: the face imports four modules of the engine, and the engine's modules form no knot.

Read from the source with ``ast`` (nothing is imported to find out), so a new
import anywhere under ``gtui/`` — at module level, in a function, or under
``if TYPE_CHECKING:`` — is seen.  In ``gtcore/`` every import that runs counts
toward a cycle, in a function too, and so do the names the faces' façade
(:mod:`gtcore.model`) imports lazily: a knot of modules that need each other
is one module in all but name, whenever the import happens.  One lazy edge is
allowed, documented in :data:`LAZY_EDGES`.  No engine module imports the
façade.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import gtcore.model

ROOT = Path(__file__).resolve().parent.parent
FACE_MAY_IMPORT = {"gtcore.engine", "gtcore.model", "gtcore.core.events", "gtcore.core.errors",
                   "gtcore.__version__", "gtcore.dogs.kennel_door"}  # the version and the kennel's door: what gtui.thin imports
ENGINE_INTERNALS = {"ledger", "patrol", "runner", "escalations", "pool", "bus", "plugin_cache"}  # what Engine wraps for the face
LAZY_EDGES = {("gtcore.plugins.spec", "gtcore.plugins.parse")}
"""Imports that close a cycle and are allowed: each runs in a function only.  ``spec.parse_plugin`` imports the parser
(and TOML) when a file must be parsed, which a warm plugin cache spares every command; the parser builds the spec's
records."""


def modules(package: str) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package's ``__init__`` is the package itself)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def every_import(tree: ast.AST, known: set[str] = frozenset()) -> Iterator[tuple[int, str]]:  # type: ignore[assignment]
    """(line, module) for every import anywhere in ``tree``; ``from a import b`` names ``a.b`` when that is a module of
    ``known`` (``from gtcore.dogs import kennel_door``), else ``a``; ``from gtcore import b`` always names ``gtcore.b`` (the
    package root holds only the version: what comes from it is a submodule, or the version)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "gtcore":
            yield from ((node.lineno, f"gtcore.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield from dict.fromkeys((node.lineno, f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known
                                      else node.module) for alias in node.names)


def running_imports(body: list[ast.stmt], known: set[str]) -> Iterator[str]:
    """The modules of ``known`` that ``body`` imports when it runs: at module level, in functions and class bodies, in
    every block; never under ``if TYPE_CHECKING:``, which never runs.  ``from gtcore.dogs import processes`` imports the
    submodule when there is one."""
    for node in body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            yield from running_imports(node.orelse, known)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module in known:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in known)
        for block in ("body", "orelse", "finalbody", "handlers"):
            yield from running_imports([child for child in getattr(node, block, []) if isinstance(child, ast.stmt | ast.excepthandler)],
                                       known)


def import_graph(package: str, lazy: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports when it runs (``lazy``: more edges, such as the façade's)."""
    found = modules(package)
    known = set(found)
    graph = {name: set(running_imports(ast.parse(path.read_text(encoding="utf-8")).body, known)) - {name}
             for name, path in found.items()}
    for name, more in (lazy or {}).items():
        graph[name] |= more
    return graph


def engine_graph() -> dict[str, set[str]]:
    """gtcore's imports, with the names the façade imports lazily, less the allowed lazy edges."""
    graph = import_graph("gtcore", {"gtcore.model": set(gtcore.model.HOMES)})
    for importer, imported in LAZY_EDGES:
        graph[importer].discard(imported)
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the path that closes it (``[a, b, a]``), or None when it has none (depth first, by colour)."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for following in sorted(graph.get(node, ())):
            if state.get(following) == "open":
                return [*path[path.index(following):], following]
            if following not in state and (found := visit(following)) is not None:
                return found
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def face_imports_of_the_engine() -> list[str]:
    """``path:line module`` for every import of the engine under ``gtui/`` that is not through its four modules."""
    wrong = []
    for path in modules("gtui").values():
        for line, module in every_import(ast.parse(path.read_text(encoding="utf-8")), set(modules("gtcore"))):
            if (module == "gtcore" or module.startswith("gtcore.")) and module not in FACE_MAY_IMPORT:
                wrong.append(f"{path.relative_to(ROOT)}:{line} {module}")
    return wrong


def test_the_face_imports_only_the_engine_model_events_and_errors() -> None:
    assert face_imports_of_the_engine() == []


def test_a_forbidden_import_anywhere_in_the_face_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: the package root, a submodule, inside a function and under TYPE_CHECKING all count."""
    face = tmp_path / "gtui"
    face.mkdir()
    (face / "ok.py").write_text("from gtcore.model import Plugin\nimport gtcore.core.events\n", encoding="utf-8")
    (face / "bad.py").write_text("from gtcore import __version__, patrol\n"
                                 "if TYPE_CHECKING:\n    from gtcore.ledger import Ledger\n"
                                 "def later():\n    import gtcore.patrol.cycle\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert face_imports_of_the_engine() == ["gtui/bad.py:1 gtcore.patrol", "gtui/bad.py:3 gtcore.ledger",
                                            "gtui/bad.py:5 gtcore.patrol.cycle"]


def test_the_engine_has_no_import_knot() -> None:
    graph = engine_graph()
    assert graph["gtcore.engine"] >= {"gtcore.core.events", "gtcore.core.errors", "gtcore.plugins.discovery"}  # read, not empty
    assert graph["gtcore.model"] >= {"gtcore.plugins.spec", "gtcore.patrol.shapes"}  # the façade's lazy names count
    assert cycle_in(graph) is None, " -> ".join(cycle_in(graph) or [])


def test_each_allowed_lazy_edge_is_one_and_closes_a_cycle() -> None:
    """An allowed edge is an import in a function, never at module level (it would then be a real cycle at start-up);
    and it is listed because it is needed: without the allowance, the check would fail."""
    for importer, imported in LAZY_EDGES:
        tree = ast.parse(modules("gtcore")[importer].read_text(encoding="utf-8"))
        top = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        assert not any(imported in {getattr(node, "module", None), *(alias.name for alias in node.names)} for node in top)
    graph = import_graph("gtcore", {"gtcore.model": set(gtcore.model.HOMES)})
    assert cycle_in(graph) is not None


def test_no_engine_module_imports_the_faces_facade() -> None:
    assert [name for name, path in modules("gtcore").items() if name != "gtcore.model" and node_imports_model(path)] == []


def node_imports_model(path: Path) -> bool:
    """Whether ``path`` imports gtcore.model anywhere, under TYPE_CHECKING too (the façade is for the faces alone)."""
    return any(module == "gtcore.model" for _, module in every_import(ast.parse(path.read_text(encoding="utf-8"))))


def test_a_cycle_is_found_through_function_imports_and_type_checking_makes_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = tmp_path / "pkg"
    engine.mkdir()
    (engine / "__init__.py").write_text("", encoding="utf-8")
    (engine / "a.py").write_text("from pkg import b\n", encoding="utf-8")
    (engine / "b.py").write_text("if TYPE_CHECKING:\n    from pkg.a import X\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert import_graph("pkg") == {"pkg": set(), "pkg.a": {"pkg", "pkg.b"}, "pkg.b": set()}
    assert cycle_in(import_graph("pkg")) is None
    (engine / "b.py").write_text("def later():\n    import pkg.a\n", encoding="utf-8")  # a function's import: a knot all the same
    assert cycle_in(import_graph("pkg")) == ["pkg.a", "pkg.b", "pkg.a"]
    (engine / "c.py").write_text("try:\n    import pkg.a\nexcept ImportError:\n    pass\n", encoding="utf-8")
    (engine / "b.py").write_text("class B:\n    from pkg.c import X\n", encoding="utf-8")
    assert cycle_in(import_graph("pkg")) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    assert cycle_in(import_graph("pkg", {"pkg.c": {"pkg.c"}})) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (engine / "c.py").write_text("", encoding="utf-8")
    assert cycle_in(import_graph("pkg", {"pkg.c": {"pkg.a"}})) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]  # a lazy name counts


def test_the_face_reaches_no_engine_internals() -> None:
    """``engine.ledger.x()`` and the like: the face asks the engine, which wraps what the face needs."""
    reached = []
    for path in modules("gtui").values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and _is_engine(node.value) and (node.attr in ENGINE_INTERNALS or node.attr.startswith("_")):
                reached.append(f"{path.relative_to(ROOT)}:{node.lineno} engine.{node.attr}")
    assert reached == []


def _is_engine(node: ast.expr) -> bool:
    """``engine``, ``self.engine``, ``ctx.engine``, ``engine()`` (the plugin-facing commands' engine)."""
    if isinstance(node, ast.Call):
        node = node.func
    return (isinstance(node, ast.Name) and node.id == "engine") or (isinstance(node, ast.Attribute) and node.attr == "engine")


@pytest.mark.parametrize("name", sorted(gtcore.model.ELSEWHERE))
def test_every_name_the_model_re_exports_is_the_one_defined_elsewhere(name: str) -> None:
    module = __import__(gtcore.model.ELSEWHERE[name], fromlist=(name,))
    assert getattr(gtcore.model, name) is getattr(module, name)


def test_importing_the_model_imports_none_of_what_it_re_exports() -> None:
    """The model stays as cheap as its own records: what it names from elsewhere is imported when it is asked for."""
    probe = "import gtcore.model, sys, json; print(json.dumps(sorted(m for m in sys.modules if m.startswith('gtcore'))))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    assert json.loads(done.stdout) == ["gtcore", "gtcore.core", "gtcore.core.beads", "gtcore.core.errors", "gtcore.core.records",
                                       "gtcore.model"]
    with pytest.raises(AttributeError, match="no attribute 'Ledger'"):
        gtcore.model.Ledger  # noqa: B018  (not re-exported: the face has no business with it)

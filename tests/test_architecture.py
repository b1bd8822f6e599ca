"""The house rules (docs/architecture.md), enforced from the import graph of ``src/clapkit``.

The graph is read from the AST of every module, function-local imports included, so an import hidden inside a
function still counts. Then: no import cycle, the library imports nothing from the rooms built on top of it, each of
those rooms imports only the rooms below it, and loading a model imports none of them at run time either.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
import textwrap
from pathlib import Path

import clapkit

PACKAGE = Path(clapkit.__file__).parent
# rooms built on the library, and which of them each may import (the library itself may import none of them)
UPPER_ROOMS = {
    "eval": set(),
    "index": set(),
    "train": {"eval"},  # validation uses eval's retrieval metrics
    "serve": {"index"},
    "recipes": {"train", "eval", "harvest"},  # reverberated views use the harvest's room model (effects)
    "harvest": {"train"},  # corpus harvesting captions clips with training's caption templates
    "commands": {"train", "eval", "index", "serve", "recipes", "harvest"},
    "cli": {"commands"},
}


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["clapkit", *path.relative_to(PACKAGE).with_suffix("").parts]
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The clapkit modules ``name`` imports anywhere in its body (``from pkg import sub`` counts as ``pkg.sub``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "clapkit"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "clapkit":
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


@functools.cache
def import_graph() -> dict[str, set[str]]:
    names = module_names()
    return {name: imports_of(name, path, set(names)) for name, path in names.items()}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "clapkit"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_function_local_and_relative_imports(tmp_path):
    source = tmp_path / "clapkit" / "audio" / "x.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from clapkit.train import loop\n    from . import io\n    import clapkit.eval\n")
    known = {"clapkit.train", "clapkit.train.loop", "clapkit.audio.io", "clapkit.eval", "clapkit.audio.x"}
    assert imports_of("clapkit.audio.x", source, known) == {"clapkit.train.loop", "clapkit.audio.io", "clapkit.eval"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_library_imports_nothing_from_the_rooms_above_it():
    bad = {f"{module} -> {target}" for module, targets in import_graph().items() if room(module) not in UPPER_ROOMS
           for target in targets if room(target) in UPPER_ROOMS}
    assert not bad, sorted(bad)


def test_each_upper_room_imports_only_the_rooms_below_it():
    bad = {f"{module} -> {target}" for module, targets in import_graph().items() if room(module) in UPPER_ROOMS
           for target in targets
           if room(target) in UPPER_ROOMS and room(target) != room(module)
           and room(target) not in UPPER_ROOMS[room(module)]}
    assert not bad, sorted(bad)


def test_loading_a_model_imports_no_upper_room(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import clapkit
        model = clapkit.load("default")
        model.save({str(tmp_path / "copy")!r})
        clapkit.load({str(tmp_path / "copy")!r})
        rooms = {sorted(UPPER_ROOMS)!r}
        print(sorted(m for m in sys.modules if m.split(".")[0] == "clapkit" and len(m.split(".")) > 1
                     and m.split(".")[1] in rooms))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"

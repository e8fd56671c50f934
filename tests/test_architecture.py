"""The architecture of ``src/mdn``: a package per layer, imports pointing one way, no circles,
no private name crossing a module (docs/architecture.md draws the same picture).

Every import counts: at the top of a module, inside a function, under ``if TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import mdn

ROOT = Path(mdn.__file__).parent

#: The top-level modules and packages of ``mdn``, lowest first: a room may import rooms of
#: earlier layers only. ``__init__`` is the package's face (``import mdn``); ``sensors`` is
#: the old home of ``ocean.sensors``, kept for its users.
LAYERS = [
    ["runtime", "torch_internals", "tensor_files"],
    ["params"],
    ["ocean", "distributions"],
    ["datasets", "sensors", "nn", "metrics", "onnx"],
    ["training"],
    ["estimator"],
    ["plotting", "raster", "distributed"],
    ["cli"],
    ["__init__"],
]

#: The one module that may use private names of other libraries: every private torch call,
#: probed once, with a public fallback.
PRIVATE_CALLS_ALLOWED = {"torch_internals"}


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts == ("__init__",):
        return "__init__"
    return ".".join(p for p in parts if p != "__init__")


def _modules(root: Path) -> dict[str, Path]:
    return {_module(path, root): path for path in root.rglob("*.py")}


MODULES = _modules(ROOT)


def _room(module: str) -> str:
    return module.split(".")[0]


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The mdn module that an imported dotted name lives in (None outside mdn)."""
    if name != "mdn" and not name.startswith("mdn."):
        return None
    parts = name.split(".")[1:]
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) if parts else "__init__"


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every ``import`` of a name in the file, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                found.append((node.module, alias.name))
    return found


def _arrows(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the mdn modules it imports."""
    arrows = defaultdict(set)
    for module, path in modules.items():
        for source, name in _imports(path):
            target = _resolve(f"{source}.{name}" if name else source, modules)
            if target is not None and target != module:
                arrows[module].add(target)
    return arrows


def _upward(modules: dict[str, Path], layers: list[list[str]]) -> list[str]:
    level = {room: i for i, layer in enumerate(layers) for room in layer}
    return sorted(
        f"mdn.{module} imports mdn.{target}"
        for module, targets in _arrows(modules).items()
        for target in targets
        if _room(target) != _room(module) and level[_room(target)] >= level[_room(module)]
    )


def _circles(modules: dict[str, Path]) -> list[str]:
    arrows = _arrows(modules)
    # A package's face (__init__) only gathers its modules' names: it is not a link of a
    # circle, as no module of the package imports it back.
    faces = {m for m, p in modules.items() if p.name == "__init__.py"}
    circles, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(arrows.get(module, ())):
            if target in faces:
                continue
            if state.get(target) == "open":
                circles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(modules):
        if module not in state and module not in faces:
            visit(module, [module])
    return circles


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_private_names(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, classes, constants, attributes set on
    ``self`` or ``cls``, and arguments of its own functions."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if not isinstance(node, ast.ClassDef):
                names.update(a.arg for a in node.args.args + node.args.kwonlyargs)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {name for name in names if _private(name)}


def _crossings(modules: dict[str, Path]) -> list[str]:
    trees = {module: ast.parse(path.read_text()) for module, path in modules.items()}
    defined = {module: _defined_private_names(tree) for module, tree in trees.items()}
    everywhere = set().union(*defined.values())
    crossings = set()
    for module, tree in trees.items():
        for source, name in _imports(modules[module]):
            if _resolve(source, modules) is not None and _private(name):
                crossings.add(f"mdn.{module} imports {name} from {source}")
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            if node.attr in defined[module]:
                continue  # its own
            if node.attr in everywhere:
                crossings.add(f"mdn.{module} uses {node.attr} of another mdn module")
            elif module not in PRIVATE_CALLS_ALLOWED:
                crossings.add(f"mdn.{module} uses {node.attr}, private to another library")
    return sorted(crossings)


def test_every_room_has_a_layer():
    placed = {room for layer in LAYERS for room in layer}
    assert {_room(module) for module in MODULES} == placed


def test_imports_between_rooms_point_down():
    upward = _upward(MODULES, LAYERS)
    assert not upward, "imports pointing up or sideways:\n" + "\n".join(upward)


def test_no_import_circles():
    circles = _circles(MODULES)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_no_private_name_crosses_a_module():
    crossings = _crossings(MODULES)
    assert not crossings, "\n".join(crossings)


def test_the_checks_find_what_they_look_for(tmp_path):
    """A small tree broken on purpose: an upward import, a circle under TYPE_CHECKING, a
    private name imported and one used, a private attribute of another library."""
    files = {
        "low.py": "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from mdn.high import Thing\n"
        "def _helper():\n    pass\n",
        "high.py": "import numpy as np\nfrom mdn.low import _helper\n"
        "class Thing:\n    def _own(self):\n        return self._own, np._private_bit\n"
        "def use(thing):\n    import mdn.low as low\n    return low._helper\n",
        "__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    modules = _modules(tmp_path)
    assert _upward(modules, [["low"], ["high"], ["__init__"]]) == ["mdn.low imports mdn.high"]
    assert _circles(modules) == ["high -> low -> high"]
    figures = _figures(tmp_path)
    assert figures["import circles among modules"] == figures["import circles among rooms"] == 1
    assert _crossings(modules) == [
        "mdn.high imports _helper from mdn.low",
        "mdn.high uses _helper of another mdn module",
        "mdn.high uses _private_bit, private to another library",
    ]


def _reachable(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    reach = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for target in graph.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        reach[start] = seen
    return reach


def _strong_groups(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of two or more nodes that reach each other: the import circles."""
    reach = _reachable(graph)
    groups = {frozenset({a} | {b for b in reach[a] if a in reach.get(b, ())}) for a in graph}
    return [set(g) for g in groups if len(g) > 1]


def _figures(root: Path) -> dict[str, int]:
    """Counts of a source tree's structure: modules, rooms (top-level modules and packages,
    the package's face left out), arrows between rooms (distinct pairs), layers (the longest
    chain of rooms, where no circle ties them) and import circles among modules."""
    modules = _modules(root)
    arrows = _arrows(modules)
    faces = {m for m, p in modules.items() if p.name == "__init__.py"}
    between_modules = {m: {t for t in v if t not in faces} for m, v in arrows.items()}
    rooms: dict[str, set[str]] = defaultdict(set)
    for module, targets in arrows.items():
        if module != "__init__":
            rooms[_room(module)] |= {
                _room(t) for t in targets if _room(t) not in (_room(module), "__init__")
            }
    names = {_room(m) for m in modules} - {"__init__"}
    reach = _reachable(rooms)
    depth: dict[str, int] = {}

    def layer(room: str) -> int:
        if room not in depth:
            depth[room] = 0  # a circle among rooms ends the chain here
            below = [layer(r) for r in rooms.get(room, ()) if room not in reach.get(r, ())]
            depth[room] = 1 + max(below, default=0)
        return depth[room]

    return {
        "modules": len(modules),
        "rooms": len(names),
        "layers": max(layer(r) for r in names),
        "arrows between rooms": sum(len(v) for v in rooms.values()),
        "import circles among modules": len(_strong_groups(between_modules)),
        "import circles among rooms": len(_strong_groups(dict(rooms))),
    }


if __name__ == "__main__":  # python tests/test_architecture.py [SRC/mdn]: the figures
    import sys

    for name, value in _figures(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT).items():
        print(f"{name}: {value}")

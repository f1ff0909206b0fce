"""DESIGN.md's import rules, checked on the source of every module of ``src/crossmedia`` with ``ast``.

* A task (``crossmedia.tasks.X…``) never imports another task (``crossmedia.tasks.Y…``): what two
  tasks share moves down.
* ``crossmedia.core``, ``.nn``, ``.metrics`` and ``.data`` never import a task or the
  ``crossmedia.zoo`` front door. The bare ``crossmedia.tasks`` package (the namespace core walks to
  find what tasks contribute) is no task; it may be imported because it imports nothing of ours.
* ``crossmedia.nn`` imports nothing of ours but ``crossmedia.nn.*``.
* No import cycle between modules of the package.

Every import statement counts: module level and inside functions (a lazy import is still a
dependency), ``import crossmedia.a.b`` (a dependency on the module ``crossmedia.a.b``), ``from
crossmedia.a import b`` (on ``crossmedia.a.b`` when that is a module, else on ``crossmedia.a``) and
relative imports. Errors name the file, line, module and the import as written.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import crossmedia

LOWER_FLOORS = ("crossmedia.core", "crossmedia.nn", "crossmedia.metrics", "crossmedia.data")
TASKS = "crossmedia.tasks"


@dataclass(frozen=True)
class Module:
    source: str
    is_package: bool
    path: str


@dataclass(frozen=True)
class Import:
    module: str
    line: int
    target: str
    text: str


# helpers

def package_modules(root: Path) -> dict[str, Module]:
    """Every module under ``root`` (the crossmedia package folder) by dotted name."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = ("crossmedia", *path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = Module(path.read_text(), is_package, str(path.relative_to(root.parent.parent)))
    return modules


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _task_of(name: str) -> str | None:
    """``caption`` for ``crossmedia.tasks.caption.module``; None outside a task."""
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and _within(name, TASKS) else None


def imports_of(name: str, module: Module, known: set[str]) -> list[Import]:
    """Every import of ours in ``module``, at any depth, as the module it depends on."""
    found = []
    for node in ast.walk(ast.parse(module.source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if module.is_package else name.split(".")[:-1]
                base = ".".join(package[:len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        text = ast.unparse(node)
        found += [Import(name, node.lineno, target, text) for target in dict.fromkeys(targets)
                  if _within(target, "crossmedia")]
    return found


def _rule_broken(imp: Import) -> str | None:
    source_task, target_task = _task_of(imp.module), _task_of(imp.target)
    if source_task and target_task and source_task != target_task:
        return f"task {source_task!r} imports task {target_task!r}; move what they share down (core/nn/metrics/data)"
    floor = next((f for f in LOWER_FLOORS if _within(imp.module, f)), None)
    if floor and (target_task or _within(imp.target, "crossmedia.zoo")):
        return f"{floor} imports {'a task' if target_task else 'the zoo front door'}; it must not import upward"
    if imp.module == TASKS and _within(imp.target, "crossmedia"):
        return "the bare tasks package must import nothing of ours (core imports it to discover tasks)"
    if _within(imp.module, "crossmedia.nn") and not _within(imp.target, "crossmedia.nn"):
        return "crossmedia.nn imports nothing of ours but crossmedia.nn"
    return None


def _cycles(edges: dict[str, list[Import]]) -> list[list[Import]]:
    """One cycle (as the imports that close it) per strongly connected group of modules (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for imp in edges.get(node, []):
            if imp.target not in index:
                visit(imp.target)
                low[node] = min(low[node], low[imp.target])
            elif imp.target in on_stack:
                low[node] = min(low[node], index[imp.target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    cycles = []
    for group in groups:  # breadth-first from the group's first module back to itself, inside the group
        start = min(group)
        paths = {start: []}
        frontier = [start]
        closing = None
        while frontier and closing is None:
            nxt = []
            for node in frontier:
                for imp in edges[node]:
                    if imp.target == start:
                        closing = paths[node] + [imp]
                        break
                    if imp.target in group and imp.target not in paths:
                        paths[imp.target] = paths[node] + [imp]
                        nxt.append(imp.target)
                if closing:
                    break
            frontier = nxt
        cycles.append(closing)
    return cycles


def violations(modules: dict[str, Module]) -> list[str]:
    """Every broken rule in ``modules``, one line each (cycles one line per cycle)."""
    known = set(modules)
    edges = {name: imports_of(name, module, known) for name, module in modules.items()}
    problems = []
    for name, found in edges.items():
        for imp in found:
            rule = _rule_broken(imp)
            if rule:
                problems.append(f"{modules[name].path}:{imp.line}: {name}: `{imp.text}`: {rule}")
    graph = {name: [imp for imp in found if imp.target in known and imp.target != name]
             for name, found in edges.items()}
    for cycle in _cycles(graph):
        hops = " -> ".join(f"{imp.module} ({modules[imp.module].path}:{imp.line} `{imp.text}`)" for imp in cycle)
        problems.append(f"import cycle: {hops} -> {cycle[0].module}")
    return problems


# tests

def test_the_package_keeps_the_import_rules():
    problems = violations(package_modules(Path(crossmedia.__file__).parent))
    assert not problems, f"{len(problems)} import rule(s) broken:\n" + "\n".join(problems)


def test_the_checker_catches_planted_violations():
    """A fake package with one violation of each rule, hidden the ways real ones hide."""
    fake = {
        "crossmedia": "", "crossmedia.tasks": "", "crossmedia.tasks.a": "", "crossmedia.tasks.b": "",
        "crossmedia.core": "", "crossmedia.data": "", "crossmedia.nn": "", "crossmedia.metrics": "",
        "crossmedia.tasks.a.m": "import os\n\ndef f():\n    from ..b import m\n",  # relative and lazy
        "crossmedia.tasks.b.m": "from crossmedia.core import paths\n",  # allowed: a task uses core
        "crossmedia.core.paths": "import pathlib\n",
        "crossmedia.core.x": "from crossmedia import zoo\n",  # core -> front door, through the package
        "crossmedia.data.y": "import crossmedia.tasks.b.m\nimport crossmedia.tasks\n",  # second one allowed
        "crossmedia.nn.z": "from crossmedia.nn import w\nfrom crossmedia.core import paths\n",
        "crossmedia.nn.w": "",
        "crossmedia.zoo": "from crossmedia.core.x import thing\n",  # closes core.x -> zoo -> core.x
        "crossmedia.metrics.c1": "from .c2 import f\n",
        "crossmedia.metrics.c2": "def g():\n    import crossmedia.metrics.c3\n",
        "crossmedia.metrics.c3": "def h():\n    from crossmedia.metrics import c1\n",
    }
    modules = {name: Module(source, name.count(".") < 2 or name in ("crossmedia.tasks.a", "crossmedia.tasks.b"),
                            name.replace(".", "/") + ".py") for name, source in fake.items()}
    assert sorted(violations(modules)) == sorted([
        "crossmedia/tasks/a/m.py:4: crossmedia.tasks.a.m: `from ..b import m`: task 'a' imports task 'b'; "
        "move what they share down (core/nn/metrics/data)",
        "crossmedia/core/x.py:1: crossmedia.core.x: `from crossmedia import zoo`: crossmedia.core imports the "
        "zoo front door; it must not import upward",
        "crossmedia/data/y.py:1: crossmedia.data.y: `import crossmedia.tasks.b.m`: crossmedia.data imports a "
        "task; it must not import upward",
        "crossmedia/nn/z.py:2: crossmedia.nn.z: `from crossmedia.core import paths`: crossmedia.nn imports "
        "nothing of ours but crossmedia.nn",
        "import cycle: crossmedia.core.x (crossmedia/core/x.py:1 `from crossmedia import zoo`) -> crossmedia.zoo "
        "(crossmedia/zoo.py:1 `from crossmedia.core.x import thing`) -> crossmedia.core.x",
        "import cycle: crossmedia.metrics.c1 (crossmedia/metrics/c1.py:1 `from .c2 import f`) -> "
        "crossmedia.metrics.c2 (crossmedia/metrics/c2.py:2 `import crossmedia.metrics.c3`) -> crossmedia.metrics.c3 "
        "(crossmedia/metrics/c3.py:2 `from crossmedia.metrics import c1`) -> crossmedia.metrics.c1",
    ])

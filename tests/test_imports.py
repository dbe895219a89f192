"""No import circles in the project: every import of every module of creator/, trainer/ and
benchmarks/ (at module level or inside a function, TYPE_CHECKING ones too), read with ast, never
executed, makes a graph of the project's modules, which must have no cycle.

`from pkg import name` counts as importing pkg.name when that is a module, else pkg; importing a
submodule does not count as importing its parent package (that is how packages work, not a circle).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("creator", "trainer", "benchmarks")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module
                       for alias in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` names a.b.c; keep the longest prefix that is a project module
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_walker_sees_imports_and_cycles():
    modules = project_modules()
    assert {"trainer", "trainer.cli", "trainer.api", "creator.records"} <= set(modules)
    assert "trainer.api" in imports_of("trainer.cli", modules["trainer.cli"], modules)
    assert "creator.records" in imports_of("trainer.data", modules["trainer.data"], modules)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_circles():
    modules = project_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    found = cycles(graph)  # main before issue 11 had trainer.cli <-> trainer.evaluate, .sweep
    assert not found, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_importing_trainer_is_light():
    """No torch, transformers or accelerate (nor the creator's engine) for `import trainer`."""
    import subprocess
    import sys

    code = ("import sys, trainer; "
            "heavy = [m for m in ('torch', 'transformers', 'accelerate', 'aiohttp', 'numpy') "
            "if m in sys.modules]; "
            "assert not heavy, heavy; "
            "assert callable(trainer.train) and callable(trainer.evaluate) "
            "and callable(trainer.sweep); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                   env={"PYTHONPATH": str(REPO), "PATH": ""})

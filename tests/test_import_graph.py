"""The import graph of src/cervseg has no cycle (module-level imports, read with ast).

Imports inside functions do not count: they run when the function does, after every
module has loaded, and are how the CLI keeps heavy libraries out of `--help`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cervseg

PACKAGE = Path(cervseg.__file__).parent


def _module_name(path: Path) -> str:
    parts = ["cervseg", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Names imported by statements that run when the module is imported (not in a def)."""
    found: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    """cervseg module -> the cervseg modules it imports at module level."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        imported = _module_level_imports(ast.parse(path.read_text(encoding="utf-8")), name,
                                         path.name == "__init__.py")
        graph[name] = {m for m in imported if m in files and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "cervseg.cli.main" in graph  # the whole package was read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = import_graph()
    graph["cervseg.volume"] = graph["cervseg.volume"] | {"cervseg.structures"}  # structures imports volume
    assert find_cycle(graph) in (["cervseg.structures", "cervseg.volume", "cervseg.structures"],
                                 ["cervseg.volume", "cervseg.structures", "cervseg.volume"])


def test_module_level_means_outside_functions() -> None:
    tree = ast.parse("import a\nif True:\n    from b import c\ndef f():\n    import d\nclass K:\n    import e\n")
    assert _module_level_imports(tree, "cervseg.x", False) == {"a", "b", "b.c", "e"}

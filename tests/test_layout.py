"""The house holds its shape: no import cycle between nasprof's modules.

Every ``import`` counts, at module level or inside a function (a function-level import is for a heavy or
optional dependency, never to hide a cycle); only imports under ``if TYPE_CHECKING:`` are left out, since
they never run. A package's ``__init__`` importing its submodules is an edge like any other."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path
from typing import Any

import nasprof

ROOT = Path(nasprof.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = getattr(test, "id", None) or getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for sub in node.body:
                    skip.update(id(x) for x in ast.walk(sub))
    return skip


def import_graph() -> dict[str, set[str]]:
    """module -> the nasprof modules it imports (the longest module prefix of each imported name)."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                if t.startswith("nasprof"):
                    r = resolve(t)
                    if r and r != mod:
                        edges[mod].add(r)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycle() -> None:
    edges = import_graph()
    found = cycles(edges)
    detail = [" -> ".join(c) + "  (edges: " + "; ".join(f"{a}->{b}" for a in c for b in sorted(edges[a])
                                                         if b in c) + ")" for c in found]
    assert not found, "import cycles:\n" + "\n".join(detail)


def test_the_checker_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


#: The 500-line rule's exceptions, each with its reason.
LONG_MODULE_EXCEPTIONS = {
    # Shipped alone to a board and run there with only the standard library and onnxruntime: it cannot
    # import the rest of nasprof, so it holds its own timing loop, request parsing and server in one file.
    "nasprof/devices/ssh/board_runner.py": "a standalone file copied to and run on the board",
}
MAX_MODULE_LINES = 500


def test_no_module_over_500_lines() -> None:
    """One concept per module: a module past 500 lines holds more than one; split it by concept."""
    long = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES and rel not in LONG_MODULE_EXCEPTIONS:
            long[rel] = lines
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
    missing = [p for p in LONG_MODULE_EXCEPTIONS if not (ROOT.parent / p).is_file()]
    assert not missing, f"exceptions naming no module (drop them): {missing}"


#: A command handler parses, calls one library function and renders (STYLE.md, "CLI"): its body (the lines
#: after its signature and docstring) stays within this.
MAX_HANDLER_LINES = 60
#: Handlers still over MAX_HANDLER_LINES while their logic moves into the library: name -> reason. Empty it,
#: do not grow it; the test fails on an entry that no longer needs to be here.
LONG_HANDLER_EXCEPTIONS: dict[str, str] = {}


def _handlers() -> list[tuple[str, Any]]:
    """(command path, its function) for every command registered in the typer app, groups included."""
    from nasprof.cli import app
    from nasprof.commands._validate import iter_commands

    # inspect.unwrap: the function below the shared validation layer's wrapper.
    return [(path, inspect.unwrap(info.callback)) for path, info in iter_commands(app)]


def body_lines(fn: Any) -> int:
    """Lines of ``fn``'s body after its signature and docstring (blank and comment lines inside count)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    if not body:
        return 0
    return (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1


def test_command_handlers_are_thin() -> None:
    """Every command's handler body is at most MAX_HANDLER_LINES: the work is a library function."""
    handlers = _handlers()
    assert len(handlers) > 20, "the walk found too few commands"
    long = {name: n for name, fn in handlers if (n := body_lines(fn)) > MAX_HANDLER_LINES}
    over = {name: n for name, n in long.items() if name not in LONG_HANDLER_EXCEPTIONS}
    assert not over, (f"command handlers over {MAX_HANDLER_LINES} lines: {over}; move the work into a "
                      "library function (or a render helper); a handler parses, calls, renders")
    stale = sorted(set(LONG_HANDLER_EXCEPTIONS) - set(long))
    assert not stale, f"allowed long handlers that are short now (drop them from the list): {stale}"


def test_the_body_counter_skips_signature_and_docstring() -> None:
    def handler(
        a: int,
        b: int,
    ) -> int:
        """Docstring,
        on two lines."""
        c = a + b
        # a comment counts
        return c

    assert body_lines(handler) == 3

"""The house rule: imports only run down the pipeline (space, profiler -> devices -> tables -> predictors ->
search -> commands -> cli). A module that imports from a package above its own fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import nasprof

#: Each package's place in the pipeline; a module may import from its own rank or below.
RANK = {"profiler": 1, "space": 1, "devices": 2, "tables": 3, "predictors": 4, "search": 5, "commands": 6,
        "cli": 7}


def test_no_import_runs_back_up() -> None:
    root = Path(nasprof.__file__).parent
    wrong = []
    for path in root.rglob("*.py"):
        own = path.relative_to(root).parts[0].removesuffix(".py")
        if own not in RANK:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nasprof."):
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("nasprof.")]
            for name in names:
                target = name.split(".")[1]
                if RANK.get(target, 0) > RANK[own]:
                    wrong.append(f"{path.relative_to(root)} imports {name}")
    assert wrong == []


def test_only_the_cli_layer_imports_typer() -> None:
    root = Path(nasprof.__file__).parent
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "import typer" in p.read_text()
                   or "from typer" in p.read_text())
    assert all(u == "cli.py" or u.startswith("commands/") for u in users), users

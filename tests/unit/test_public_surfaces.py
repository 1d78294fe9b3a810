"""Public surfaces: nothing imports a ``_private`` name from another package.

A package is one of the library's capability packages (``tripwire.scan``, ``tripwire.review``, ...) or one
of the top folders (``pipelines``, ``deployments``, ``entrypoints``, ``tests``, ``bench``). Inside a package,
modules may share private helpers; across packages only public names travel.
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import REPO

FOLDERS = ("platform/tripwire", "pipelines", "deployments", "entrypoints", "tests", "bench")
ROOTS = ("tripwire", "pipelines", "deployments", "entrypoints")


def package_of_module(dotted: str) -> str:
    """``tripwire.scan.output`` -> ``tripwire.scan``; ``pipelines.scan`` -> ``pipelines``."""
    parts = dotted.split(".")
    return ".".join(parts[:2]) if parts[0] == "tripwire" and len(parts) > 1 else parts[0]


def package_of_file(path: Path) -> str:
    relative = path.relative_to(REPO)
    if relative.parts[:2] == ("platform", "tripwire"):
        inside = relative.parts[2:]
        return "tripwire" if len(inside) == 1 else f"tripwire.{inside[0]}"
    return relative.parts[0]


def private_imports(source: str, importer: str) -> list[str]:
    """``module._name`` for every private name ``source`` imports from a package other than ``importer``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ROOTS:
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and package_of_module(node.module) != importer:
                    found.append(f"{node.module}.{alias.name}")
    return found


def test_no_module_imports_a_private_name_of_another_package():
    offences = []
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            for name in private_imports(path.read_text(), package_of_file(path)):
                offences.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offences, "\n".join(offences)


def test_the_check_finds_a_private_import_and_allows_one_inside_a_package():
    source = ("from tripwire.evaluation.metrics import _column_nanmean, EvalArrays\n"
              "def f():\n    from deployments.api import _error\n")
    assert private_imports(source, "tripwire.compliance") == ["tripwire.evaluation.metrics._column_nanmean",
                                                              "deployments.api._error"]
    assert private_imports(source, "tripwire.evaluation") == ["deployments.api._error"]
    assert package_of_file(REPO / "platform/tripwire/scan/output.py") == "tripwire.scan"
    assert package_of_file(REPO / "tests/unit/test_model.py") == "tests"

"""Which recal packages may import which: the layering the package is built on, read from the source.

Layers (gate modules) know no networks, data, tasks or analyses; networks know no data,
tasks or analyses; datamodules know no layers, networks or tasks; tasks and analyses know no
datamodules (cli.py and the commands wire data to them); a command (recal/commands/) calls the
library and no other command, except the shared parser. Every ``import x`` and
``from x import y`` counts, at the top of a module or inside a function, relative ones resolved.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator

import pytest

RECAL = Path(__file__).resolve().parents[1] / "recal"
ROOT = RECAL.parent

# importing package → packages it must not import
FORBIDDEN = {
    "recal.layers": ("recal.models", "recal.data", "recal.tasks", "recal.analysis"),
    "recal.models": ("recal.data", "recal.tasks", "recal.analysis"),
    "recal.data": ("recal.layers", "recal.models", "recal.tasks"),
    "recal.tasks": ("recal.data",),
    "recal.analysis": ("recal.data",),
    "recal.deploy": ("recal.data",),
    "recal.quantization": ("recal.data",),
    "recal.commands": ("recal.commands",),
}
# what a command may import from its own package: the shared parser
SHARED_PARSER = "recal.commands.parser"


def module_name(path: Path) -> str:
    """``recal/analysis/runs.py`` → ``recal.analysis.runs``; a package's ``__init__.py`` → the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line, module, statement) of every import in the file ``path`` (see :func:`imports_in`)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> Iterator[tuple[int, str, str]]:
    """(line, module, statement) of every import in ``source``, a module of ``package``.

    ``from a import b`` yields ``a.b`` (``b`` may be a module, or a name defined in ``a``).
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: ``from . import x`` inside recal/analysis
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}", f"from {'.' * node.level}{node.module or ''} import {alias.name}"


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(path: Path) -> list[str]:
    """``file:line: statement — importer must not import package`` for every forbidden import of ``path``."""
    importer = module_name(path)
    rules = [(package, banned) for package, banned in FORBIDDEN.items() if within(importer, package)]
    found = []
    for line, name, statement in imported_names(path):
        for package, banned in rules:
            for forbidden in banned:
                if package == "recal.commands" and within(name, SHARED_PARSER):
                    continue
                if within(name, forbidden):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {statement} — {package} must not import {forbidden}"
                                 + (f" (other than {SHARED_PARSER})" if package == "recal.commands" else ""))
    return found


SOURCES = sorted(RECAL.rglob("*.py"))


def test_every_package_of_the_rules_exists() -> None:
    assert all((RECAL / package.removeprefix("recal.")).is_dir() for package in FORBIDDEN)


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_imports_follow_the_layers(package: str) -> None:
    mine = [path for path in SOURCES if within(module_name(path), package)]
    assert mine, f"no module in {package}"
    found = [line for path in mine for line in violations(path)]
    assert not found, "\n".join(found)


def test_the_reader_sees_imports_inside_functions_and_relative_ones() -> None:
    source = "def f():\n    from recal.models import registry\n\nfrom ..tasks import optim\nimport recal.data.cifar\n"
    names = {name for _, name, _ in imports_in(source, "recal.layers")}
    assert {"recal.models.registry", "recal.tasks.optim", "recal.data.cifar"} <= names

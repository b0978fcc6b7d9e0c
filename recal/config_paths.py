"""Find the config a user means: ``--config srm_r50.yaml`` works from any folder.

A ``--config NAME`` that is not an existing path resolves to ``configs/NAME``
(relative to the repository), else to the unique file called NAME anywhere
under ``configs/``; an ambiguous or unknown name is an error listing candidates.

A fragment — a file under a ``data/`` folder of ``configs/``, or any YAML whose only
top-level keys are ``class_path`` / ``init_args`` — is one component that task configs
include (``data: ../data/dtd.yaml``), not a config to run: naming one as ``--config`` is an
error listing the task configs that include it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import yaml

from recal.errors import InvalidOptionError

FRAGMENT_KEYS = {"class_path", "init_args"}

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"


def resolve_config(name: str, root: Path = CONFIG_ROOT) -> str:
    """The path of task config ``name``: as given if it exists, else looked up under ``root``.

    Raises :class:`InvalidOptionError` for an unknown or ambiguous name, and for a fragment.
    """
    path = find_config(name, root)
    check_not_fragment(name, Path(path), root)
    return path


def find_config(name: str, root: Path = CONFIG_ROOT) -> str:
    """The path of the YAML file ``name``: as given if it exists, else looked up under ``root``."""
    if Path(name).exists():
        return name
    direct = root / name
    if direct.is_file():
        return str(direct)
    matches = sorted(root.rglob(Path(name).name)) if root.is_dir() else []
    matches = [m for m in matches if m.is_file() and str(m).endswith(name)]
    if len(matches) == 1:
        return str(matches[0])
    if len(matches) > 1:
        listed = ", ".join(str(m.relative_to(root)) for m in matches)
        raise InvalidOptionError(f"config {name!r} is ambiguous under {root}: {listed}; give one of these paths")
    available = sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml")) if root.is_dir() else []
    raise InvalidOptionError(f"config {name!r} not found as a path or under {root}; available: {available}")


def is_fragment(path: Path, root: Path = CONFIG_ROOT) -> bool:
    """Whether ``path`` is a component fragment (see the module docstring), not a task config."""
    path = Path(path)
    try:
        if "data" in path.resolve().relative_to(root.resolve()).parent.parts:
            return True
    except ValueError:
        pass  # not under root: only its content tells
    content = _load(path)
    return isinstance(content, dict) and "class_path" in content and set(content) <= FRAGMENT_KEYS


def configs_using(fragment: Path, root: Path = CONFIG_ROOT) -> list[str]:
    """The configs under ``root`` that include ``fragment`` by a relative or absolute path, sorted."""
    target = Path(fragment).resolve()
    users = []
    for config in sorted(root.rglob("*.y*ml")) if root.is_dir() else []:
        if config.resolve() != target and any(
                (config.parent / value).resolve() == target for value in _yaml_paths(_load(config))):
            users.append(str(config.relative_to(root)))
    return users


def check_not_fragment(name: str, path: Path, root: Path = CONFIG_ROOT) -> None:
    """Raise :class:`InvalidOptionError` when the top-level config ``name`` (at ``path``) is a fragment."""
    if not is_fragment(path, root):
        return
    content = _load(path)
    component = content.get("class_path") if isinstance(content, dict) else None
    users = configs_using(path, root)
    what = f"a fragment (class_path: {component})" if component else "a fragment"
    run = f"give a task config that uses it: {', '.join(users)}" if users else f"no config under {root} uses it"
    raise InvalidOptionError(f"config {name!r} ({path}) is {what} that task configs include, not a task config; {run}")


def _load(path: Path) -> Any:
    """The YAML content of ``path``, or None when it cannot be read as YAML (the parser reports that)."""
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None


def _yaml_paths(node: Any) -> Iterator[str]:
    """Every string value in ``node`` that names a YAML file (how configs include fragments)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _yaml_paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from _yaml_paths(value)
    elif isinstance(node, str) and node.endswith((".yaml", ".yml")):
        yield node


def resolve_config_args(argv: list[str]) -> list[str]:
    """Rewrite every ``--config X`` / ``--config=X`` in ``argv`` to a resolved path."""
    out: list[str] = []
    expect_value = False
    for arg in argv:
        if expect_value:
            out.append(resolve_config(arg))
            expect_value = False
        elif arg == "--config":
            out.append(arg)
            expect_value = True
        elif arg.startswith("--config="):
            out.append("--config=" + resolve_config(arg.split("=", 1)[1]))
        else:
            out.append(arg)
    return out

"""Find the config a user means: ``--config srm_r50.yaml`` works from any folder.

A ``--config NAME`` that is not an existing path resolves to ``configs/NAME``
(relative to the repository), else to the unique file called NAME anywhere
under ``configs/``; an ambiguous or unknown name is an error listing candidates.
"""

from __future__ import annotations

from pathlib import Path

from recal.errors import InvalidOptionError

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"


def resolve_config(name: str, root: Path = CONFIG_ROOT) -> str:
    """The path of config ``name``: as given if it exists, else looked up under ``root``."""
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

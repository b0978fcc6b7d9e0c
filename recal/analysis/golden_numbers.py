"""recal's own complexity, pinned: parameters and multiply-adds of every named model and every backbone config.

One row per target, as :func:`recal.analysis.complexity.complexity_row` counts it by
default (the complexity command's numbers): every name of
:func:`recal.models.model_names` at its natural input (224 and 1000 classes for ImageNet
models, 32 and 10 classes for CIFAR models; ImageNet ResNets in the v1 layout), the
CMPE-SE variants with code of their own (``name/variant``), and every config under
``configs/`` whose model builds a backbone, read as ``cli.py`` builds it (its data's class
count, its input size). ``python -m recal.commands.golden_numbers`` writes the file;
``tests/analysis/test_golden_numbers.py`` recomputes it, so a change to any architecture shows up
there first — rewrite the file only together with the reason.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from rich.console import Console
from rich.progress import Progress

from recal.analysis import tables
from recal.analysis.complexity import backbone_row, target_backbone
from recal.config_paths import CONFIG_ROOT, is_fragment
from recal.models import BackboneConfig, model_names

GOLDEN_FILE = Path(__file__).resolve().parents[2] / "tests" / "golden_numbers.csv"
# Pinned beside the model names: CMPE-SE's designs other than its default (double_fc), each
# with layers of its own, on the network of the CMPE-SE paper's table.
VARIANT_TARGETS = ("cmpe_se_preact_resnet164/pair_2x1", "cmpe_se_preact_resnet164/pair_1x1",
                   "cmpe_se_preact_resnet164/folded_3x3")
COLUMNS = ("target", "classes", "input", "layout", "params", "macs")
INTEGER_COLUMNS = ("classes", "input", "params", "macs")


def backbone_configs(root: Path = CONFIG_ROOT) -> list[str]:
    """The task configs under ``root`` whose model has a ``backbone`` section, relative to ``root``, sorted."""
    found = []
    for path in sorted(root.rglob("*.yaml")):
        if is_fragment(path, root):
            continue
        model = (yaml.safe_load(path.read_text()) or {}).get("model")
        init_args = model.get("init_args") if isinstance(model, dict) else None
        if isinstance(init_args, dict) and "backbone" in init_args:
            found.append(path.relative_to(root).as_posix())
    return found


def golden_targets() -> list[str]:
    """Every target the golden file pins: model names, CMPE-SE variants, backbone configs."""
    return [*model_names(), *VARIANT_TARGETS, *backbone_configs()]


def golden_backbone(target: str) -> tuple[BackboneConfig, int, str]:
    """The backbone config, class count and source of a golden target (``name/variant`` sets the variant)."""
    is_config = target.endswith((".yaml", ".yml"))
    name, _, variant = (target, "", "") if is_config else target.partition("/")
    backbone, classes, source = target_backbone(name)
    return (replace(backbone, variant=variant) if variant else backbone), classes, source


def golden_row(target: str) -> dict[str, Any]:
    """The golden file's row of ``target``: its classes, input side, layout, parameters and multiply-adds."""
    backbone, classes, source = golden_backbone(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = backbone_row(backbone, classes, source, full=False)
    return {"target": target, **{column: row[column] for column in COLUMNS[1:]}}


def write_golden(path: Path = GOLDEN_FILE, targets: Optional[Sequence[str]] = None) -> Path:
    """Count every target (default :func:`golden_targets`) and write them to ``path`` (CSV); return it."""
    targets = list(targets) if targets is not None else golden_targets()
    rows = []
    with Progress(console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task("counting", total=len(targets))
        for target in targets:
            progress.update(bar, description=f"counting {target}")
            rows.append(golden_row(target))
            progress.advance(bar)
    return tables.write_csv(rows, Path(path))


def read_golden(path: Path = GOLDEN_FILE) -> dict[str, dict[str, Any]]:
    """The golden file as target → row, its counts as integers."""
    return {row["target"]: {key: int(value) if key in INTEGER_COLUMNS else value for key, value in row.items()}
            for row in tables.read_csv(Path(path))}

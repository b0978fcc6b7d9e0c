"""``python -m recal.complexity``: parameters and multiply-adds of models, beside the papers' figures.

Every number comes from an instantiated model: parameters are
``sum(p.numel())``; multiply-adds are fvcore's count of convolution and linear
layers on one image (the SE / GE / SRM papers' "GFLOPs"; SRM's channel-wise FC
counted as C·d), and fvcore's full count (which adds BatchNorm, pooling, …)
beside it. ImageNet ResNets are counted in the Caffe "v1" layout
(``stride_in_1x1=True``, the papers' convention; parameters do not depend on
it) unless ``--layout as_built``. With no model or config given, the table is
the papers' comparison (ResNet-50/101 with SE, GE and SRM). Writes
``complexity.{csv,md}`` and ``complexity.{png,pdf}`` under ``--out``.

    python -m recal.complexity
    python -m recal.complexity srm_resnet50 sknet50 cifar/srm_resnet56_c10.yaml --input_size 224
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from rich.console import Console
from rich.progress import Progress

from recal.analysis import tables
from recal.command import CommandParser, finish_in_folder, parse_command
from recal.errors import InvalidOptionError


PAPER_MODELS = ("resnet50", "se_resnet50", "ge_resnet50", "srm_resnet50",
                "resnet101", "se_resnet101", "ge_resnet101", "srm_resnet101")
# (model, variant, classes) → (reference parameters, paper GFLOPs). The eight
# ImageNet parameter counts are exact counts of the official code; the rest are as printed.
REFERENCES: dict[tuple[str, Optional[str], int], tuple[str, Optional[float]]] = {
    ("resnet50", None, 1000): ("25,557,032", 3.86),
    ("se_resnet50", None, 1000): ("28,088,024", 3.87),
    ("ge_resnet50", None, 1000): ("31,121,704", 3.87),
    ("srm_resnet50", None, 1000): ("25,617,448", 3.88),
    ("resnet101", None, 1000): ("44,549,160", 7.58),
    ("se_resnet101", None, 1000): ("49,326,872", 7.60),
    ("ge_resnet101", None, 1000): ("53,578,024", 7.60),
    ("srm_resnet101", None, 1000): ("44,679,208", 7.62),
    ("sknet50", None, 1000): ("27.5M (SKNet paper)", 4.47),
    ("resnest50", None, 1000): ("27,483,240 (timm resnest50d)", None),
    ("cmpe_se_preact_resnet164", "double_fc", 10): ("2.12M (CMPE-SE paper)", None),
    ("cmpe_se_preact_resnet164", "pair_2x1", 10): ("1.95M (CMPE-SE paper)", None),
    ("cmpe_se_preact_resnet164", "pair_1x1", 10): ("2.04M (CMPE-SE paper)", None),
}
NOTE = """params: `sum(p.numel())` of the instantiated model. GMACs: fvcore multiply-adds (one per
multiply-add) of convolution and linear layers on one image, plus SRM's channel-wise FC as C·d —
the convention of the SE / GE / SRM papers' "GFLOPs". The papers' convention for element-wise
ops is unknown: attention rows may differ from the printed figure by up to 0.05 G; the gap (Δ)
is reported, not fudged. fvcore all ops: fvcore's default count (adds BatchNorm, adaptive
pooling, upsampling). Lightning's model summary counts 2 FLOPs per multiply-add (not used here).
Layout v1 = Caffe ResNet, stride in the 1×1 (the papers' figures); v1.5 = torchvision's."""


def _imagenet_resnet(name: str) -> bool:
    from recal.models.registry import COMPOUND_MODELS, parse_model_name

    return name not in COMPOUND_MODELS and parse_model_name(name)[0].startswith("resnet")


def _backbone_of(target: str) -> tuple[Any, int, str]:
    """The typed backbone config, class count and source of a model name or config file."""
    from recal.models import BackboneConfig
    from recal.models.registry import CIFAR_ARCHS, COMPOUND_MODELS, parse_model_name

    if target.endswith((".yaml", ".yml")):
        from recal.analysis.runs import build_from_config
        from recal.config_paths import resolve_config

        cli = build_from_config(Path(resolve_config(target)))
        backbone = cli.model.hparams["backbone"]
        backbone = BackboneConfig(**(backbone if isinstance(backbone, dict) else asdict(backbone)))
        return backbone, int(cli.datamodule.num_classes), target
    arch = target if target in COMPOUND_MODELS else parse_model_name(target)[0]
    cifar = arch in CIFAR_ARCHS or arch.startswith("wrn")
    return BackboneConfig(name=target), 10 if cifar else 1000, "model name"


def check_positive(option: str, value: Optional[int]) -> None:
    """Raise :class:`InvalidOptionError` unless ``value`` is None (the default) or a positive integer."""
    # 0 must not fall through to the default size or class count as a falsy value would
    if value is not None and value < 1:
        raise InvalidOptionError(f"{option} {value}: expected a positive integer")


def complexity_row(target: str, input_size: Optional[int] = None, num_classes: Optional[int] = None,
                   layout: str = "v1", full: bool = True) -> dict[str, Any]:
    """Build ``target`` (a model name or a config) and count its parameters and multiply-adds."""
    from recal.analysis.complexity import count_macs, count_parameters
    from recal.models.registry import IMAGENET_ARCHS, COMPOUND_MODELS, parse_model_name

    check_positive("--input_size", input_size)
    check_positive("--num_classes", num_classes)
    backbone, classes, source = _backbone_of(target)
    classes = classes if num_classes is None else num_classes
    arch = backbone.name if backbone.name in COMPOUND_MODELS else parse_model_name(backbone.name)[0]
    imagenet = arch in IMAGENET_ARCHS or backbone.name in COMPOUND_MODELS
    size = input_size if input_size is not None else backbone.input_size or (224 if imagenet else 32)
    changes: dict[str, Any] = {"input_size": size}
    if layout == "v1" and _imagenet_resnet(backbone.name):
        changes["stride_in_1x1"] = True
    backbone = replace(backbone, **changes)
    model = backbone.build(classes)
    params = count_parameters(model)
    macs = count_macs(model, size)
    variant = backbone.variant or ("double_fc" if backbone.name.startswith("cmpe_se_") else None)
    reference, paper = REFERENCES.get((backbone.name, variant, classes), (None, None))
    if size != 224:
        paper = None  # the papers' figures are at 224²
    gmacs = macs / 1e9
    return {
        "model": backbone.name + (f" ({variant})" if variant and backbone.variant else ""),
        "source": source, "classes": classes, "input": size,
        "layout": ("v1" if backbone.stride_in_1x1 else "v1.5") if imagenet and _imagenet_resnet(backbone.name) else "—",
        "params": params, "reference params": reference, "macs": macs, "GMACs": round(gmacs, 3),
        "paper GFLOPs": paper, "Δ GMACs": None if paper is None else round(gmacs - paper, 3),
        "fvcore all ops": count_macs(model, size, conv_linear_only=False) if full else None,
    }


def complexity(targets: Sequence[str], out: Path, input_size: Optional[int] = None, num_classes: Optional[int] = None,
               layout: str = "v1", full: bool = True) -> list[dict[str, Any]]:
    """Count every target, then write ``complexity.{csv,md,png,pdf}`` under ``out``."""
    from recal.analysis import plots

    targets = list(targets) or list(PAPER_MODELS)
    rows = []
    with Progress(console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task("counting", total=len(targets))
        for target in targets:
            progress.update(bar, description=f"counting {target}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows.append(complexity_row(target, input_size, num_classes, layout, full))
            progress.advance(bar)
    tables.write_csv(rows, out / "complexity.csv")
    from_configs = any(r["source"] != "model name" for r in rows)
    tables.write_markdown([_shown(r, from_configs) for r in rows], out / "complexity.md", "Model complexity", NOTE)
    plots.complexity_plot([r["model"] for r in rows], [r["macs"] / 1e9 for r in rows], [r["params"] / 1e6 for r in rows],
                          [r["paper GFLOPs"] for r in rows], "parameters and multiply-adds (fvcore, one per multiply-add)",
                          out / "complexity.png")
    return rows


def _shown(r: dict[str, Any], with_source: bool) -> dict[str, Any]:
    """A complexity row formatted for the Markdown table."""
    return {"model": r["model"], **({"source": r["source"]} if with_source else {}), "layout": r["layout"],
            "input": f"{r['input']}²", "params": tables.fmt_int(r["params"]), "reference params": r["reference params"],
            "GMACs (conv+linear)": _giga(r["macs"]),
            "paper GFLOPs": None if r["paper GFLOPs"] is None else f"{r['paper GFLOPs']:.2f}",
            "Δ": None if r["Δ GMACs"] is None else f"{r['Δ GMACs']:+.3f}",
            "GFLOPs (fvcore, all ops)": None if r["fvcore all ops"] is None else _giga(r["fvcore all ops"])}


def _giga(count: int) -> str:
    # three decimals, as the papers print them; four for CIFAR-sized models, whose counts are ~0.04 G
    return f"{count / 1e9:.3f}" if count >= 1e9 else f"{count / 1e9:.4f}"


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.complexity``."""
    parser = CommandParser(prog="python -m recal.complexity", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", type=str, default=[],
                        help="model names (srm_resnet50) and/or configs (*.yaml); none: the eight paper rows")
    parser.add_argument("--config", type=Optional[str], default=None, help="a training config, as for cli.py")
    parser.add_argument("--input_size", type=Optional[int], default=None,
                        help="image side (default: the config's input_size, else 224 ImageNet / 32 CIFAR)")
    parser.add_argument("--num_classes", type=Optional[int], default=None,
                        help="classes for model names (default 1000 ImageNet / 10 CIFAR); configs use their data's")
    parser.add_argument("--layout", type=Literal["v1", "as_built"], default="v1",
                        help="v1: ImageNet ResNets with the stride in the 1×1 (the papers' FLOPs); as_built: as configured")
    parser.add_argument("--full", type=bool, default=True, help="also count fvcore's default (all ops) total")
    parser.add_argument("--out", type=Optional[str], default=None, help="output folder (default runs/complexity/<timestamp>)")
    return parser


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the command on ``args`` (default ``sys.argv[1:]``); print the output folder last."""
    cfg = parse_command(build_parser(), args)
    targets = [*cfg.targets, *([cfg.config] if cfg.config else [])]
    return finish_in_folder("complexity", cfg.out, lambda folder: complexity(
        targets, folder, cfg.input_size, cfg.num_classes, cfg.layout, cfg.full), "complexity.md")


if __name__ == "__main__":
    sys.exit(main())

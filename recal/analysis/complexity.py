"""Model complexity: parameter counts and multiply-adds (fvcore), and the table beside the papers' figures.

The SE / GE / SRM papers' "GFLOPs" are multiply-adds of the convolution and
linear layers at one 224×224 image (v1 layout). :func:`count_macs` reproduces
that convention with fvcore's ``FlopCountAnalysis`` (one flop per multiply-add)
by giving every other operator fvcore counts by default — BatchNorm, adaptive
average pooling, upsampling, … — a handler that returns 0 (``set_op_handle(name,
None)`` would not remove a default handler). SRM's channel-wise FC is an
element-wise multiply and sum here, which fvcore counts as zero, so it is added
explicitly as C·d multiply-adds per SRM module, as the SRM paper counts it,
however it is implemented. Totals are per image (the input has batch 1).

:func:`complexity` counts models given by name or by config and writes
``complexity.{csv,md,png,pdf}``: parameters are ``sum(p.numel())`` of the instantiated
model; multiply-adds as above, and fvcore's full count (which adds BatchNorm, pooling, …)
beside it. ImageNet ResNets are counted in the Caffe "v1" layout
(``stride_in_1x1=True``, the papers' convention; parameters do not depend on it) unless
``layout="as_built"``. With no target, the table is the papers' comparison
(:data:`recal.analysis.paper_numbers.PAPER_MODELS`).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.progress import Progress
from torch import nn

from recal.analysis import tables
from recal.analysis.paper_numbers import PAPER_FIGURES, PAPER_MODELS
from recal.errors import InvalidOptionError
from recal.layers.kernels import readable_mode
from recal.layers.srm import ChannelwiseFC
from recal.models import BackboneConfig
from recal.models.registry import default_input_size, parse_model_name, takes_stride_in_1x1

with warnings.catch_warnings():  # fvcore's import warns under recent torch
    warnings.simplefilter("ignore")
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape
    # fvcore's table of default handlers: every op it counts unless told otherwise
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS

# fvcore's handlers that count convolution and linear (matrix-product) multiply-adds.
CONV_LINEAR_OPS: tuple[str, ...] = (
    "aten::_convolution",
    "aten::addmm",
    "aten::bmm",
    "aten::einsum",
    "aten::linear",
    "aten::matmul",
    "aten::mm",
)


def _zero_flops(inputs: list[Any], outputs: list[Any]) -> int:
    return 0


def _einsum_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """Multiply-adds of a two-operand einsum: the product of every index's size.

    fvcore's own einsum handler asks NumPy for a flop estimate that counts the
    additions apart, which is off by the number of outputs; a direct
    contraction does exactly one multiply-add per combination of indices (GE's
    global gather, ``nchw,chw->nc``, is N·C·H·W — as the depthwise conv it is).
    """
    equation = inputs[0].toIValue().replace(" ", "")
    operands = equation.split("->")[0].split(",")
    shapes = [get_shape(v) for v in inputs[1].node().inputs()]
    sizes: dict[str, int] = {}
    for letters, shape in zip(operands, shapes):
        sizes.update(zip(letters, shape))
    return int(np.prod(list(sizes.values()), dtype=np.int64))


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model`` (``sum(p.numel())``, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def cfc_macs(model: nn.Module) -> int:
    """Multiply-adds of SRM's channel-wise FC layers for one image: C·d per module."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, ChannelwiseFC))


def count_macs(model: nn.Module, input_size: int = 224, conv_linear_only: bool = True) -> int:
    """Multiply-adds of ``model`` on one 3×``input_size``×``input_size`` image, in eval mode.

    ``conv_linear_only=True`` (the papers' convention) counts convolution and
    linear layers only; ``False`` keeps fvcore's default handlers (which add
    BatchNorm, adaptive average pooling and upsampling). Both add SRM's CFC
    (:func:`cfc_macs`), which fvcore cannot see. ``input_size`` must be a size
    the model accepts (GE's global gather is built for one size). The input
    follows the device and dtype of the model's parameters; every submodule's
    training mode is restored afterwards.
    """
    param = next(model.parameters(), None)
    like = {} if param is None else {"device": param.device, "dtype": param.dtype}
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        x = torch.zeros(1, 3, input_size, input_size, **like)
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        if conv_linear_only:
            analysis.set_op_handle(**{op: _zero_flops for op in _DEFAULT_SUPPORTED_OPS if op not in CONV_LINEAR_OPS})
        analysis.set_op_handle("aten::einsum", _einsum_macs)
        # the readable definitions: fvcore's jit trace must see einsums and convs, not custom autograd nodes
        with warnings.catch_warnings(), readable_mode():  # and no jit warnings on data-dependent branches
            warnings.simplefilter("ignore")
            total = analysis.total()
    finally:
        for module, training in modes.items():
            module.training = training
    return int(total) + cfc_macs(model)


# ------------------------------------------------------------------------ the complexity table

CIFAR_SIZE = 32  # the natural input side of the CIFAR networks (ImageNet's: 224)
NOTE = """params: `sum(p.numel())` of the instantiated model. GMACs: fvcore multiply-adds (one per
multiply-add) of convolution and linear layers on one image, plus SRM's channel-wise FC as C·d —
the convention of the SE / GE / SRM papers' "GFLOPs". The papers' convention for element-wise
ops is unknown: attention rows may differ from the printed figure by up to 0.05 G; the gap (Δ)
is reported, not fudged. fvcore all ops: fvcore's default count (adds BatchNorm, adaptive
pooling, upsampling). Lightning's model summary counts 2 FLOPs per multiply-add (not used here).
Layout v1 = Caffe ResNet, stride in the 1×1 (the papers' figures); v1.5 = torchvision's."""


def _imagenet_resnet(name: str) -> bool:
    """Whether ``name`` is a ResNet of the papers' ImageNet tables (the v1 / v1.5 layouts apply)."""
    base = parse_model_name(name)[0]
    return base.startswith("resnet") and takes_stride_in_1x1(base)


def target_backbone(target: str) -> tuple[BackboneConfig, int, str]:
    """The typed backbone config, class count and source of a model name or config file.

    A model name has the head of its natural input: 10 classes for a CIFAR-sized (32²)
    network, 1000 for an ImageNet-sized (224²) one. A config is read as ``cli.py`` builds
    it, without the weights file a fine-tuning config starts from: counting needs the
    architecture only.
    """
    if target.endswith((".yaml", ".yml")):
        from recal.analysis.runs import build_from_config
        from recal.config_paths import resolve_config

        path = Path(resolve_config(target))
        cli = build_from_config(path, _without_weights(path))
        backbone = cli.model.hparams["backbone"]
        backbone = BackboneConfig(**(backbone if isinstance(backbone, dict) else asdict(backbone)))
        return backbone, int(cli.datamodule.num_classes), target
    return BackboneConfig(name=target), 10 if default_input_size(target) == CIFAR_SIZE else 1000, "model name"


def _without_weights(config: Path) -> list[str]:
    """The override that drops the config's ``model.init_args.weights``, when it names a file."""
    model = (yaml.safe_load(config.read_text()) or {}).get("model")
    init_args = model.get("init_args") if isinstance(model, dict) else None
    return ["--model.init_args.weights", "null"] if isinstance(init_args, dict) and init_args.get("weights") else []


def check_positive(option: str, value: Optional[int]) -> None:
    """Raise :class:`InvalidOptionError` unless ``value`` is None (the default) or a positive integer."""
    # 0 must not fall through to the default size or class count as a falsy value would
    if value is not None and value < 1:
        raise InvalidOptionError(f"{option} {value}: expected a positive integer")


def complexity_row(target: str, input_size: Optional[int] = None, num_classes: Optional[int] = None,
                   layout: str = "v1", full: bool = True) -> dict[str, Any]:
    """Build ``target`` (a model name or a config) and count its parameters and multiply-adds."""
    check_positive("--input_size", input_size)
    check_positive("--num_classes", num_classes)
    backbone, classes, source = target_backbone(target)
    return backbone_row(backbone, classes if num_classes is None else num_classes, source, input_size, layout, full)


def counted_backbone(backbone: BackboneConfig, input_size: Optional[int] = None,
                     layout: str = "v1") -> tuple[BackboneConfig, str]:
    """``backbone`` as it is counted, and its layout's name (``v1``, ``v1.5``, ``—`` for a non-ResNet).

    The input side is ``input_size``, else the backbone's own, else the network's natural one
    (224 ImageNet, 32 CIFAR); in the ``v1`` layout an ImageNet ResNet has its stride in the 1×1.
    """
    size = input_size if input_size is not None else backbone.input_size or default_input_size(backbone.name)
    changes: dict[str, Any] = {"input_size": size}
    resnet = _imagenet_resnet(backbone.name)
    if layout == "v1" and resnet:
        changes["stride_in_1x1"] = True
    backbone = replace(backbone, **changes)
    return backbone, ("v1" if backbone.stride_in_1x1 else "v1.5") if resnet else "—"


def backbone_row(backbone: BackboneConfig, classes: int, source: str, input_size: Optional[int] = None,
                 layout: str = "v1", full: bool = True) -> dict[str, Any]:
    """Build ``backbone`` (:func:`counted_backbone`) with ``classes`` outputs and count it: a complexity table row."""
    backbone, layout_name = counted_backbone(backbone, input_size, layout)
    size = backbone.input_size
    model = backbone.build(classes)
    params = count_parameters(model)
    macs = count_macs(model, size)
    variant = backbone.variant or ("double_fc" if backbone.name.startswith("cmpe_se_") else None)
    figures = PAPER_FIGURES.get((backbone.name, variant, classes))
    paper = figures.gflops if figures and size == 224 else None  # the papers' figures are at 224²
    gmacs = macs / 1e9
    return {
        "model": backbone.name + (f" ({variant})" if variant and backbone.variant else ""),
        "source": source, "classes": classes, "input": size, "layout": layout_name,
        "params": params, "reference params": figures.shown_params if figures else None,
        "macs": macs, "GMACs": round(gmacs, 3),
        "paper GFLOPs": paper, "Δ GMACs": None if paper is None else round(gmacs - paper, 3),
        "fvcore all ops": count_macs(model, size, conv_linear_only=False) if full else None,
    }


def complexity(targets: Sequence[str], out: Path, input_size: Optional[int] = None, num_classes: Optional[int] = None,
               layout: str = "v1", full: bool = True) -> list[dict[str, Any]]:
    """Count every target (none: the papers' models), then write ``complexity.{csv,md,png,pdf}`` under ``out``."""
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

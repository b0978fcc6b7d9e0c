"""Single gate modules and blocks, saved with their outputs: the layer half of the saved fixtures.

Each entry is built through the public factories (``create_recalibration``, ``create_model``),
so the same spec rebuilds it from any later layout of the code. One training-mode forward
moves the BatchNorm statistics away from their initial values before the eval-mode output is
recorded, so that loading them is tested too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from recal.models import create_model, create_recalibration

# name → ("gate", module, channels, options, input shape) | ("block", model, submodule, input shape)
SPECS: dict[str, tuple] = {
    "srm": ("gate", "srm", 64, {}, (2, 64, 8, 8)),
    "srm_max": ("gate", "srm", 64, {"pooling": ["avg", "std", "max"]}, (2, 64, 8, 8)),
    "srm_mlp": ("gate", "srm", 64, {"integration": "mlp"}, (2, 64, 8, 8)),
    "se": ("gate", "se", 64, {}, (2, 64, 8, 8)),
    "eca": ("gate", "eca", 64, {}, (2, 64, 8, 8)),
    "ge_theta": ("gate", "ge", 64, {"spatial_size": 8}, (2, 64, 8, 8)),
    "ge_theta_plus_4": ("gate", "ge", 64, {"variant": "theta_plus", "extent": 4}, (2, 64, 8, 8)),
    "ge_theta_minus_2": ("gate", "ge", 64, {"variant": "theta_minus", "extent": 2}, (2, 64, 8, 8)),
    **{f"cmpe_se_{v}": ("gate", "cmpe_se", 64, {"variant": v, "maps": 2}, (2, 64, 8, 8))
       for v in ("double_fc", "pair_1x1", "pair_2x1", "folded_3x3")},
    "srm_bottleneck": ("block", "srm_resnet50", "layer1.0", (2, 64, 8, 8)),
    "ge_basic": ("block", "ge_cifar_resnet20", "layer3.1", (2, 64, 8, 8)),
    "sk_bottleneck": ("block", "sknet50", "layer1.0", (2, 64, 8, 8)),
    "splat_bottleneck": ("block", "resnest50", "layer1.0", (2, 64, 8, 8)),
    "cmpe_se_preact_bottleneck": ("block", "cmpe_se_preact_resnet164", "layer2.0", (2, 64, 16, 16)),
    "se_wide_basic": ("block", "se_wrn16_4", "layer1.1", (2, 64, 8, 8)),
    "cmpe_se_wide_basic": ("block", "cmpe_se_wrn16_4", "layer1.1", (2, 64, 8, 8)),
    "srm_basic": ("block", "srm_resnet18", "layer1.1", (2, 64, 8, 8)),
}


def build(spec: tuple) -> nn.Module:
    """The module a spec names, freshly initialised (seeded by the caller)."""
    if spec[0] == "gate":
        _, name, channels, options, _ = spec
        return create_recalibration(name, channels, **options)
    _, model, path, _ = spec
    return create_model(model, 10).get_submodule(path)


def run(module: nn.Module, spec: tuple, x: Tensor, shortcut: Tensor | None) -> Tensor:
    """The module's output on ``x`` (gate modules that read the shortcut get it too)."""
    if spec[0] == "gate" and getattr(module, "takes_shortcut", False):
        return module(x, shortcut)
    return module(x)


def inputs(spec: tuple, seed: int) -> tuple[Tensor, Tensor | None]:
    """The input, and for gate modules a shortcut of the same shape."""
    generator = torch.Generator().manual_seed(seed)
    shape = spec[-1]
    x = torch.randn(shape, generator=generator)
    return x, torch.randn(shape, generator=generator) if spec[0] == "gate" else None


def layer_references() -> dict[str, dict[str, Any]]:
    """name → spec, state dict, inputs and eval-mode output, written by today's code."""
    references = {}
    for i, (name, spec) in enumerate(SPECS.items()):
        torch.manual_seed(i)
        module = build(spec)
        x, shortcut = inputs(spec, i)
        with torch.no_grad():
            run(module.train(), spec, x, shortcut)  # BatchNorm statistics move off their init
            for p in module.parameters():  # zero-initialised parameters (SRM's CFC) become informative
                p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(i)))
            output = run(module.eval(), spec, x, shortcut)
        references[name] = {"spec": spec, "state_dict": module.state_dict(), "input": x, "shortcut": shortcut,
                            "output": output}
    return references

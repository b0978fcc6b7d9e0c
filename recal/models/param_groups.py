"""Which parameters get no weight decay.

The official SRM imagenet.py puts exactly SRM's CFC weight and SRM's BatchNorm
weight and bias at weight_decay 0; everything else — SE, GE, CMPE-SE, backbone
BatchNorms and biases — decays. ``scope="norm_and_bias"`` widens the group to
every normalisation parameter and every bias (a common modern recipe), opt-in.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from recal.layers.srm import SRM

NoDecayScope = Literal["srm", "norm_and_bias", "none"]
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def no_weight_decay_parameters(model: nn.Module, scope: NoDecayScope = "srm") -> list[nn.Parameter]:
    """The parameters of ``model`` that get no weight decay under ``scope``.

    ``"srm"`` (default, the official recipe): every SRM module's CFC weight and
    its BatchNorm's weight and bias — nothing else. ``"norm_and_bias"``: those
    plus all normalisation parameters and all biases. ``"none"``: empty.
    """
    chosen: dict[int, nn.Parameter] = {}
    if scope == "none":
        return []
    for module in model.modules():
        if isinstance(module, SRM):
            if module.integration == "cfc":
                chosen[id(module.cfc.weight)] = module.cfc.weight
            if isinstance(module.bn, nn.BatchNorm1d):
                for p in (module.bn.weight, module.bn.bias):
                    chosen[id(p)] = p
        if scope == "norm_and_bias":
            if isinstance(module, _NORMS):
                for p in module.parameters(recurse=False):
                    chosen[id(p)] = p
            bias = getattr(module, "bias", None)
            if isinstance(bias, nn.Parameter):
                chosen[id(bias)] = bias
    return list(chosen.values())

"""Inference fusion: merge BatchNorm into convolutions and SRM's CFC + BN into one affine.

In eval mode every BatchNorm is a fixed per-channel affine, so
- a Conv → BN pair becomes one convolution with a bias
  (``torch.nn.utils.fusion.fuse_conv_bn_eval``), including GE's global
  depthwise gather and its BN and CBAM's spatial 7×7 convolution and its BN (a pair
  the traced graph shows like any other);
- SRM's gate sigmoid(BN(Σ_k w_ck t_ck)) becomes sigmoid(Σ_k w'_ck t_ck + b'_c)
  with w'_ck = s_c w_ck, b'_c = β_c − μ_c s_c, s_c = γ_c / sqrt(σ²_c + ε):
  a :class:`FusedSRM` with the same pooling, ``channel_mask`` and amplitude (an
  identity-initialised SRM's factor 2 is not a parameter: fuse folds it along).
A ghost BatchNorm (``bn_group_size``) is a plain one in eval mode and merges like one.
Pre-activation blocks (BN → ReLU → conv) have no conv before their BN to merge
into; their BNs stay. Fused and unfused models agree to rounding (1e-10
relative in float64, tested).
"""

from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from recal.layers.gate import PooledGate
from recal.layers.ghost_norm import use_plain_batch_norm
from recal.layers.srm import SRM



class FusedSRM(PooledGate):
    """SRM in eval form: sigmoid(Σ_k w_ck t_ck + b_c) with BN merged into w and b."""

    def __init__(self, srm: SRM) -> None:
        super().__init__(srm.channels)
        self.pooling = srm.pooling
        weight, bias = fuse_srm(srm)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.channel_mask.copy_(srm.channel_mask)
        self.amplitude = srm.amplitude

    def excite(self, t: Tensor) -> Tensor:
        return torch.sigmoid((t * self.weight.to(t.dtype)).sum(dim=2) + self.bias.to(t.dtype))


def fuse_srm(srm: SRM) -> tuple[Tensor, Tensor]:
    """(C, d) weight and (C,) bias of SRM's CFC with its eval-mode BN merged in."""
    if srm.integration != "cfc":
        raise ValueError("only SRM's CFC integration fuses into an affine; the MLP integration has a ReLU")
    weight = srm.cfc.weight.detach()
    if not isinstance(srm.bn, nn.BatchNorm1d):
        return weight.clone(), torch.zeros(srm.channels, dtype=weight.dtype, device=weight.device)
    bn = srm.bn
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return weight * scale[:, None], bn.bias.detach() - bn.running_mean * scale


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv, BN) submodule names where the BN reads that conv's output and nothing else does.

    Read off the traced graph, so it holds whatever the forward code is — recal's blocks,
    torchvision's and timm's (``recal.models.recalibrate``) alike — and a BN that reads a
    block's input (pre-activation) is never merged into a convolution it does not follow.
    """
    graph = torch.fx.symbolic_trace(model).graph
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        source = node.args[0] if node.op == "call_module" and node.args else None
        if (type(modules.get(node.target)) is nn.BatchNorm2d and isinstance(source, torch.fx.Node)
                and source.op == "call_module" and type(modules.get(source.target)) is nn.Conv2d
                and len(source.users) == 1 and calls[node.target] == calls[source.target] == 1):
            pairs.append((source.target, node.target))
    return pairs


def _fuse_sequential(module: nn.Sequential) -> None:
    # GE's global gather (conv, BN) is a pair the graph does not show: its forward reads the conv's weights
    children = list(module)
    for i in range(len(children) - 1):
        if type(children[i]) is nn.Conv2d and type(children[i + 1]) is nn.BatchNorm2d:
            module[i] = fuse_conv_bn_eval(children[i], children[i + 1])
            module[i + 1] = nn.Identity()


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


@torch.no_grad()
def fuse(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with BN merged into convs and SRM into affine gates.

    The input model is left untouched. Works for every recal backbone and every network
    :func:`recal.models.recalibrate.recalibrate` changed; what cannot be fused
    (pre-activation BNs, SRM's MLP integration, a BN fused with its activation) is kept as is.
    """
    # in eval mode a ghost BatchNorm is the plain one: made plain, the graph shows it as a module to merge
    fused = use_plain_batch_norm(copy.deepcopy(model)).eval()
    for name, module in list(fused.named_modules()):
        if isinstance(module, SRM) and module.integration == "cfc":
            _replace(fused, name, FusedSRM(module))
    for conv, bn in conv_bn_pairs(fused):
        _replace(fused, conv, fuse_conv_bn_eval(fused.get_submodule(conv), fused.get_submodule(bn)))
        _replace(fused, bn, nn.Identity())
    for module in fused.modules():
        if isinstance(module, nn.Sequential):
            _fuse_sequential(module)
    return fused

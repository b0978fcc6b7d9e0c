"""Inference fusion: merge BatchNorm into convolutions and SRM's CFC + BN into one affine.

In eval mode every BatchNorm is a fixed per-channel affine, so
- a Conv → BN pair becomes one convolution with a bias
  (``torch.nn.utils.fusion.fuse_conv_bn_eval``), including GE's global
  depthwise gather and its BN;
- SRM's gate sigmoid(BN(Σ_k w_ck t_ck)) becomes sigmoid(Σ_k w'_ck t_ck + b'_c)
  with w'_ck = s_c w_ck, b'_c = β_c − μ_c s_c, s_c = γ_c / sqrt(σ²_c + ε):
  a :class:`FusedSRM` with the same pooling and ``channel_mask``.
Pre-activation blocks (BN → ReLU → conv) have no conv before their BN to merge
into; their BNs stay. Fused and unfused models agree to rounding (1e-10
relative in float64, tested).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from recal.layers.gate import PooledGate
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


def _fuse_pairs(module: nn.Module) -> None:
    # each block class names its (conv, BN) attribute pairs where the BN reads the conv's output
    for conv_name, bn_name in getattr(module, "fusible_pairs", ()):
        conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
    if isinstance(module, nn.Sequential):
        # downsample = (conv, BN) / (pool, conv, BN); GE's gather = (conv, BN) [, ReLU, conv, BN …]
        children = list(module)
        for i in range(len(children) - 1):
            if isinstance(children[i], nn.Conv2d) and isinstance(children[i + 1], nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(children[i], children[i + 1])
                module[i + 1] = nn.Identity()


@torch.no_grad()
def fuse(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with BN merged into convs and SRM into affine gates.

    The input model is left untouched. Works for every recal backbone; what
    cannot be fused (pre-activation BNs, SRM's MLP integration) is kept as is.
    """
    fused = copy.deepcopy(model).eval()
    for name, module in list(fused.named_modules()):
        if isinstance(module, SRM) and module.integration == "cfc":
            parent_name, _, attr = name.rpartition(".")
            setattr(fused.get_submodule(parent_name) if parent_name else fused, attr, FusedSRM(module))
    for module in fused.modules():
        _fuse_pairs(module)
    return fused

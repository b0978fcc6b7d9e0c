"""Model complexity: parameter counts and multiply-adds (fvcore).

The SE / GE / SRM papers' "GFLOPs" are multiply-adds of the convolution and
linear layers at one 224×224 image (v1 layout). :func:`count_macs` reproduces
that convention with fvcore's ``FlopCountAnalysis`` (one flop per multiply-add)
by giving every other operator fvcore counts by default — BatchNorm, adaptive
average pooling, upsampling, … — a handler that returns 0 (``set_op_handle(name,
None)`` would not remove a default handler). SRM's channel-wise FC is an
element-wise multiply and sum here, which fvcore counts as zero, so it is added
explicitly as C·d multiply-adds per SRM module, as the SRM paper counts it,
however it is implemented. Totals are per image (the input has batch 1).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from recal.layers.kernels import readable_mode
from recal.layers.srm import ChannelwiseFC

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

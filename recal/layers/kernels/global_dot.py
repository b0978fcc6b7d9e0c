"""GE's global gather: a depthwise convolution whose kernel covers the whole map, as the dot products it is."""

from __future__ import annotations

import torch
from torch import Tensor

from recal.layers.kernels.dispatch import fast_kernel, is_readable
from recal.layers.kernels.fused_paths import runs_fused


class _GlobalDot(torch.autograd.Function):
    """z_nc = Σ_hw x_nchw · w_chw, with a backward whose input gradient is contiguous.

    Autograd's backward of the einsum hands back a (C, N)-permuted input gradient;
    the block's BatchNorm backward then reads it strided, a cost that showed in a
    GE-ResNet-50 train step's profile (benchmarks/RESULTS.md). Here it is
    ``g_nc · w_chw`` written in x's own order.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return torch.einsum("nchw,chw->nc", x, weight)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        # under autocast the forward's einsum ran in the autocast dtype, this backward runs outside it:
        # the gradient comes back in that dtype while x may be float32
        grad = grad.to(x.dtype)
        # contiguous(): inductor would otherwise pick the permuted layout again when compiled
        grad_x = (grad[:, :, None, None] * weight).contiguous() if ctx.needs_input_grad[0] else None
        grad_weight = torch.einsum("nc,nchw->chw", grad, x) if ctx.needs_input_grad[1] else None
        return grad_x, grad_weight


@fast_kernel
def global_depthwise(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A depthwise convolution whose kernel covers the whole map, as the (N, C) dot products
    it is: z_nc = Σ_hw x_nchw · w_chw + b_c (one reduction when compiled; CPU depthwise
    convolutions with 56×56 kernels are slow)."""
    weight = weight[:, 0].to(x.dtype)
    # fvcore counts MACs from the traced einsum (a custom node would hide it); some devices run it plainly
    if is_readable() or not runs_fused("global_dot", x.device.type):
        z = torch.einsum("nchw,chw->nc", x, weight)
    else:
        z = _GlobalDot.apply(x, weight)
    return z if bias is None else z + bias.to(z.dtype)

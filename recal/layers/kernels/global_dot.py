"""GE's global gather: a depthwise convolution whose kernel covers the whole map, as the dot products it is."""

from __future__ import annotations

import torch
from torch import Tensor

from recal.layers.kernels.dispatch import fast_kernel, is_readable
from recal.layers.kernels.fused_paths import runs_fused


def spatial_rows(x: Tensor) -> tuple[Tensor, int]:
    """An (N, C, H, W) map as a view with H×W in one dim, and that dim: (N, C, HW) and 2, or (N, HW, C) and 1.

    A channels_last map (as GPU training runs them) is (N, HW, C) in memory: viewed so, every
    pass below reads and writes it in its own order, and the input gradient comes out channels_last.
    """
    n, c, h, w = x.shape
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(n, h * w, c), 1
    return x.reshape(n, c, h * w), 2


def _weight_rows(weight: Tensor, dim: int) -> Tensor:
    """The (C, H, W) kernel laid out as the map's rows: (C, HW) beside (N, C, HW), (HW, C) beside (N, HW, C)."""
    c = weight.shape[0]
    # contiguous (a small copy): products with it take its layout, which must be the map's
    return weight.reshape(c, -1) if dim == 2 else weight.reshape(c, -1).t().contiguous()


class _GlobalDot(torch.autograd.Function):
    """z_nc = Σ_hw x_nchw · w_chw, each pass in x's own memory order.

    A multiply and a reduction over the map's rows (:func:`spatial_rows`), forward and for the
    kernel's gradient; the input gradient ``g_nc · w_chw`` is written in x's layout. The einsum
    this replaces ran as batched matrix products over a permuted copy of x, and autograd's
    backward of it handed back a (C, N)-permuted input gradient that the block's BatchNorm
    backward then read strided (benchmarks/RESULTS.md has the profile).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:
        rows, dim = spatial_rows(x)
        ctx.save_for_backward(x, weight)
        return torch.linalg.vecdot(rows, _weight_rows(weight, dim).to(rows.dtype), dim=dim)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        # under autocast a float32 map can meet a bf16 gradient (this backward runs outside autocast)
        grad = grad.to(x.dtype)
        rows, dim = spatial_rows(x)
        n, c, h, w = x.shape
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_rows = grad.unsqueeze(dim) * _weight_rows(weight, dim).to(x.dtype)  # a fresh, contiguous tensor
            grad_x = grad_rows.view(n, c, h, w) if dim == 2 else grad_rows.view(n, h, w, c).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            grad_rows = (grad.unsqueeze(dim) * rows).sum(0)
            grad_weight = (grad_rows if dim == 2 else grad_rows.t()).reshape(weight.shape).to(weight.dtype)
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

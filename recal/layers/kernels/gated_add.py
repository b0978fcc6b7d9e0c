"""``relu?(x * scale + identity)`` with a hand-written backward: the end of a gated block in training.

Used by the gates that are not computed from pooled statistics alone (GE,
CMPE-SE, SRM with max pooling); SRM, SE and ECA take the larger node of
:mod:`recal.layers.kernels.pooled_block_end`.

Autograd would run this as four full-size passes forward (multiply, add, ReLU,
and a copy kept for backward) and five backward (ReLU mask, the add's
pass-through, ``g * scale``, ``g * x`` and its reduction). Written by hand, the
forward is one ``addcmul`` and an in-place ReLU, and the backward is one masked
pass for the identity's gradient, one multiply for ``x``'s, and one combined
multiply-reduce for the scale's: about half the time (benchmarks/RESULTS.md).
inductor's CPU kernel for the same backward measured several times slower than
eager, which is why this is not a compiled kernel.

The readable reference is :func:`gated_add_reference`; the tests hold the
two together to 1e-10 in float64 (outputs and every gradient).
"""

from __future__ import annotations

import torch
from torch import Tensor


class _GatedAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, identity: Tensor, relu: bool) -> Tensor:
        y = torch.addcmul(identity, x, scale)
        if relu:
            y.relu_()
        ctx.relu = relu
        ctx.save_for_backward(x, scale, y if relu else None)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, scale, y = ctx.saved_tensors
        if ctx.relu:
            # y = relu(...) > 0 exactly where the pre-activation was > 0: ReLU's own mask
            grad = torch.ops.aten.threshold_backward(grad, y, 0)
        grad_x = grad * scale if ctx.needs_input_grad[0] else None
        grad_scale = None
        if ctx.needs_input_grad[1]:
            spatial = scale.shape[2:] != (1, 1)
            grad_scale = (grad * x).sum_to_size(scale.shape) if spatial else channel_dot(grad, x)
        grad_identity = grad if ctx.needs_input_grad[2] else None
        return grad_x, grad_scale, grad_identity, None


def channel_dot(a: Tensor, b: Tensor) -> Tensor:
    """Σ over H×W of ``a · b`` per (n, c), as (N, C, 1, 1): the gradient of a per-channel scale."""
    if a.is_contiguous() and b.is_contiguous():  # vecdot: no full-size a·b temporary in eager mode
        # vecdot takes one dtype; under autocast a float32 shortcut makes the gradient float32 beside a
        # bf16 branch, where a · b would promote
        dtype = torch.promote_types(a.dtype, b.dtype)
        return torch.linalg.vecdot(a.flatten(2).to(dtype), b.flatten(2).to(dtype))[:, :, None, None]
    return (a * b).sum((2, 3), keepdim=True)


def gated_add(x: Tensor, scale: Tensor, identity: Tensor, relu: bool) -> Tensor:
    """``relu?(x * scale + identity)``; ``scale`` is (N, C, 1, 1) or (N, C, H, W) in x's dtype."""
    return _GatedAdd.apply(x, scale, identity, relu)


def gated_add_reference(x: Tensor, scale: Tensor, identity: Tensor, relu: bool) -> Tensor:
    """The same function, written plainly (autograd derives its backward)."""
    y = x * scale + identity
    return torch.relu(y) if relu else y

"""The end of a pooled-statistics gated block as one autograd node: SRM, SE and ECA in training.

    y = relu?(gate(pool(x)) · x + identity),   x = BN(z) when the block's BatchNorm is absorbed

where ``pool`` takes per-channel means and/or stds and ``gate`` is the module's
small excitation (SRM's CFC + BN + sigmoid, SE's MLP, ECA's conv1d).

Autograd runs this as many full-size passes: BN's statistics and its output,
the statistics of that output, the rescale, the addition and the ReLU forward;
and backward one input gradient through the rescale, one through the statistics,
their sum and BN's backward. Everything here is per-(n, c) affine, so it collapses:

- the per-(n, c) mean and variance of the convolution output ``z`` give BN's
  batch statistics (law of total variance) *and* the statistics of BN's output
  (an affine map of ``z``), so one reduction over ``z`` feeds both;
- the output is ``relu?(z · A + B + identity)`` with per-(n, c) ``A`` and ``B``;
- the input gradient is ``g · A + b · z + a`` with per-(n, c) ``a`` and ``b``
  (∂mean/∂z = 1/HW, ∂var/∂z = 2(z − mean)/(HW − 1)), after two per-(n, c)
  reductions of the masked output gradient ``g``: Σ g·z and Σ g.

All the per-(n, c) algebra in between — BN's batch statistics, the gate, its
parameters' gradients — is built as a tiny autograd graph on (N, C) tensors
that this node keeps and differentiates with :func:`torch.autograd.grad`. The
tests hold the node to the readable composition (BN module, ``style_pool``,
the gate, autograd) to 1e-10 in float64, BN's running statistics included.

Max pooling (its gradient is a scatter to the argmax) keeps the plain path.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from recal.layers.kernels.dispatch import fast_kernel
from recal.layers.kernels.gated_add import channel_dot
from recal.layers.kernels.moments import STD_EPS, mean_var, statistics_dtype

ScaleFn = Callable[[Tensor], Tensor]
"""(N, C, d) statistics → (N, C, 1, 1) scale in x's dtype (the applied gate × channel mask)."""


def closed_form(pooling: Sequence[str]) -> bool:
    """Whether this node can compute the statistics' gradient in closed form."""
    return "max" not in pooling


def absorbable_norm(norm: nn.Module | None, x: Tensor) -> bool:
    """Whether ``norm`` can be absorbed into the node: a plain training-mode BatchNorm2d, float32/64, no hooks.

    SyncBatchNorm (its statistics span processes), a ghost BatchNorm (its statistics
    are per group of images, :mod:`recal.layers.ghost_norm`: the caller applies it and
    the node keeps the rest), eval-mode BN (a fixed affine the caller applies), autocast
    (BN's dtype rules) and hooked modules take the plain path. The exact-type test is
    what refuses subclasses.
    """
    return (type(norm) is nn.BatchNorm2d and norm.training and x.dtype in (torch.float32, torch.float64)
            and not torch.is_autocast_enabled(x.device.type)
            and not (norm._forward_hooks or norm._forward_pre_hooks))


@fast_kernel
def channel_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-(n, c) mean and unbiased variance over H×W (0 for a 1×1 map), in float32/64."""
    n, c, h, w = x.shape
    with torch.autocast(device_type=x.device.type, enabled=False):
        return mean_var(x.reshape(n, c, h * w), statistics_dtype(x))


@fast_kernel
def channel_means(x: Tensor) -> Tensor:
    """Per-(n, c) mean over H×W, in float32/64: all a gate pooling only averages needs without the block's BN."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return x.mean((2, 3), dtype=statistics_dtype(x))


@fast_kernel
def channel_scale_sum(g: Tensor, x: Tensor) -> Tensor:
    """Σ g·x over H×W per (n, c), as (N, C, 1, 1): the gradient of a per-channel scale."""
    return channel_dot(g, x)


@fast_kernel
def channel_sums(g: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """(Σ g·x, Σ g) over H×W per (n, c), as (N, C, 1, 1): the gradients of a per-channel scale and shift."""
    return channel_dot(g, x), g.sum((2, 3), keepdim=True)


@fast_kernel
def scale_shift_add(x: Tensor, scale: Tensor, shift: Tensor | None, identity: Tensor, relu: bool) -> Tensor:
    """``relu?(x · scale + shift + identity)`` with (N, C, 1, 1) scale and shift."""
    y = torch.addcmul(identity, x, scale)
    if shift is not None:
        y.add_(shift)
    return y.relu_() if relu else y


@fast_kernel
def affine_plus_scaled(grad: Tensor, scale: Tensor, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``grad · scale + b · x + a``: compiled, one pass over grad and x; eager, two."""
    return torch.addcmul(a, b, x).addcmul_(grad, scale)


def _norm_affine(norm: nn.BatchNorm2d, mean: Tensor, var: Tensor, hw: int) -> tuple[Tensor, Tensor]:
    """(C,) ``a0``, ``b0`` with BN(z) = a0 · z + b0, from z's per-(n, c) mean and unbiased variance.

    Updates BN's running statistics as ``nn.BatchNorm2d`` does in training.
    """
    batch_mean = mean.mean(0)
    # law of total variance: biased variance over (N, H, W) = E_n[within-sample] + Var_n[sample means]
    batch_var = (var * ((hw - 1) / hw) + (mean - batch_mean).square()).mean(0)
    a0 = torch.rsqrt(batch_var + norm.eps)
    if norm.affine:
        a0 = a0 * norm.weight
    b0 = -batch_mean * a0 + (norm.bias if norm.affine else 0)
    if norm.track_running_stats:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
            count = mean.shape[0] * hw
            norm.running_mean.lerp_(batch_mean.to(norm.running_mean.dtype), momentum)
            norm.running_var.lerp_((batch_var * count / max(count - 1, 1)).to(norm.running_var.dtype), momentum)
    return a0, b0


class _PooledBlockEnd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, identity: Tensor, pooling: tuple[str, ...], scale_fn: ScaleFn, relu: bool,
                norm: nn.BatchNorm2d | None, *params: Tensor) -> Tensor:
        hw = z.shape[2] * z.shape[3]
        # the variance only where BN's statistics or the pooling need it (not for SE and ECA under autocast)
        if norm is not None or "std" in pooling:
            mean0, var0 = channel_moments(z)
        else:
            mean0, var0 = channel_means(z), None
        with torch.enable_grad():
            mean = mean0.detach().requires_grad_()
            var = None if var0 is None else var0.detach().requires_grad_()
            if norm is not None:
                a0, b0 = _norm_affine(norm, mean, var, hw)
                x_mean, x_var = mean * a0 + b0, var * a0.square()
            else:
                x_mean, x_var = mean, var
            columns = {"avg": lambda: x_mean, "std": lambda: torch.sqrt(x_var + STD_EPS)}
            gate = scale_fn(torch.stack([columns[p]() for p in pooling], dim=2))
            scale = gate if norm is None else gate * a0[:, None, None].to(gate.dtype)
            shift = None if norm is None else gate * b0[:, None, None].to(gate.dtype)
        y = scale_shift_add(z, scale.detach(), None if shift is None else shift.detach(), identity, relu)
        ctx.relu, ctx.hw = relu, hw
        ctx.graph = (mean, var, scale, shift, params)
        ctx.save_for_backward(z, y if relu else None)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        z, y = ctx.saved_tensors
        mean, var, scale, shift, params = ctx.graph
        if ctx.relu:
            grad = torch.ops.aten.threshold_backward(grad, y, 0)  # y > 0 exactly where ReLU passed
        if shift is None:  # no absorbed BN: the shift's gradient Σ g is not needed
            outputs, grad_outputs = [scale], [channel_scale_sum(grad, z).to(scale.dtype)]
        else:
            grad_scale, grad_shift = channel_sums(grad, z)
            outputs, grad_outputs = [scale, shift], [grad_scale.to(scale.dtype), grad_shift.to(shift.dtype)]
        moments = [mean] if var is None else [mean, var]
        grads = torch.autograd.grad(outputs, moments + [p for p in params if p.requires_grad], grad_outputs,
                                    allow_unused=True)
        grad_params = iter(grads[len(moments):])
        param_grads = tuple(next(grad_params) if p.requires_grad else None for p in params)
        grad_z = None
        if ctx.needs_input_grad[0]:
            grad_var = None if var is None else grads[1]
            grad_z = _input_gradient(grad, scale.detach(), z, mean.detach(), grads[0], grad_var, ctx.hw)
        grad_identity = grad if ctx.needs_input_grad[1] else None
        return (grad_z, grad_identity, None, None, None, None, *param_grads)


def _input_gradient(grad: Tensor, scale: Tensor, z: Tensor, mean: Tensor, grad_mean: Tensor | None,
                    grad_var: Tensor | None, hw: int) -> Tensor:
    """``grad · scale`` plus the gradient through z's per-(n, c) mean and variance, in z's dtype."""
    # ∂L/∂z through the moments = a + b·z, a = ∂L/∂mean / HW − b·mean, b = 2 ∂L/∂var / (HW − 1)
    a = (grad_mean / hw if grad_mean is not None else torch.zeros_like(mean))[:, :, None, None]
    if grad_var is None or hw == 1:  # a 1×1 map's variance is the constant 0
        return torch.addcmul(a.to(z.dtype), grad, scale)
    b = (2 * grad_var / (hw - 1))[:, :, None, None]
    if z.dtype not in (torch.float32, torch.float64):
        # bf16 / fp16: b·z and a = −b·mean + … cancel when a row's mean is large against its spread;
        # centred on one of the row's own values (exact in z's dtype), b·(z − z₀) is as small as the
        # spread, and the rest, a + b·z₀, is formed per (n, c) in float32: no full-size float32 pass
        shift = z[:, :, :1, :1]
        constant = a + b * (shift.float() - mean[:, :, None, None])
        return centred_affine_plus_scaled(grad, scale, z, shift, constant.to(z.dtype), b.to(z.dtype))
    a = (a - b * mean[:, :, None, None]).contiguous()
    return affine_plus_scaled(grad, scale, z, a.to(z.dtype), b.contiguous().to(z.dtype))


@fast_kernel
def centred_affine_plus_scaled(grad: Tensor, scale: Tensor, x: Tensor, shift: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``grad · scale + b · (x − shift) + a`` in x's own dtype: compiled, one pass; eager, three."""
    return torch.addcmul(a, b, x - shift).addcmul_(grad, scale)


def pooled_block_end(x: Tensor, identity: Tensor, pooling: tuple[str, ...], scale_fn: ScaleFn, relu: bool,
                          params: Sequence[Tensor], norm: nn.BatchNorm2d | None = None) -> Tensor:
    """``relu?(x' · scale_fn(style_pool(x')) + identity)``, x' = norm(x), as one autograd node.

    ``params`` are the tensors ``scale_fn`` uses that may need gradients (the gate
    module's parameters); ``pooling`` must be canonical and :func:`closed_form`;
    ``norm``, when given, must pass :func:`absorbable_norm`.
    """
    if norm is not None and norm.affine:
        params = [*params, *(p for p in (norm.weight, norm.bias) if p.requires_grad)]
    return _PooledBlockEnd.apply(x, identity, pooling, scale_fn, relu, norm, *params)

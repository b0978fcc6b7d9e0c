"""The one protocol every gate module follows.

A gate module computes a gate of shape (N, C) from a feature map — ``gate(x)``,
or ``gate(x, shortcut)`` for modules that also look at the shortcut (CMPE-SE) —
and returns ``x * gate * channel_mask``. ``channel_mask`` is a buffer of ones:
pruning zeroes entries of it, gate statistics observe the gate through
:meth:`ChannelGate.register_gate_hook`, fusion folds the gate's affine part and
domain-specific recalibration swaps whole gate modules. Nothing downstream needs
to know which module it is looking at.

Gather-Excite with a finite extent is the one gate that varies over space; its
gate is (N, C, H, W) and the same rescaling rule applies.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from recal.layers.kernels.dispatch import fast_kernel, is_readable
from recal.layers.kernels.gated_add import gated_residual
from recal.layers.kernels.pooled_block_end import foldable_norm, fusable, pooled_gated_residual
from recal.layers.pooling import style_pool

GateHook = Callable[["ChannelGate", Tensor], None]


class ChannelGate(nn.Module):
    """Base class of gate modules: rescale ``x`` by ``gate(x) * channel_mask``.

    Subclasses implement :meth:`gate`. Set ``takes_shortcut = True`` when the
    gate also reads the block's shortcut branch.
    """

    takes_shortcut: bool = False
    folds_norm: bool = False  # forward(x, norm=bn) folds the BatchNorm into the gate's own passes

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("channel_mask", torch.ones(channels))
        # an OrderedDict, not a dict: RemovableHandle keeps a weak reference to it
        self._gate_hooks: OrderedDict[int, GateHook] = OrderedDict()

    def gate(self, x: Tensor, shortcut: Tensor | None = None) -> Tensor:
        """Return the gate, (N, C) or (N, C, H, W), with values in [0, 1]."""
        raise NotImplementedError

    def register_gate_hook(self, hook: GateHook) -> RemovableHandle:
        """Call ``hook(module, gate)`` with every gate computed in forward (analysis only)."""
        handle = RemovableHandle(self._gate_hooks)
        self._gate_hooks[handle.id] = hook
        return handle

    def observed_gate(self, x: Tensor, shortcut: Tensor | None = None) -> Tensor:
        """The gate of ``x``, after every gate hook has seen it (what forward applies)."""
        return self._observed(self.gate(x, shortcut) if self.takes_shortcut else self.gate(x))

    def _observed(self, g: Tensor) -> Tensor:
        for hook in self._gate_hooks.values():
            hook(self, g)
        return g

    def forward(self, x: Tensor, shortcut: Tensor | None = None, residual: Tensor | None = None,
                relu: bool = False, norm: nn.Module | None = None) -> Tensor:
        """``x * gate * channel_mask``; with ``residual``, ``relu?(that + residual)``.

        Blocks pass their shortcut as ``residual`` so that the rescale, the
        addition and the ReLU run as one fused kernel (see :func:`rescale_add`),
        and may pass the BatchNorm that produces ``x`` as ``norm`` (applied
        first) so that gates which can fold it in do. Passing ``norm`` (even
        ``nn.Identity()``, after :func:`~recal.models.fuse`) also says that ``x`` is the
        block's own intermediate: without gradients, the output is written into it.
        """
        block_owned = norm is not None  # x is the block's own intermediate (BN's output, or the fused conv's)
        if norm is not None:
            x = norm(x)
        g = self.observed_gate(x, shortcut)
        if residual is None:
            return rescale(x, g, self.channel_mask)
        return rescale_add(x, g, self.channel_mask, residual, relu, overwrite=block_owned)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class PooledGate(ChannelGate):
    """A gate computed from pooled per-channel statistics only: ``excite(style_pool(x, pooling))``.

    SRM, SE and ECA. Subclasses set ``self.pooling`` (canonical) and implement
    :meth:`excite`. In training, the end of the block — statistics, gate,
    rescale, residual addition, ReLU — runs as one autograd node with a
    closed-form gradient for the statistics
    (:mod:`recal.layers.kernels.pooled_block_end`).
    """

    pooling: tuple[str, ...]
    folds_norm = True

    def excite(self, t: Tensor) -> Tensor:
        """(N, C, d) statistics → (N, C) gate in [0, 1]."""
        raise NotImplementedError

    def gate(self, x: Tensor, shortcut: Tensor | None = None) -> Tensor:
        return self.excite(style_pool(x, self.pooling))

    def forward(self, x: Tensor, shortcut: Tensor | None = None, residual: Tensor | None = None,
                relu: bool = False, norm: nn.Module | None = None) -> Tensor:
        if residual is None or not torch.is_grad_enabled() or not fusable(self.pooling) or is_readable():
            return super().forward(x, shortcut, residual, relu, norm)
        if norm is not None and not foldable_norm(norm, x):
            x, norm = norm(x), None

        def scale(t: Tensor) -> Tensor:
            return channel_scale(x, self._observed(self.excite(t)), self.channel_mask)
        params = [p for p in self.parameters() if p.requires_grad]
        return pooled_gated_residual(x, residual, self.pooling, scale, relu, params, norm)


def channel_scale(x: Tensor, gate: Tensor, channel_mask: Tensor) -> Tensor:
    """``gate * channel_mask`` in x's dtype, shaped to broadcast over x: (N, C, 1, 1) or (N, C, H, W)."""
    if gate.dim() == 2:
        return (gate * channel_mask).to(x.dtype)[:, :, None, None]
    return (gate * channel_mask[:, None, None]).to(x.dtype)


@fast_kernel
def rescale(x: Tensor, gate: Tensor, channel_mask: Tensor) -> Tensor:
    """``x * gate * channel_mask`` for an (N, C) or (N, C, H, W) gate, in x's dtype."""
    return x * channel_scale(x, gate, channel_mask)


def rescale_add(x: Tensor, gate: Tensor, channel_mask: Tensor, identity: Tensor, relu: bool,
                overwrite: bool = False) -> Tensor:
    """``relu?(x * gate * channel_mask + identity)``: a gated residual block's output.

    With gradients: one addcmul forward and a hand-written backward
    (:mod:`recal.layers.kernels.gated_add`), not a compiled kernel,
    because inductor's CPU backward for it measured 4–7× slower than eager.
    Without (inference): addcmul and an in-place ReLU, no autograd node; into
    ``x``'s own memory when the caller allows it (``overwrite``), which saves
    a fresh full-size output (1.5 vs 2.5 ms at 8×256×56×56 here).
    """
    scale = channel_scale(x, gate, channel_mask)
    if torch.is_grad_enabled() and (x.requires_grad or scale.requires_grad or identity.requires_grad):
        return gated_residual(x, scale, identity, relu)
    in_place = overwrite and identity.dtype == x.dtype and identity.shape == x.shape
    y = torch.addcmul(identity, x, scale, out=x) if in_place else torch.addcmul(identity, x, scale)
    return y.relu_() if relu else y

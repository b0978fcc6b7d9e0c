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

from recal.models.functional.dispatch import fast_kernel

GateHook = Callable[["ChannelGate", Tensor], None]


class ChannelGate(nn.Module):
    """Base class of gate modules: rescale ``x`` by ``gate(x) * channel_mask``.

    Subclasses implement :meth:`gate`. Set ``takes_shortcut = True`` when the
    gate also reads the block's shortcut branch.
    """

    takes_shortcut: bool = False

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
        g = self.gate(x, shortcut) if self.takes_shortcut else self.gate(x)
        for hook in self._gate_hooks.values():
            hook(self, g)
        return g

    def forward(self, x: Tensor, shortcut: Tensor | None = None, residual: Tensor | None = None,
                relu: bool = False) -> Tensor:
        """``x * gate * channel_mask``; with ``residual``, ``relu?(that + residual)``.

        Blocks pass their shortcut as ``residual`` so that the rescale, the
        addition and the ReLU run as one fused kernel (see :func:`rescale_add`).
        """
        g = self.observed_gate(x, shortcut)
        if residual is None:
            return rescale(x, g, self.channel_mask)
        return rescale_add(x, g, self.channel_mask, residual, relu)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


@fast_kernel
def rescale(x: Tensor, gate: Tensor, channel_mask: Tensor) -> Tensor:
    """``x * gate * channel_mask`` for an (N, C) or (N, C, H, W) gate, in x's dtype."""
    if gate.dim() == 2:
        scale = (gate * channel_mask).to(x.dtype)[:, :, None, None]
    else:
        scale = (gate * channel_mask[:, None, None]).to(x.dtype)
    return x * scale


def rescale_add(x: Tensor, gate: Tensor, channel_mask: Tensor, identity: Tensor, relu: bool) -> Tensor:
    """``relu?(x * gate * channel_mask + identity)``: a gated residual block's output.

    Kept eager on purpose: inductor's CPU kernel for this function's backward
    (the masked per-channel reduction for the gate's gradient) measured 4–7×
    slower than eager PyTorch here (benchmarks/RESULTS.md). The gate modules
    still own the addition so that a faster fused kernel can replace this one
    without touching the blocks.
    """
    y = rescale(x, gate, channel_mask) + identity
    return torch.relu(y) if relu else y

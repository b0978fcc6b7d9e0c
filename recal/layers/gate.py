"""The one contract every gate module follows.

A gate module computes a gate of shape (N, C) from a feature map — ``gate(x)``, or
``gate(x, shortcut)`` for modules that also read the block's shortcut (CMPE-SE) —
and its forward returns ``x * gate * channel_mask``, nothing else. ``channel_mask``
is a buffer of ones: pruning zeroes entries of it, gate statistics observe the gate
through :meth:`ChannelGate.register_gate_hook`, fusion turns the gate's affine part
into fixed weights and domain-specific recalibration swaps whole gate modules.
Nothing downstream needs to know which module it is looking at. Where a gate sits
in a residual block — after the block's BatchNorm, before the shortcut is added —
is :func:`recal.layers.block_end.block_end`'s business.

Gather-Excite with a finite extent is the one gate that varies over space
(``spatial = True``); its gate is (N, C, H, W) and the same rescaling rule applies.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from recal.layers.block_context import BlockContext
from recal.layers.kernels.dispatch import fast_kernel
from recal.layers.pooling import style_pool

GateHook = Callable[["ChannelGate", Tensor], None]

torch.fx.wrap("style_pool")  # a leaf of traced graphs: its dtype and 1×1 rules are Python branches


class ChannelGate(nn.Module):
    """Base class of gate modules: ``forward(x)`` is ``x * gate(x) * channel_mask``.

    Subclasses implement :meth:`gate`. A gate that also reads the block's shortcut
    sets ``takes_shortcut = True`` and takes ``forward(x, shortcut)``; one whose gate
    varies over space sets ``spatial = True``.
    """

    takes_shortcut: bool = False
    spatial: bool = False
    user_options: tuple[str, ...] = ()  # the keywords a user sets; the rest come from the block (from_block)
    block_options: tuple[str, ...] = ()

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("channel_mask", torch.ones(channels))
        # an OrderedDict, not a dict: RemovableHandle keeps a weak reference to it
        self._gate_hooks: OrderedDict[int, GateHook] = OrderedDict()

    @classmethod
    def from_block(cls, context: BlockContext, **options: Any) -> "ChannelGate":
        """The module for a block described by ``context``, with the user's ``options``."""
        return cls(context.channels, **options)

    def gate(self, x: Tensor) -> Tensor:
        """Return the gate, (N, C) or (N, C, H, W), with values in [0, 1]."""
        raise NotImplementedError

    def register_gate_hook(self, hook: GateHook) -> RemovableHandle:
        """Call ``hook(module, gate)`` with every gate computed in forward (analysis only)."""
        handle = RemovableHandle(self._gate_hooks)
        self._gate_hooks[handle.id] = hook
        return handle

    def observed_gate(self, x: Tensor, shortcut: Tensor | None = None) -> Tensor:
        """The gate of ``x``, after every gate hook has seen it (what forward applies)."""
        return self.observed(self.gate(x, shortcut) if self.takes_shortcut else self.gate(x))

    def observed(self, gate: Tensor) -> Tensor:
        """``gate``, shown to every gate hook first."""
        for hook in self._gate_hooks.values():
            hook(self, gate)
        return gate

    def scale(self, x: Tensor, gate: Tensor) -> Tensor:
        """``gate * channel_mask`` in x's dtype, shaped to broadcast over x: (N, C, 1, 1) or (N, C, H, W)."""
        if self.spatial:
            return (gate * self.channel_mask[:, None, None]).to(x.dtype)
        return (gate * self.channel_mask).to(x.dtype)[:, :, None, None]

    def forward(self, x: Tensor) -> Tensor:
        """``x * gate(x) * channel_mask``."""
        return rescale(x, self.scale(x, self.observed_gate(x)))

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class PooledGate(ChannelGate):
    """A gate computed from pooled per-channel statistics only: ``excite(style_pool(x, pooling))``.

    SRM, SE and ECA. Subclasses set ``self.pooling`` (canonical) and implement
    :meth:`excite`. In training, :func:`~recal.layers.block_end.block_end` runs the
    end of their block — the block's BatchNorm, statistics, gate, rescale, shortcut
    addition, ReLU — as one autograd node (:mod:`recal.layers.kernels.pooled_block_end`).
    """

    pooling: tuple[str, ...]

    def excite(self, t: Tensor) -> Tensor:
        """(N, C, d) statistics → (N, C) gate in [0, 1]."""
        raise NotImplementedError

    def gate(self, x: Tensor) -> Tensor:
        return self.excite(style_pool(x, self.pooling))


@fast_kernel
def rescale(x: Tensor, scale: Tensor) -> Tensor:
    """``x * scale`` for a broadcastable (N, C, 1, 1) or (N, C, H, W) scale."""
    return x * scale

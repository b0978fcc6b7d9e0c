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
CBAM is the one module whose forward does more (``rescales_only = False``): after
``x * gate * channel_mask`` it multiplies by a spatial gate of its own, (N, 1, H, W),
computed from that product. Its ``gate`` is still the (N, C) channel gate — the one that
hooks see and pruning masks — and ``block_end`` calls such a module whole.

A gate carries an ``amplitude``: 1 for every module as its paper defines it, 2 after
:meth:`ChannelGate.start_as_identity` (``identity_init``), which zeroes the layer that
produces the gate's score, so that the gate ``2 · sigmoid(0)`` is exactly 1 for any
input — inserted into a pretrained network, the gate leaves its outputs unchanged (as
NFNets' SE does); trained, it ranges over [0, 2]. The amplitude is applied in one
place, :meth:`ChannelGate.applied`, that every path goes through (forward,
``block_end``'s fast paths) and that gate hooks see. It is a plain attribute, not a
buffer: state dicts keep their keys, and the network's config (``identity_init``) says
which amplitude a checkpoint's gates were trained with.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from recal.errors import InvalidOptionError
from recal.layers.block_context import BlockContext
from recal.layers.kernels.dispatch import fast_kernel
from recal.layers.pooling import style_pool

GateHook = Callable[["ChannelGate", Tensor], None]

torch.fx.wrap("style_pool")  # a leaf of traced graphs: its dtype and 1×1 rules are Python branches


class ChannelGate(nn.Module):
    """Base class of gate modules: ``forward(x)`` is ``x * applied_gate(x) * channel_mask``.

    Subclasses implement :meth:`gate` and, where they can start as the identity,
    :meth:`score_layer`. A gate that also reads the block's shortcut sets
    ``takes_shortcut = True`` and takes ``forward(x, shortcut)``; one whose gate varies
    over space sets ``spatial = True``; one whose forward does more than the rescale sets
    ``rescales_only = False``.
    """

    takes_shortcut: bool = False
    spatial: bool = False
    # False where forward does more than rescale by the gate (CBAM's spatial half): then
    # block_end cannot fuse the rescale into its own nodes and calls the module
    rescales_only: bool = True
    # a class default, so modules pickled before the attribute existed read as the paper's
    amplitude: float = 1.0
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
        """Return the gate, (N, C) or (N, C, H, W), with values in [0, 1] (before the amplitude)."""
        raise NotImplementedError

    def register_gate_hook(self, hook: GateHook) -> RemovableHandle:
        """Call ``hook(module, gate)`` with every gate computed in forward (analysis only)."""
        handle = RemovableHandle(self._gate_hooks)
        self._gate_hooks[handle.id] = hook
        return handle

    def applied_gate(self, x: Tensor, shortcut: Tensor | None = None) -> Tensor:
        """The gate of ``x`` as applied: :meth:`applied` to :meth:`gate` (what forward multiplies by)."""
        return self.applied(self.gate(x, shortcut) if self.takes_shortcut else self.gate(x))

    def applied(self, gate: Tensor) -> Tensor:
        """The gate as applied: ``gate`` times the amplitude, shown to every gate hook.

        The one place the amplitude enters: the readable forward, ``block_end``'s paths and
        the pooled block-end kernel all call it, so hooks (statistics, pruning) see the gate
        the network multiplies by, in [0, amplitude].
        """
        if self.amplitude != 1.0:  # the paper's gates skip the multiply: their computation stays as it was
            gate = gate * self.amplitude
        for hook in self._gate_hooks.values():
            hook(self, gate)
        return gate

    def score_layer(self) -> nn.Module:
        """The layer whose output, through at most a BatchNorm, the sigmoid turns into the gate."""
        raise InvalidOptionError(f"{type(self).__name__} cannot start as identity (identity_init): it names no "
                                 "layer that produces its score")

    @torch.no_grad()
    def start_as_identity(self) -> "ChannelGate":
        """Make the gate exactly 1 for any input (``identity_init``); return the module.

        Zeroes the weights and biases of :meth:`score_layer` and sets the amplitude to 2:
        the score is then 0 — a fresh BatchNorm after the score layer (zero bias and
        running mean) maps 0 to 0 in eval and in training — and ``2 · sigmoid(0)`` is 1
        exactly in floating point. Raises :class:`~recal.errors.InvalidOptionError` for a
        module with no parameters before its sigmoid.
        """
        for parameter in self.score_layer().parameters():
            parameter.zero_()
        self.amplitude = 2.0
        return self

    def restore_own_init(self) -> None:
        """Redo what the module initialises unlike a backbone, after the backbone's ``init_weights``.

        A backbone draws every convolution and BatchNorm of the network alike, the gates'
        included; a gate started as the identity starts so again (its score layer may be
        one of the convolutions drawn), and CBAM zeroes its spatial BatchNorm's weight again.
        """
        if self.amplitude != 1.0:
            self.start_as_identity()

    def scale(self, x: Tensor, gate: Tensor) -> Tensor:
        """``gate * channel_mask`` in x's dtype, shaped to broadcast over x: (N, C, 1, 1) or (N, C, H, W)."""
        if self.spatial:
            return (gate * self.channel_mask[:, None, None]).to(x.dtype)
        return (gate * self.channel_mask).to(x.dtype)[:, :, None, None]

    def forward(self, x: Tensor) -> Tensor:
        """``x * applied_gate(x) * channel_mask``."""
        return rescale(x, self.scale(x, self.applied_gate(x)))

    def extra_repr(self) -> str:
        # the amplitude only where it is not the paper's
        return f"channels={self.channels}" + (f", amplitude={self.amplitude:g}" if self.amplitude != 1.0 else "")


class PooledGate(ChannelGate):
    """A gate computed from pooled per-channel statistics only: ``excite(style_pool(x, pooling))``.

    SRM, SE, ECA and CBAM's channel half. Subclasses set ``self.pooling`` (canonical) and
    implement :meth:`excite`. In training, :func:`~recal.layers.block_end.block_end` runs
    the end of the block, for those whose pooling has a closed-form gradient (no max) and
    whose forward only rescales — the block's BatchNorm, statistics, gate, rescale, shortcut
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

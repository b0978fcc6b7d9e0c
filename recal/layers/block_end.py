"""The end of a residual block, written once: ``relu?(gate(norm(out)) + shortcut)``.

Every block of recal's networks ends in :func:`block_end`, so a block's forward reads
conv → BN → … → ``block_end(out, norm=bn3, gate=gate, shortcut=identity, relu=True)``
and a reader sees each piece by name. :func:`block_end_reference` is the readable
definition; :func:`block_end` computes the same (tests hold the two together) with
two fast paths behind it:

- in training, SRM, SE and ECA run the whole end — the block's BatchNorm absorbed
  into the statistics, the gate, the rescale, the addition and the ReLU — as one
  autograd node (:mod:`recal.layers.kernels.pooled_block_end`; a ghost BatchNorm,
  :mod:`recal.layers.ghost_norm`, is not absorbed: it runs first, the rest is the node); the other gates run
  rescale + add + ReLU as one (:mod:`recal.layers.kernels.gated_add`) — except CBAM,
  whose forward also applies its spatial gate (``rescales_only = False``): it is called
  as a module, like a wrapper, and only the addition and ReLU stay here; each node runs
  on the device types :mod:`recal.layers.kernels.fused_paths` lists, the plain
  composition elsewhere;
- without gradients, the rescale and addition are one ``addcmul`` written into the
  block's own intermediate when the caller says it may be (``overwrite``), which
  saves a full-size output (timings in benchmarks/RESULTS.md).

Tracers and counters (:func:`recal.layers.kernels.readable_mode`) get the reference, and
so does a gate module that forward hooks watch: they see it called on ``norm(out)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recal.layers.gate import ChannelGate, PooledGate
from recal.layers.kernels.dispatch import is_readable
from recal.layers.kernels.fused_paths import runs_fused
from recal.layers.kernels.gated_add import gated_add, gated_add_reference
from recal.layers.kernels.pooled_block_end import absorbable_norm, closed_form, pooled_block_end


def block_end_reference(out: Tensor, *, norm: nn.Module | None = None, gate: nn.Module | None = None,
                        shortcut: Tensor, relu: bool) -> Tensor:
    """``relu?(gate(norm(out)) + shortcut)``, each step as written."""
    x = out if norm is None else norm(out)
    if gate is not None:
        x = gate(x, shortcut) if getattr(gate, "takes_shortcut", False) else gate(x)
    y = x + shortcut
    return torch.relu(y) if relu else y


def block_end(out: Tensor, *, norm: nn.Module | None = None, gate: nn.Module | None = None, shortcut: Tensor,
              relu: bool, overwrite: bool = False) -> Tensor:
    """``relu?(gate(norm(out)) + shortcut)``: the end of a residual block.

    ``norm`` is the block's last BatchNorm (None where the last layer is a convolution,
    as in pre-activation blocks); ``gate`` a gate module, a module that wraps one (the
    per-domain copies of :mod:`recal.models.domain`, called like the gate they wrap),
    or None for a plain block. ``overwrite`` says that ``out`` is the block's own
    intermediate, so the result may be written into its memory.
    """
    if is_readable() or _hooked(gate):
        return block_end_reference(out, norm=norm, gate=gate, shortcut=shortcut, relu=relu)
    # a gate whose forward is only the rescale: the paths below may compute it themselves
    rescaling = isinstance(gate, ChannelGate) and gate.rescales_only
    if (rescaling and isinstance(gate, PooledGate) and closed_form(gate.pooling) and torch.is_grad_enabled()
            and runs_fused("pooled_block_end", out.device.type)):
        return _pooled(out, norm, gate, shortcut, relu)
    x = out if norm is None else norm(out)
    if rescaling:
        return rescale_add(x, gate.scale(x, gate.applied_gate(x, shortcut)), shortcut, relu,
                           overwrite=overwrite or norm is not None)
    if gate is not None:  # a wrapper or CBAM: it applies the gate, the addition stays here
        x = gate(x, shortcut) if getattr(gate, "takes_shortcut", False) else gate(x)
        overwrite = True
    # the sum may go into x's memory: a BatchNorm's or a gate's fresh output, or the caller's own
    y = x.add_(shortcut) if overwrite or norm is not None else x + shortcut
    return y.relu_() if relu else y


def _hooked(gate: nn.Module | None) -> bool:
    """Whether forward hooks watch the gate module: then it must be called as a module, with its output seen."""
    return gate is not None and bool(gate._forward_hooks or gate._forward_pre_hooks or
                                     nn.modules.module._global_forward_hooks or
                                     nn.modules.module._global_forward_pre_hooks)


def _pooled(out: Tensor, norm: nn.Module | None, gate: PooledGate, shortcut: Tensor, relu: bool) -> Tensor:
    """SRM, SE and ECA in training: the block end as one node, with the BatchNorm absorbed when it can be."""
    if norm is not None and not absorbable_norm(norm, out):
        out, norm = norm(out), None
    x = out

    def scale(t: Tensor) -> Tensor:
        return gate.scale(x, gate.applied(gate.excite(t)))
    parameters = [p for p in gate.parameters() if p.requires_grad]
    return pooled_block_end(out, shortcut, gate.pooling, scale, relu, parameters, norm)


def rescale_add(x: Tensor, scale: Tensor, shortcut: Tensor, relu: bool, overwrite: bool = False) -> Tensor:
    """``relu?(x * scale + shortcut)`` for a broadcastable scale: a gated residual block's output.

    With gradients: one addcmul forward and a hand-written backward
    (:mod:`recal.layers.kernels.gated_add`; the plain composition on device types where that
    node does not run, :mod:`recal.layers.kernels.fused_paths`), not a compiled kernel, because inductor's
    CPU backward for it measured slower than eager (benchmarks/RESULTS.md). Without
    (inference): addcmul and an in-place ReLU, no autograd node; into ``x``'s own memory
    when the caller allows it (``overwrite``).
    """
    if torch.is_grad_enabled() and (x.requires_grad or scale.requires_grad or shortcut.requires_grad):
        fused = runs_fused("gated_add", x.device.type)
        return (gated_add if fused else gated_add_reference)(x, scale, shortcut, relu)
    in_place = overwrite and shortcut.dtype == x.dtype and shortcut.shape == x.shape
    y = torch.addcmul(shortcut, x, scale, out=x) if in_place else torch.addcmul(shortcut, x, scale)
    return y.relu_() if relu else y

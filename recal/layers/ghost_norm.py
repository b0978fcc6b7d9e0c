"""Ghost batch normalisation: BatchNorm batch statistics over groups of ``k`` consecutive images.

The official SRM run trained with ``torch.nn.DataParallel`` on 8 GPUs: each replica's
BatchNorms (the backbone's and SRM's score BN) normalised over its own 32 images, and
GPU 0's running statistics were the ones kept. :class:`GhostBatchNorm2d` and
:class:`GhostBatchNorm1d` compute that on one device (batch 256, ``group_size`` 32):

- training: batch statistics per group of ``group_size`` consecutive images
  (``x.split(group_size)``), each group normalised as a BatchNorm would normalise it alone;
- running statistics: updated from the FIRST group only, as DataParallel kept GPU 0's
  replica (and DDP broadcasts rank 0's buffers); ``num_batches_tracked`` once per call;
- a batch of at most ``group_size`` images, and eval mode: exactly ``nn.BatchNorm``.

Remainder rule: when ``group_size`` does not divide the batch, the last group is the
remainder (N mod k images). DataParallel's scatter cuts a batch of N into G chunks of
ceil(N / G) (``Tensor.chunk``), the last one smaller: the same groups whenever N = G·k,
different only for a batch that does not divide — recal's training loaders drop the last
short batch, so with a batch size that is a multiple of ``group_size`` every training batch
divides. A remainder of one image fails where BatchNorm fails on one value per channel
(SRM's BatchNorm1d over (N, C) scores).

Same parameters and buffers as the BatchNorm they derive from, so state-dict keys and
checkpoints are unchanged; :func:`use_ghost_batch_norm` swaps the class of an existing
network's BatchNorms in place. What the ghost path gives up is speed, not exactness: recal's
fused SRM / SE / ECA block end absorbs a plain BatchNorm2d into its one autograd node
(:func:`recal.layers.kernels.pooled_block_end.absorbable_norm`); a ghost BatchNorm runs on
its own before that node — the gate, rescale, addition and ReLU stay one node.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recal.errors import InvalidOptionError


def check_group_size(option: str, value: object) -> None:
    """Raise a one-line :class:`InvalidOptionError` naming ``option`` unless ``value`` is a positive integer."""
    # a bool is an int to Python: true must not pass as 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError(f"{option}={value!r}: expected a positive integer (images per BatchNorm group)")


def ghost_batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                     num_batches_tracked: Tensor | None, weight: Tensor | None, bias: Tensor | None, *,
                     group_size: int, training: bool, momentum: float | None, eps: float) -> Tensor:
    """``nn.BatchNorm``'s forward with batch statistics per group of ``group_size`` images.

    The running statistics (None: not tracked, as ``track_running_stats=False``) follow
    ``nn.BatchNorm``'s rules, fed by the first group only.
    """
    factor = 0.0 if momentum is None else momentum
    if training and num_batches_tracked is not None:
        num_batches_tracked.add_(1)
        if momentum is None:  # cumulative moving average
            factor = 1.0 / float(num_batches_tracked)
    batch_statistics = training or (running_mean is None and running_var is None)
    if not training or x.shape[0] <= group_size:  # eval mode is plain BatchNorm, whatever its statistics
        return F.batch_norm(x, running_mean, running_var, weight, bias, batch_statistics, factor, eps)
    first, *rest = x.split(group_size)
    return torch.cat([F.batch_norm(first, running_mean, running_var, weight, bias, True, factor, eps),
                      *(F.batch_norm(group, None, None, weight, bias, True, 0.0, eps) for group in rest)])


# torch.fx records the call as one node: tracing BatchNorm's Python would branch on proxies
torch.fx.wrap("ghost_batch_norm")


class GhostBatchNorm(nn.modules.batchnorm._BatchNorm):
    """What the ghost BatchNorms share: the grouped forward. Not a module to build on its own."""

    group_size: int

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, torch.fx.Proxy):  # the dimension check would branch on a traced value
            self._check_input_dim(x)
        tracked = not self.training or self.track_running_stats
        return ghost_batch_norm(
            x, self.running_mean if tracked else None, self.running_var if tracked else None,
            self.num_batches_tracked if self.training and self.track_running_stats else None,
            self.weight, self.bias, group_size=self.group_size, training=self.training, momentum=self.momentum,
            eps=self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, group_size={self.group_size}"


class GhostBatchNorm1d(GhostBatchNorm, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` with batch statistics per group of ``group_size`` samples (SRM's score BN, SK's)."""

    def __init__(self, num_features: int, group_size: int, **options) -> None:
        super().__init__(num_features, **options)
        check_group_size("group_size", group_size)
        self.group_size = group_size


class GhostBatchNorm2d(GhostBatchNorm, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with batch statistics per group of ``group_size`` images."""

    def __init__(self, num_features: int, group_size: int, **options) -> None:
        super().__init__(num_features, **options)
        check_group_size("group_size", group_size)
        self.group_size = group_size


GHOST_OF: dict[type[nn.Module], type[GhostBatchNorm]] = {nn.BatchNorm1d: GhostBatchNorm1d,
                                                         nn.BatchNorm2d: GhostBatchNorm2d}


def use_ghost_batch_norm(model: nn.Module, group_size: int, option: str = "bn_group_size") -> nn.Module:
    """Make every BatchNorm of ``model`` a ghost BatchNorm over ``group_size`` images, in place; returns ``model``.

    The modules keep their parameters, buffers, hooks and names (their class is swapped),
    so state dicts load unchanged. A BatchNorm of another kind (SyncBatchNorm, timm's
    BatchNormAct2d, BatchNorm3d) cannot be split this way: a one-line error names it.
    """
    check_group_size(option, group_size)
    for name, module in model.named_modules():
        if isinstance(module, GhostBatchNorm):
            module.group_size = group_size
        elif type(module) in GHOST_OF:
            module.__class__ = GHOST_OF[type(module)]
            module.group_size = group_size
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise InvalidOptionError(f"{option}={group_size}: cannot group the statistics of {name or 'the model'} "
                                     f"({type(module).__name__}); only nn.BatchNorm1d and nn.BatchNorm2d are grouped")
    return model


def use_plain_batch_norm(model: nn.Module) -> nn.Module:
    """Make every ghost BatchNorm of ``model`` a plain one again, in place (eval mode computes the same)."""
    plain_of = {ghost: plain for plain, ghost in GHOST_OF.items()}
    for module in model.modules():
        if isinstance(module, GhostBatchNorm):
            module.__class__ = plain_of[type(module)]
            del module.group_size
    return model

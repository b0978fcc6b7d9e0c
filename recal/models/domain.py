"""Domain-specific recalibration: one gate set per domain, selected by domain ids.

For multi-domain learning (Office-Home, :mod:`recal.tasks.multi_domain`) every recalibration module of one
shared network keeps D copies of itself — a domain's *gate set* is every parameter
and buffer of the module (weights, BatchNorm statistics, ``channel_mask``) — and a
batch's domain ids pick the copy that handles each sample. The copies start as
deep copies of one initialisation, so all domains give equal gates before training;
the total parameter count is the model's + (D − 1) × the gate-set parameters.

Domain ids reach the modules through the backbone: call :func:`set_domain` (or use
the :func:`domain` context) before the forward. With a mixed-domain batch each copy
runs on its own sub-batch (so a gate's BatchNorm only ever sees its own domain); with
one int for the whole batch nothing data-dependent happens, which keeps that path
``torch.compile`` friendly. The same wrapper gives per-domain classifier heads.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from recal.errors import InvalidOptionError
from recal.layers.gate import ChannelGate
from recal.models.parts import classifier_path

__all__ = [
    "DomainRoute", "DomainSpecific", "domain", "gate_set_parameters", "make_domain_specific",
    "make_domain_specific_heads", "set_domain",
]


@dataclass(frozen=True)
class DomainRoute:
    """How a mixed-domain batch splits: stable order by domain, per-domain counts, inverse order."""

    order: Tensor
    inverse: Tensor
    counts: tuple[int, ...]

    @classmethod
    def from_ids(cls, ids: Tensor, num_domains: int) -> "DomainRoute":
        """Plan the split once per batch (one host sync for the counts), shared by every module."""
        ids = ids.long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_domains):
            raise InvalidOptionError(
                f"domain ids {sorted(set(ids.tolist()))} outside 0..{num_domains - 1} ({num_domains} domains)")
        order = torch.argsort(ids, stable=True)
        counts = tuple(torch.bincount(ids, minlength=num_domains).tolist())
        return cls(order, torch.argsort(order), counts)


class DomainSpecific(nn.Module):
    """D copies of ``module``; each sample goes through its domain's copy.

    Works for gate modules (``takes_shortcut`` mirrors the wrapped gate's, and every
    tensor argument of the gate call — ``x``, and ``shortcut`` for CMPE-SE — is split
    along the batch, so blocks call it exactly like the gate it wraps) and for any
    batch-first module such as a classifier head. A training sub-batch of a single
    sample runs its copy in eval mode: a BatchNorm cannot normalise one sample with
    batch statistics, so that sample uses the copy's running statistics instead.
    """

    def __init__(self, module: nn.Module, num_domains: int) -> None:
        super().__init__()
        if num_domains < 1:
            raise InvalidOptionError(f"num_domains={num_domains}; expected 1 or more")
        self.num_domains = num_domains
        self.takes_shortcut = bool(getattr(module, "takes_shortcut", False))
        self.copies = nn.ModuleList(copy.deepcopy(module) for _ in range(num_domains))
        self.route: int | DomainRoute | None = None

    def set_route(self, route: int | DomainRoute | None) -> None:
        """Select the copies for the next forward: one domain for all, a split plan, or none."""
        if isinstance(route, int) and not 0 <= route < self.num_domains:
            raise InvalidOptionError(f"domain id {route} outside 0..{self.num_domains - 1} ({self.num_domains} domains)")
        self.route = route

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Run the routed copies; every tensor argument (x, shortcut …) is split by domain."""
        route = self.route
        if route is None:
            raise RuntimeError("DomainSpecific module called without domain ids: call set_domain(model, ids) first")
        if isinstance(route, int):
            return self._run(self.copies[route], args, kwargs)

        def split(value: Any) -> Any:
            return value.index_select(0, route.order).split(route.counts) if isinstance(value, Tensor) else None

        parts = [split(a) for a in args]
        kw_parts = {k: split(v) for k, v in kwargs.items()}
        outs = []
        for d, n in enumerate(route.counts):
            if n:
                sub_args = [a if p is None else p[d] for a, p in zip(args, parts)]
                sub_kwargs = {k: v if kw_parts[k] is None else kw_parts[k][d] for k, v in kwargs.items()}
                outs.append(self._run(self.copies[d], sub_args, sub_kwargs))
        return torch.cat(outs).index_select(0, route.inverse)

    def _run(self, module: nn.Module, args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor:
        if not (self.training and args[0].shape[0] == 1):
            return module(*args, **kwargs)
        module.eval()
        try:
            return module(*args, **kwargs)
        finally:
            module.train()

    def extra_repr(self) -> str:
        return f"num_domains={self.num_domains}"


def make_domain_specific(model: nn.Module, num_domains: int) -> nn.Module:
    """Replace every gate module of ``model`` (in place) by a :class:`DomainSpecific` of it.

    Every domain's copy starts from the gate's current initialisation. Raises
    :class:`~recal.errors.InvalidOptionError` when the model has no gate module
    (nothing to make domain-specific) or is domain-specific already. Returns ``model``.
    """
    if any(isinstance(m, DomainSpecific) for m in model.modules()):
        raise InvalidOptionError(f"{type(model).__name__} is domain-specific already")
    targets = [name for name, m in model.named_modules() if isinstance(m, ChannelGate)]
    if not targets:
        raise InvalidOptionError(
            f"{type(model).__name__} has no recalibration (gate) module to make domain-specific; "
            f"use a model with an se_/srm_/ge_/cmpe_se_/eca_/cbam_ prefix")
    for name in targets:
        _wrap(model, name, num_domains)
    return model


def make_domain_specific_heads(model: nn.Module, num_domains: int, head: str | None = None) -> nn.Module:
    """Give ``model`` one classifier head per domain (its submodule ``head``; default its classifier), in place."""
    head = head or classifier_path(model)
    if not isinstance(getattr(model, head, None), nn.Module):
        raise InvalidOptionError(f"{type(model).__name__} has no head submodule {head!r}")
    _wrap(model, head, num_domains)
    return model


def _wrap(model: nn.Module, name: str, num_domains: int) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, DomainSpecific(getattr(parent, attr), num_domains))


def set_domain(model: nn.Module, ids: int | Tensor | None) -> None:
    """Route the next forward of ``model``: ``ids`` is one domain for the batch, (N,) ids, or None.

    A tensor whose ids are all equal still takes the split path (checking would cost a
    host sync per module); pass an int when the whole batch is one domain.
    """
    modules = [m for m in model.modules() if isinstance(m, DomainSpecific)]
    if not modules:
        return
    route: int | DomainRoute | None = ids
    if isinstance(ids, Tensor):
        route = DomainRoute.from_ids(ids.reshape(-1), modules[0].num_domains)
    for m in modules:
        m.set_route(route)


@contextlib.contextmanager
def domain(model: nn.Module, ids: int | Tensor) -> Iterator[nn.Module]:
    """``with domain(model, ids): model(x)`` — route one forward, then forget the ids."""
    set_domain(model, ids)
    try:
        yield model
    finally:
        set_domain(model, None)


def gate_set_parameters(model: nn.Module) -> int:
    """Parameters of one gate set: every gate module counted once (one copy of each wrapped gate)."""
    total = 0
    for m in model.modules():
        if isinstance(m, DomainSpecific):
            if isinstance(m.copies[0], ChannelGate):
                total += sum(p.numel() for p in m.copies[0].parameters())
        elif isinstance(m, ChannelGate) and not _is_copy(model, m):
            total += sum(p.numel() for p in m.parameters())
    return total


def _is_copy(model: nn.Module, gate: nn.Module) -> bool:
    return any(gate is c for m in model.modules() if isinstance(m, DomainSpecific) for c in m.copies)

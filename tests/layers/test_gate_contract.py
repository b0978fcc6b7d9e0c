"""The gate contract as code reads it: what a gate module's forward takes, what it returns.

Also the source rule that keeps the layers and networks traceable: no ``torch.jit.is_tracing``
branch in recal/layers or recal/models (the readable mode replaces them).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

import recal.layers
from recal.layers import ChannelGate
from recal.models import create_recalibration
from recal.models.fuse import FusedSRM

ROOT = Path(__file__).resolve().parents[2]
GATE_CLASSES = sorted({obj for obj in vars(recal.layers).values()
                       if inspect.isclass(obj) and issubclass(obj, ChannelGate)} | {FusedSRM}, key=lambda c: c.__name__)


@pytest.mark.parametrize("gate_class", GATE_CLASSES, ids=lambda c: c.__name__)
def test_gate_forward_takes_the_map_and_only_cmpe_se_also_the_shortcut(gate_class: type) -> None:
    wanted = ["self", "x", "shortcut"] if gate_class.takes_shortcut else ["self", "x"]
    assert list(inspect.signature(gate_class.forward).parameters) == wanted


def test_every_gate_module_returns_the_map_times_its_gate_and_mask(randomize) -> None:
    x, shortcut = torch.randn(2, 32, 6, 6), torch.randn(2, 32, 6, 6)
    options = {"ge": dict(spatial_size=6), "cmpe_se": dict(variant="pair_1x1", maps=2)}
    for name in ("srm", "se", "eca", "ge", "cmpe_se", "cbam"):
        gate = randomize(create_recalibration(name, 32, **options.get(name, {}))).eval()
        gate.channel_mask[::3] = 0
        arguments = (x, shortcut) if gate.takes_shortcut else (x,)
        with torch.no_grad():
            expected = x * (gate.gate(*arguments) * gate.channel_mask)[:, :, None, None]
            if not gate.rescales_only:  # CBAM: then its spatial gate of that product
                expected = expected * gate.spatial_gate(expected)
            torch.testing.assert_close(gate(*arguments), expected)


def _python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in (ROOT / folder).rglob("*.py")]


def test_no_jit_tracing_branch_in_layers_or_models() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in _python_files("recal/layers", "recal/models")
                 if "jit.is_tracing" in p.read_text()]
    assert offenders == []

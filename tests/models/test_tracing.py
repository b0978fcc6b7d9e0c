"""Every network of every gate family traces: torch.fx, torchvision's feature extractor, torch.export.

A traced network runs the layers' readable definitions (recal.layers.kernels.readable_mode),
so it is compared with the eager network — which takes the fast paths — in float64, where
the two agree to rounding. Networks that cannot be traced by nature (per-domain gates that
split a batch by its domain ids, style networks that pad by input size) are listed in
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import pytest
import torch
from torch.fx import symbolic_trace
from torchvision.models.feature_extraction import create_feature_extractor

from recal.models import create_model
from recal.models.cifar import preact_resnet
from recal.models.registry import gate_factory

GATES = ["", "srm_", "se_", "eca_", "ge_", "cmpe_se_", "cbam_"]
# preact_resnet11 (one block per stage; built below) stands for the 164-layer network: the same blocks
ARCHITECTURES = {"resnet18": 64, "resnet50": 64, "cifar_resnet20": 32, "preact_resnet11": 32, "wrn16_2": 32}
NETWORKS = [(gate + arch, size, {}) for arch, size in ARCHITECTURES.items() for gate in GATES]
NETWORKS += [("sknet50", 64, {}), ("resnest50", 64, {}),
             ("ge_cifar_resnet20", 32, {"variant": "theta_plus", "extent": 2}),  # a spatial gate
             ("srm_cifar_resnet20", 32, {"pooling": ["avg", "std", "max"]})]


def build(name: str, size: int, options: dict) -> torch.nn.Module:
    if name.endswith("preact_resnet11"):
        gate = name[: -len("preact_resnet11")].rstrip("_")
        return preact_resnet(11, 10, gate_factory(gate) if gate else None, size)
    return create_model(name, 10, input_size=size, **options)


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, size, options", NETWORKS,
                         ids=[f"{n}-{'-'.join(map(str, o.values()))}" if o else n for n, _, o in NETWORKS])
def test_network_traces_and_its_traces_compute_what_it_computes(name: str, size: int, options: dict,
                                                                 randomize) -> None:
    model = randomize(build(name, size, options), scale=0.2).double().eval()
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        close(symbolic_trace(model)(x), expected)

        stages = [n for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(model, n)]
        features = create_feature_extractor(model, {stage: stage for stage in stages} | {"fc": "logits"})(x)
        watched = {}
        handles = [getattr(model, s).register_forward_hook(lambda m, a, out, s=s: watched.update({s: out.clone()}))
                   for s in stages]
        model(x)
        for handle in handles:
            handle.remove()
        for stage in stages:
            close(features[stage], watched[stage])
        close(features["logits"], expected)

    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        close(exported.module()(x), expected)

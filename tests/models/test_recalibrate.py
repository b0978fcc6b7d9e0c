"""recalibrate(): recal's gate modules inside torchvision networks, their own weights untouched.

For each family: the number of gates the placement rules give, the parameter delta (inserted
gates − swapped-out SE modules), every original state-dict key kept (SE swaps drop only the SE
keys), forward and backward at a small input, one optimiser step that moves the gates, and a
torch.fx trace that computes what the eager network computes. Also the one-line refusals.
"""

from __future__ import annotations

import re

import pytest
import torch
import torchvision
from torchvision.ops import SqueezeExcitation

from recal.errors import InvalidOptionError
from recal.layers import ChannelGate
from recal.models.recalibrate import recalibrate

# torchvision name → gates placed by recalibrate(…, "srm")
COUNTS = {"resnet18": 8, "resnet50": 16, "resnext50_32x4d": 16, "wide_resnet50_2": 16, "regnet_x_400mf": 22,
          "mobilenet_v2": 17, "mobilenet_v3_small": 9, "efficientnet_b0": 16, "regnet_y_400mf": 16,
          "convnext_tiny": 18, "vgg11_bn": 8}
# timm name → gates: its ResNet's blocks, EfficientNet's SE modules, RegNet X's blocks and RegNet Y's SE modules,
# MobileNetV2's blocks
TIMM_COUNTS = {"resnet50": 16, "efficientnet_b0": 16, "regnetx_002": 13, "regnety_002": 13, "mobilenetv2_100": 17}


def _parameters(modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def _squeeze_excitation_classes() -> tuple[type, ...]:
    from timm.layers.squeeze_excite import SEModule
    from timm.models._efficientnet_blocks import SqueezeExcite

    return SqueezeExcitation, SEModule, SqueezeExcite


def _check_recalibrated(model: torch.nn.Module, count: int) -> None:
    """Gates where the rules put them, weights kept, a step that trains the gates, fx equal to eager."""
    keys = set(model.state_dict())
    se = [(n, m) for n, m in model.named_modules() if isinstance(m, _squeeze_excitation_classes())]
    se_keys = {k for k in keys for name, _ in se if k.startswith(name + ".")}
    before = _parameters([model])
    recalibrate(model, "srm")
    gates = [m for m in model.modules() if isinstance(m, ChannelGate)]
    assert len(gates) == count
    assert len(se) in (0, len(gates))  # an SE network gets its SE modules swapped, nothing else
    assert _parameters([model]) == before + _parameters(gates) - _parameters(m for _, m in se)
    assert keys - se_keys <= set(model.state_dict())

    x = torch.randn(2, 3, 64, 64)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    gate_weights = [g.cfc.weight.detach().clone() for g in gates]
    model(x).logsumexp(1).sum().backward()
    optimizer.step()
    assert all(not torch.equal(g.cfc.weight, w) for g, w in zip(gates, gate_weights))

    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", COUNTS)
def test_gates_go_where_the_papers_put_them_and_the_network_keeps_its_weights(name: str) -> None:
    # no stochastic depth: a step must reach every block's gate
    no_drop = {"stochastic_depth_prob": 0.0} if name.startswith(("efficientnet", "convnext")) else {}
    _check_recalibrated(torchvision.models.get_model(name, num_classes=10, **no_drop), COUNTS[name])


@pytest.mark.parametrize("name", TIMM_COUNTS)
def test_gates_go_into_timm_networks_by_the_same_rules(name: str) -> None:
    import timm

    # timm zeroes the last BN scale of ResNet and RegNet blocks: a first step could not reach the gates behind it
    options = {"zero_init_last": False} if name.startswith(("resnet", "regnet")) else {}
    _check_recalibrated(timm.create_model(name, num_classes=10, **options), TIMM_COUNTS[name])


def test_timm_stochastic_depth_and_shortcut_gates() -> None:
    import timm

    # CMPE-SE reads each block's shortcut; stochastic depth drops the gated branch, after the gate
    model = recalibrate(timm.create_model("resnet18", num_classes=10, drop_path_rate=0.2), "cmpe_se")
    assert sum(isinstance(m, ChannelGate) for m in model.modules()) == 8
    block, seen = model.layer4[1], {}
    block.gate.register_forward_hook(lambda m, args, out: seen.update(gate=out))
    block.drop_path.register_forward_hook(lambda m, args, out: seen.update(dropped=args[0]))
    model.train()(torch.randn(2, 3, 64, 64)).sum().backward()
    assert seen["dropped"] is seen["gate"] and block.gate.fc_out.weight.grad is not None
    with pytest.raises(InvalidOptionError, match=r"cmpe_se.*ResNet.*squeeze-excitation modules"):
        recalibrate(timm.create_model("seresnet18"), "cmpe_se")


@pytest.mark.parametrize("recalibration, options", [("se", {}), ("eca", {}), ("ge", {"input_size": 64}),
                                                    ("cmpe_se", {}), ("srm", {"pooling": ["avg", "max"]}),
                                                    ("cbam", {})])
def test_every_gate_goes_into_a_residual_network(recalibration: str, options: dict) -> None:
    model = recalibrate(torchvision.models.resnet18(num_classes=10), recalibration, **options)
    assert sum(isinstance(m, ChannelGate) for m in model.modules()) == 8
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny",
                                  "regnet_x_400mf", "vgg11_bn"])
def test_ge_sized_by_a_dry_forward_goes_into_every_family(name: str) -> None:
    """GE's global gather is sized by one forward at input_size; that forward must leave every layer's output alone."""
    model = recalibrate(torchvision.models.get_model(name, num_classes=10), "ge", input_size=64)
    assert sum(isinstance(m, ChannelGate) for m in model.modules()) == COUNTS[name]
    out = model.train()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for m in model.modules() if isinstance(m, ChannelGate) for p in m.parameters())


def test_refusals_name_the_problem() -> None:
    with pytest.raises(InvalidOptionError, match=r"'sk'.*valid choices.*srm"):
        recalibrate(torchvision.models.resnet18(), "sk")
    with pytest.raises(InvalidOptionError, match=r"AlexNet.*supported families.*MobileNetV2"):
        recalibrate(torchvision.models.alexnet(), "srm")
    with pytest.raises(InvalidOptionError, match="input_size"):
        recalibrate(torchvision.models.resnet18(), "ge")
    with pytest.raises(InvalidOptionError, match=r"'reduction'=0: expected a positive integer"):
        recalibrate(torchvision.models.resnet18(), "se", reduction=0)
    with pytest.raises(InvalidOptionError, match=r"cmpe_se.*shortcut.*MobileNetV2"):
        recalibrate(torchvision.models.mobilenet_v2(), "cmpe_se")


def test_a_config_names_a_torchvision_network_and_its_recalibration() -> None:
    from recal.models import BackboneConfig

    model = BackboneConfig(name="torchvision.mobilenet_v2", recalibration="srm", pooling=["avg", "std"]).build(7)
    assert sum(isinstance(m, ChannelGate) for m in model.modules()) == 17 and model.classifier[-1].out_features == 7
    plain = BackboneConfig(name="torchvision.resnet18").build(7)
    assert not any(isinstance(m, ChannelGate) for m in plain.modules())
    with pytest.raises(InvalidOptionError, match=r"'torchvision.resnet19'.*close matches.*'torchvision.resnet18'"):
        BackboneConfig(name="torchvision.resnet19")
    with pytest.raises(InvalidOptionError, match=r"'torchvision.resnet18' does not take option 'dropout'"):
        BackboneConfig(name="torchvision.resnet18", dropout=0.5).build(7)


def test_quickstart_learns_with_a_recalibrated_torchvision_resnet(tmp_path) -> None:
    from tests.cli_runner import last_value, run_cli, run_dirs

    # seed 0 reached 0.71 after this one epoch (0.86 after three) on the development machine
    assert run_cli(["fit", "--config", "quickstart.yaml", "--model.backbone.name", "torchvision.resnet18",
                    "--model.backbone.recalibration", "srm", "--trainer.max_epochs", "1"], tmp_path) == 0
    (run,) = run_dirs(tmp_path)
    assert last_value(run, "val/acc1") >= 0.5


def test_a_plain_torchvision_state_dict_initialises_the_recalibrated_network(tmp_path) -> None:
    from recal.tasks.weights import load_backbone_weights

    plain = torchvision.models.resnet18()
    torch.save(plain.state_dict(), tmp_path / "resnet18.pth")
    model = recalibrate(torchvision.models.resnet18(num_classes=5), "srm")
    with pytest.raises(Exception, match=r"missing from the file \(recalibration modules; allow_missing_gates"):
        load_backbone_weights(model, tmp_path / "resnet18.pth")
    kept = load_backbone_weights(model, tmp_path / "resnet18.pth", allow_missing_gates=True).missing_gates
    gate_keys = {k for k in model.state_dict() if ".gate." in k}
    assert set(kept) == gate_keys and gate_keys
    assert torch.equal(model.layer1[0].conv1.weight, plain.layer1[0].conv1.weight)
    assert model.fc.out_features == 5  # the head is the new task's


@pytest.mark.parametrize("name", ["torchvision.resnet18", "timm.efficientnet_b0"])
def test_the_task_starts_from_the_plain_networks_weights_file(name: str, tmp_path, caplog) -> None:
    import logging

    from recal.models import BackboneConfig
    from recal.models.libraries import build_library_model
    from recal.models.parts import classifier_path
    from recal.tasks.classification import ClassificationTask

    plain = build_library_model(name, 1000)
    torch.save(plain.state_dict(), tmp_path / "plain.pth")
    se_modules = [n for n, m in plain.named_modules() if isinstance(m, _squeeze_excitation_classes())]
    se_keys = {k for k in plain.state_dict() if any(k.startswith(n + ".") for n in se_modules)}
    backbone = BackboneConfig(name=name, recalibration="srm")
    with pytest.raises(Exception, match=r"missing from the file \(recalibration modules; allow_missing_gates"):
        ClassificationTask(backbone=backbone, num_classes=5, weights=str(tmp_path / "plain.pth"))
    with caplog.at_level(logging.INFO):
        task = ClassificationTask(backbone=backbone, num_classes=5, weights=str(tmp_path / "plain.pth"),
                                  allow_missing_gates=True)
    model, own = task.model, task.model.state_dict()
    gate_count = sum(isinstance(m, ChannelGate) for m in model.modules())
    assert any(re.search(r"recalibration tensor\(s\) not in the file keep their init", r.getMessage())
               for r in caplog.records)
    if se_keys:  # swapped SE modules: their tensors reported, not loaded, nothing else left out
        assert any(f"{len(se_keys)} tensor(s) of the squeeze-excitation modules" in r.getMessage()
                   for r in caplog.records)
    head = classifier_path(model)
    for key, value in plain.state_dict().items():
        if key not in se_keys and not key.startswith(head + "."):
            assert torch.equal(own[key], value), key
    assert gate_count == (16 if se_keys else 8)

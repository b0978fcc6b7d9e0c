"""The no-weight-decay group (recal/models/param_groups.py): exactly SRM's CFC and BN, as the official recipe."""

from __future__ import annotations

import pytest
from torch import nn

from recal.models import create_model, no_weight_decay_parameters
from recal.layers.srm import SRM


def _ids(params) -> set[int]:
    return {id(p) for p in params}


@pytest.mark.parametrize("name, modules", [("srm_resnet50", 16), ("srm_resnet101", 33), ("srm_cifar_resnet20", 9)])
def test_exactly_the_srm_cfc_and_bn_parameters(name: str, modules: int) -> None:
    model = create_model(name)
    group = no_weight_decay_parameters(model)
    srms = [m for m in model.modules() if isinstance(m, SRM)]
    assert len(srms) == modules
    assert len(group) == 3 * modules
    expected = {id(p) for m in srms for p in (m.cfc.weight, m.bn.weight, m.bn.bias)}
    assert _ids(group) == expected
    assert sum(p.numel() for p in group) == sum(4 * m.channels for m in srms)
    # backbone BatchNorms and the classifier bias still decay
    assert id(model.bn1.weight) not in _ids(group) and id(model.fc.bias) not in _ids(group)


@pytest.mark.parametrize("name", ["resnet50", "se_resnet50", "ge_resnet50", "cmpe_se_resnet50", "eca_resnet50",
                                  "cbam_resnet50", "sknet50"])
def test_no_group_for_models_without_srm(name: str) -> None:
    assert no_weight_decay_parameters(create_model(name)) == []


def test_srm_variants_contribute_what_they_have() -> None:
    mlp = create_model("srm_cifar_resnet20", 10, integration="mlp")
    assert len(no_weight_decay_parameters(mlp)) == 2 * 9  # BN only: the MLP decays
    no_bn = create_model("srm_cifar_resnet20", 10, bn=False)
    assert len(no_weight_decay_parameters(no_bn)) == 9  # CFC only


def test_norm_and_bias_scope_widens_the_group() -> None:
    model = create_model("srm_cifar_resnet20", 10)
    narrow = _ids(no_weight_decay_parameters(model))
    wide_params = no_weight_decay_parameters(model, scope="norm_and_bias")
    wide = _ids(wide_params)
    assert len(wide) == len(wide_params)  # no duplicates
    norms = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase) for p in m.parameters(recurse=False)}
    biases = {id(m.bias) for m in model.modules() if isinstance(getattr(m, "bias", None), nn.Parameter)}
    assert wide == narrow | norms | biases
    assert narrow < wide
    # every parameter is either decayed or not: conv and linear weights decay
    assert id(model.conv1.weight) not in wide and id(model.fc.weight) not in wide
    assert id(model.fc.bias) in wide


def test_none_scope_is_empty() -> None:
    assert no_weight_decay_parameters(create_model("srm_cifar_resnet20", 10), scope="none") == []


def test_norm_and_bias_scope_on_a_model_without_srm() -> None:
    model = create_model("se_cifar_resnet20", 10)
    wide = no_weight_decay_parameters(model, scope="norm_and_bias")
    se_biases = [m.fc1.bias for m in model.modules() if hasattr(m, "fc1")]
    assert len(se_biases) == 9 and _ids(se_biases) <= _ids(wide)

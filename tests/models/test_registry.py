"""Names and options (recal/models/registry.py, config.py): every mistake is a ValueError listing what is valid."""

from __future__ import annotations

import pytest
import torch

from recal.errors import InvalidOptionError
from recal.models import BackboneConfig, create_model, create_recalibration, model_names
from recal.layers.ge import GatherExcite
from recal.layers.srm import SRM


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_model_names_cover_the_spec() -> None:
    names = set(model_names())
    for base in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                 "cifar_resnet20", "cifar_resnet32", "cifar_resnet56", "cifar_resnet110", "preact_resnet164", "wrn28_10"):
        assert base in names
        for prefix in ("se_", "srm_", "ge_", "cmpe_se_", "eca_", "cbam_"):
            assert prefix + base in names
    assert {"sknet50", "resnest50", "srm_resnet50", "cmpe_se_preact_resnet164"} <= names


def test_every_listed_name_parses() -> None:
    from recal.models.registry import parse_model_name

    for name in model_names():
        base, prefix = parse_model_name(name)
        assert name in (base, f"{prefix}_{base}")


def test_wrn_names_the_factory_accepts_pass_the_config() -> None:
    from recal.models.config import BackboneConfig

    assert BackboneConfig(name="se_wrn10_1").build(10).fc.in_features == 64
    with pytest.raises(InvalidOptionError, match="'se_wrn10'"):
        BackboneConfig(name="se_wrn10")


def test_every_network_has_timms_classifier_interface() -> None:
    for name in ("srm_resnet50", "cifar_resnet20", "preact_resnet164", "wrn16_4", "sknet50", "resnest50"):
        model = create_model(name, 10)
        assert model.get_classifier() is model.fc and model.fc.out_features == 10
        model.reset_classifier(3)
        assert model.get_classifier() is model.fc and model.fc.out_features == 3


def test_any_wrn_depth_and_width_builds() -> None:
    model = create_model("wrn10_1", 10)
    assert model.fc.in_features == 64 and [len(s) for s in (model.layer1, model.layer2, model.layer3)] == [1, 1, 1]


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(InvalidOptionError) as info:
        create_model("resnet51")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'resnet51'" in message
    assert all(f"'{n}'" in message for n in ("resnet50", "srm_resnet50", "cifar_resnet20", "sknet50", "resnest50"))


@pytest.mark.parametrize("bad", ["foo_resnet50", "srm_resnet", "srm-resnet50", "SRM_resnet50"])
def test_malformed_names_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidOptionError, match=f"'{bad}'"):
        create_model(bad)


def test_unknown_recalibration_lists_valid_ones() -> None:
    with pytest.raises(InvalidOptionError) as info:
        create_model("resnet50", recalibration="cbam2")
    message = str(info.value)
    assert "'cbam2'" in message and all(n in message for n in ("se", "srm", "ge", "cmpe_se", "sk", "splat"))
    with pytest.raises(InvalidOptionError, match=r"'foo'.*cmpe_se.*eca.*ge.*se.*srm"):
        create_recalibration("foo", 16)


def test_recalibration_keyword_equals_the_prefix() -> None:
    a, b = create_model("resnet50", recalibration="srm"), create_model("srm_resnet50")
    assert _count(a) == _count(b) == 25617448
    assert [type(m) for m in a.modules()] == [type(m) for m in b.modules()]
    assert _count(create_model("srm_resnet50", recalibration="srm")) == 25617448


def test_conflicting_prefix_and_recalibration_names_both() -> None:
    with pytest.raises(InvalidOptionError, match=r"'srm'.*'se'"):
        create_model("srm_resnet50", recalibration="se")


@pytest.mark.parametrize(
    "name, options, words",
    [
        ("se_resnet50", dict(pooling=["avg"]), ["'se'", "'pooling'"]),
        ("srm_resnet50", dict(variant="theta"), ["'srm'", "'variant'"]),
        ("ge_resnet50", dict(integration="cfc"), ["'ge'", "'integration'"]),
        ("cmpe_se_resnet50", dict(extent=2), ["'cmpe_se'", "'extent'"]),
        ("eca_resnet50", dict(reduction=8), ["'eca'", "'reduction'"]),
        ("cbam_resnet50", dict(pooling=["avg"]), ["'cbam'", "'pooling'"]),
        ("srm_resnet50", dict(colour="blue"), ["'srm'", "'colour'"]),
        ("resnet50", dict(pooling=["avg"]), ["'resnet50'", "'pooling'"]),
        ("cifar_resnet20", dict(stride_in_1x1=True), ["'cifar_resnet20'", "'stride_in_1x1'"]),
        ("resnet50", dict(dropout=0.1), ["'resnet50'", "'dropout'"]),
    ],
)
def test_option_not_taken_names_module_and_option(name: str, options: dict, words: list[str]) -> None:
    with pytest.raises(InvalidOptionError) as info:
        create_model(name, **options)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "name, options, pattern",
    [
        ("srm_cifar_resnet20", dict(integration="attention"), r"'attention'.*cfc.*mlp"),
        ("srm_cifar_resnet20", dict(pooling=["avg", "foo"]), r"'foo'.*avg.*std.*max"),
        ("ge_cifar_resnet20", dict(variant="theta_max"), r"'theta_max'.*theta_minus"),
        ("ge_cifar_resnet20", dict(extent=16), r"16.*global"),
        ("cmpe_se_cifar_resnet20", dict(variant="pair_3x3"), r"'pair_3x3'.*double_fc"),
    ],
)
def test_bad_option_values_list_the_valid_ones(name: str, options: dict, pattern: str) -> None:
    with pytest.raises(InvalidOptionError, match=pattern):
        create_model(name, 10, **options)


def test_none_options_mean_the_module_default() -> None:
    model = create_model("srm_cifar_resnet20", 10, pooling=None, integration=None, bn=None, reduction=None)
    assert all(m.pooling == ("avg", "std") and m.integration == "cfc" for m in model.modules() if isinstance(m, SRM))


def test_options_reach_the_modules() -> None:
    model = create_model("ge_resnet50", variant="theta_plus", extent=4)
    ges = [m for m in model.modules() if isinstance(m, GatherExcite)]
    assert len(ges) == 16 and all(m.variant == "theta_plus" and m.extent == 4 for m in ges)


def test_create_recalibration_rejects_unknown_options() -> None:
    with pytest.raises(InvalidOptionError, match=r"'srm'.*'colour'"):
        create_recalibration("srm", 16, colour="blue")


# ------------------------------------------------------------------ BackboneConfig


def test_backbone_config_builds_with_pooling() -> None:
    config = BackboneConfig(name="srm_cifar_resnet20", pooling=["max", "avg"])
    model = config.build(10)
    srms = [m for m in model.modules() if isinstance(m, SRM)]
    assert len(srms) == 9 and all(m.pooling == ("avg", "max") for m in srms)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_backbone_config_defaults_to_srm_resnet50() -> None:
    assert _count(BackboneConfig().build(1000)) == 25617448


def test_backbone_config_carries_backbone_options() -> None:
    model = BackboneConfig(name="ge_resnet50", input_size=160, stride_in_1x1=True).build(10)
    assert model.layer1[0].gate.gather[0].kernel_size == (40, 40)
    assert model.layer2[0].conv1.stride == (2, 2)


def test_backbone_config_option_not_taken_is_an_error() -> None:
    with pytest.raises(InvalidOptionError, match=r"'se'.*'pooling'"):
        BackboneConfig(name="se_resnet50", pooling=["avg"]).build(10)


def test_config_parser_rejects_unknown_pooling_when_parsing() -> None:
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--backbone", type=BackboneConfig)
    good = parser.parse_args(["--backbone.name", "srm_resnet50", "--backbone.pooling", "[avg, max]"])
    assert good.backbone.pooling == ["avg", "max"]
    with pytest.raises(jsonargparse.ArgumentError) as info:
        parser.parse_args(["--backbone.pooling", "[avg, foo]"])
    assert "foo" in str(info.value) and "std" in str(info.value)
    with pytest.raises(jsonargparse.ArgumentError):
        parser.parse_args(["--backbone.name", "resnet51"])

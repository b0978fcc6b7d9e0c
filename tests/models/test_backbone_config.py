"""Numeric backbone options out of range: an InvalidOptionError naming ``model.backbone.<option>``."""

from __future__ import annotations

from pathlib import Path

import pytest

from recal.cli import main
from recal.errors import InvalidOptionError
from recal.models import BackboneConfig
from recal.models.config import reduced_channels
from recal.models.registry import create_model
from tests.error_lines import the_error_line


@pytest.mark.parametrize("field, value, expected", [
    ("reduction", 0, "model.backbone.reduction=0: expected a positive integer"),
    ("reduction", -4, "model.backbone.reduction=-4: expected a positive integer"),
    ("input_size", 0, "model.backbone.input_size=0: expected a positive integer"),
    ("dropout", 1.5, r"model.backbone.dropout=1.5: expected a probability in \[0, 1\)"),
    ("dropout", -0.1, r"model.backbone.dropout=-0.1: expected a probability"),
    ("extent", 3, r"model.backbone.extent=3: expected one of \['global', 2, 4, 8\]"),
])
def test_values_wrong_for_any_network_fail_when_the_config_is_made(field: str, value, expected: str) -> None:
    with pytest.raises(InvalidOptionError, match=expected):
        BackboneConfig(name="se_cifar_resnet20", **{field: value})


@pytest.mark.parametrize("name, options", [
    ("se_cifar_resnet20", {}),
    ("srm_cifar_resnet20", {"integration": "mlp"}),
    ("ge_cifar_resnet20", {"variant": "theta_plus"}),
    ("cmpe_se_cifar_resnet20", {}),
])
def test_a_reduction_larger_than_the_smallest_gated_block_fails_at_build(name: str, options: dict) -> None:
    config = BackboneConfig(name=name, reduction=17, **options)
    with pytest.raises(InvalidOptionError, match=rf"model.backbone.reduction=17 is larger than 16, the channels of "
                                                 rf"the smallest gated block of {name}.*expected 1 to 16"):
        config.build(10)


def test_reduction_up_to_the_channels_and_the_defaults_still_build() -> None:
    model = BackboneConfig(name="se_cifar_resnet20", reduction=16).build(10)
    assert min(reduced_channels(model)) == 16 and model.layer1[0].gate.fc1.out_features == 1
    assert BackboneConfig(name="se_cifar_resnet20").build(10).layer1[0].gate.fc1.out_features == 1
    # SRM's default channel-wise FC does not divide by reduction: nothing to check
    assert reduced_channels(BackboneConfig(name="srm_cifar_resnet20", reduction=4096).build(10)) == []


def test_create_model_rejects_reduction_zero_instead_of_dividing_by_it() -> None:
    with pytest.raises(InvalidOptionError, match="option 'reduction'=0: expected a positive integer"):
        create_model("se_cifar_resnet20", 10, reduction=0)


@pytest.mark.parametrize("args, names", [
    (["--model.init_args.backbone.reduction", "0"], ["model.backbone.reduction=0", "positive integer"]),
    (["--model.init_args.backbone.reduction", "4096", "--model.init_args.backbone.integration", "mlp"],
     ["model.backbone.reduction=4096", "16", "srm_cifar_resnet20"]),
    (["--model.init_args.backbone.name", "se_cifar_resnet20", "--model.init_args.backbone.reduction", "4096"],
     ["model.backbone.reduction=4096", "16", "se_cifar_resnet20"]),
])
def test_cli_reports_a_bad_reduction_in_one_line(args: list[str], names: list[str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    rc = main(["fit", "--config", "quickstart.yaml", *args, "--trainer.fast_dev_run", "true",
               "--trainer.default_root_dir", str(tmp_path)])
    assert rc == 2
    the_error_line(capsys.readouterr().err, *names)

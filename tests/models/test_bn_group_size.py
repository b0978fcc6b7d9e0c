"""The backbone option ``bn_group_size``: every BatchNorm of the network — backbone and gates — made a ghost one.

Parameters, state-dict keys and eval-mode outputs stay those of the plain network (a plain
network's checkpoint loads); a batch within one group trains as the plain network; the
network still traces (torch.fx, torchvision's feature extractor, torch.export) and fuses.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.fx import symbolic_trace
from torchvision.models.feature_extraction import create_feature_extractor

from recal.cli import main
from recal.errors import InvalidOptionError
from recal.layers.ghost_norm import GhostBatchNorm, use_ghost_batch_norm
from recal.models import BackboneConfig, create_model
from recal.models.fuse import fuse
from tests.error_lines import the_error_line
from tests.numerics import relative_difference

NORMS = nn.modules.batchnorm._BatchNorm
# each with BatchNorms of its own beyond the backbone's: SRM's score BN, GE's gather BN, CBAM's spatial BN,
# CMPE-SE's, SK's and split attention's; a torchvision network recalibrated
NETWORKS = [("srm_cifar_resnet20", {}), ("ge_cifar_resnet20", {"variant": "theta_plus", "extent": 2}),
            ("cbam_cifar_resnet20", {}), ("cmpe_se_cifar_resnet20", {}), ("sknet50", {}), ("resnest50", {}),
            ("torchvision.resnet18", {"recalibration": "srm"})]


@pytest.mark.parametrize("name, options", NETWORKS, ids=[name for name, _ in NETWORKS])
def test_every_batchnorm_is_grouped_and_a_plain_checkpoint_loads(name: str, options: dict) -> None:
    plain = create_model(name, 10, **options)
    ghost = create_model(name, 10, bn_group_size=4, **options)
    norms = [m for m in ghost.modules() if isinstance(m, NORMS)]
    assert len(norms) == sum(isinstance(m, NORMS) for m in plain.modules()) > 0
    assert all(isinstance(m, GhostBatchNorm) and m.group_size == 4 for m in norms)
    assert sum(p.numel() for p in ghost.parameters()) == sum(p.numel() for p in plain.parameters())
    assert list(ghost.state_dict()) == list(plain.state_dict())
    ghost.load_state_dict(plain.state_dict())


def test_eval_mode_computes_what_the_plain_network_computes(randomize) -> None:
    plain = randomize(create_model("srm_cifar_resnet20", 10), scale=0.2).double().eval()
    ghost = use_ghost_batch_norm(copy.deepcopy(plain), 2)
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(ghost(x), plain(x))


def test_a_batch_within_one_group_trains_as_the_plain_network(randomize) -> None:
    def step(model: nn.Module) -> list[torch.Tensor]:
        model(x).logsumexp(1).sum().backward()
        return [p.grad for p in model.parameters()] + list(model.buffers())

    plain = randomize(create_model("srm_cifar_resnet20", 10), scale=0.2).double().train()
    ghost = create_model("srm_cifar_resnet20", 10, bn_group_size=64).double().train()
    ghost.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    # not bit for bit: the plain network's fused SRM block end absorbs its BatchNorm, the ghost one cannot
    assert max(relative_difference(g, p) for g, p in zip(step(ghost), step(plain))) < 1e-10


@pytest.mark.parametrize("name", ["srm_cifar_resnet20", "cbam_cifar_resnet20"])
def test_the_grouped_network_traces_in_both_modes(name: str, randomize) -> None:
    model = randomize(create_model(name, 10, bn_group_size=2), scale=0.2).double()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)  # two groups
    with torch.no_grad():
        for training in (True, False):
            model.train(training)
            expected = model(x)
            torch.testing.assert_close(symbolic_trace(model)(x), expected, rtol=1e-9, atol=1e-9)
            features = create_feature_extractor(model, {"layer1": "layer1", "fc": "logits"})(x)
            torch.testing.assert_close(features["logits"], expected, rtol=1e-9, atol=1e-9)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-9, atol=1e-9)


def test_the_grouped_network_fuses_as_the_plain_one(randomize) -> None:
    ghost = randomize(create_model("ge_cifar_resnet20", 10, bn_group_size=2), scale=0.2).double().eval()
    plain = create_model("ge_cifar_resnet20", 10).double()
    plain.load_state_dict(ghost.state_dict())
    fused = fuse(ghost)
    remaining = [type(m) for m in fused.modules() if isinstance(m, NORMS)]
    assert remaining == [type(m) for m in fuse(plain).modules() if isinstance(m, NORMS)]
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), ghost(x), rtol=1e-10, atol=1e-10)
    assert all(isinstance(m, GhostBatchNorm) for m in ghost.modules() if isinstance(m, NORMS))  # untouched


def test_bad_values_and_batchnorms_of_another_kind_are_one_line() -> None:
    with pytest.raises(InvalidOptionError, match=r"^model.backbone.bn_group_size=0: expected a positive integer$"):
        BackboneConfig(name="srm_cifar_resnet20", bn_group_size=0)
    with pytest.raises(InvalidOptionError, match=r"^option 'bn_group_size'=-1: expected a positive integer"):
        create_model("srm_cifar_resnet20", 10, bn_group_size=-1)
    # timm's EfficientNet fuses its activation into its BatchNorm class: nothing to group without changing it
    with pytest.raises(InvalidOptionError, match=r"^bn_group_size=32: cannot group the statistics of bn1 "
                                                 r"\(BatchNormAct2d\)"):
        create_model("timm.efficientnet_b0", 10, bn_group_size=32)


def test_the_cli_reports_a_bad_group_size_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["fit", "--config", "quickstart.yaml", "--model.init_args.backbone.bn_group_size", "0",
               "--trainer.fast_dev_run", "true", "--trainer.default_root_dir", str(tmp_path)])
    assert rc == 2
    the_error_line(capsys.readouterr().err, "model.backbone.bn_group_size=0", "positive integer")


def test_sync_batchnorm_over_ghost_batchnorm_is_refused() -> None:
    from recal.errors import InvalidOptionError
    from recal.models import BackboneConfig
    from recal.tasks.classification import ClassificationTask

    task = ClassificationTask(BackboneConfig(name="srm_cifar_resnet20", bn_group_size=4), num_classes=10)
    task.configure_optimizers()  # ghost BatchNorms alone: fine
    task.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(task.model)  # what trainer.sync_batchnorm does
    with pytest.raises(InvalidOptionError, match=r"bn_group_size=4 .*sync_batchnorm: true .*; set one of them"):
        task.configure_optimizers()

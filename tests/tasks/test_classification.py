"""ClassificationTask: config → model, optimiser groups, mixup, divergence, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recal.cli import create_cli
from recal.errors import NonFiniteLossError
from recal.tasks.finite import stop_if_not_finite
from recal.models import BackboneConfig
from recal.layers.srm import SRM
from recal.tasks import ClassificationTask
from tests.cli_runner import QUIET, run_cli, run_dirs


def _parsed_model(*overrides: str) -> ClassificationTask:
    cli = create_cli(["--config", "quickstart.yaml", *overrides, *QUIET], run=False)
    return cli.model


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_pooling_switch_changes_the_built_model() -> None:
    default = _parsed_model()  # srm_cifar_resnet20: pooling avg+std
    three = _parsed_model("--model.init_args.backbone.pooling", "[avg, std, max]")
    gated_channels = 3 * (16 + 32 + 64)  # 3 blocks per stage of cifar_resnet20
    assert _params(three.model) - _params(default.model) == gated_channels  # CFC: one more weight per channel
    assert all(m.pooling == ("avg", "std", "max") for m in three.modules() if isinstance(m, SRM))
    assert all(m.pooling == ("avg", "std") for m in default.modules() if isinstance(m, SRM))


def test_num_classes_flows_from_the_datamodule() -> None:
    assert _parsed_model().model.fc.out_features == 10


def test_no_weight_decay_group_is_exactly_srm_cfc_and_bn() -> None:
    task = ClassificationTask(BackboneConfig(name="srm_cifar_resnet20"), num_classes=10)
    optimizer = task.configure_optimizers()
    decay, no_decay = optimizer.param_groups
    srm_params = {id(p) for m in task.modules() if isinstance(m, SRM)
                  for p in (m.cfc.weight, m.bn.weight, m.bn.bias)}
    assert {id(p) for p in no_decay["params"]} == srm_params
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 1e-4
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(task.parameters()))


def test_se_models_have_no_no_decay_group() -> None:
    task = ClassificationTask(BackboneConfig(name="se_cifar_resnet20"), num_classes=10)
    (group,) = task.configure_optimizers().param_groups
    assert group["weight_decay"] == 1e-4


def test_warmup_then_main_schedule() -> None:
    task = ClassificationTask(
        BackboneConfig(name="cifar_resnet20"), num_classes=10, warmup_epochs=2,
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1], gamma=0.1),
    )
    config = task.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step(), scheduler.step()
    assert lrs[0] == pytest.approx(0.001) and lrs[1] == pytest.approx(0.0505)
    assert lrs[2] == pytest.approx(0.1) and lrs[3] == pytest.approx(0.01) and lrs[4] == pytest.approx(0.01)


def test_mixup_is_a_function_of_seed_and_step() -> None:
    task = ClassificationTask(BackboneConfig(name="cifar_resnet20"), num_classes=10, mixup_alpha=0.4, seed=3)
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8)
    torch.manual_seed(0)
    a = task.mixup(x, y)
    torch.manual_seed(1)  # the global RNG must not matter
    b = task.mixup(x, y)
    assert a[3] == b[3] and torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])
    assert 0 < a[3] < 1 and not torch.equal(a[2], y)


def test_non_finite_loss_names_the_step() -> None:
    task = ClassificationTask(BackboneConfig(name="cifar_resnet20"), num_classes=10)
    stop_if_not_finite(task, torch.tensor(1.5))  # a finite loss passes
    with pytest.raises(NonFiniteLossError, match=r"nan.*step 0.*before its optimizer step"):
        stop_if_not_finite(task, torch.tensor(float("nan")))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def test_fit_two_epochs_equals_fit_one_then_resume(tmp_path: Path) -> None:
    """Seeded sampling and per-sample augmentation seeds make a resumed run bit-identical (CPU)."""
    common = ["fit", "--config", "quickstart.yaml", "--trainer.limit_train_batches", "4",
              "--trainer.limit_val_batches", "1", "--model.init_args.lr_scheduler.init_args.T_max", "2"]
    assert run_cli([*common, "--trainer.max_epochs", "2"], tmp_path / "straight") == 0
    assert run_cli([*common, "--trainer.max_epochs", "1"], tmp_path / "first") == 0
    (first,) = run_dirs(tmp_path / "first")
    (straight,) = run_dirs(tmp_path / "straight")
    assert not torch.equal(_weights(straight)["model.conv1.weight"], _weights(first)["model.conv1.weight"])
    # the resume continues the first run in its own folder
    assert run_cli([*common, "--trainer.max_epochs", "2", "--ckpt_path", str(first / "checkpoints" / "last.ckpt")],
                   tmp_path / "elsewhere") == 0
    assert run_dirs(tmp_path / "first") == [first] and not (tmp_path / "elsewhere").exists()
    a, b = _weights(straight), _weights(first)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]


def test_a_nan_validation_batch_makes_the_logged_loss_nan() -> None:
    """Divergence shows in val/loss: MeanMetric's default would drop the NaN batch with a warning."""
    task = ClassificationTask(BackboneConfig(name="cifar_resnet20"), num_classes=10)
    (loss, *_) = task.eval_losses.values()
    loss.update(torch.tensor(1.0), weight=4)
    loss.update(torch.tensor(float("nan")), weight=4)
    assert torch.isnan(loss.compute())

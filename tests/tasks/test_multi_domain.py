"""MultiDomainTask: per-domain metrics, domain-specific gates, and every Office-Home config through cli.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recal.config_paths import CONFIG_ROOT
from recal.errors import InvalidOptionError
from recal.models import BackboneConfig
from recal.models.domain import DomainSpecific, gate_set_parameters
from recal.tasks.multi_domain import MultiDomainTask
from tests.cli_runner import last_value, read_metrics, run_cli, run_dirs
from tests.fixtures import write_office_home

OFFICE_HOME_CONFIGS = sorted(p.name for p in (CONFIG_ROOT / "office_home").glob("*.yaml"))
DOMAINS = ["Art", "Clipart", "Product", "Real_World"]
# Config runs swap ResNet-18 for a CIFAR ResNet-20 of the same family (the config's wiring is under test).
SMALL = {"r18": "cifar_resnet20", "se_r18": "se_cifar_resnet20", "ge_r18": "ge_cifar_resnet20",
         "srm_r18": "srm_cifar_resnet20"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def office_home(tmp_path_factory) -> Path:
    return write_office_home(tmp_path_factory.mktemp("office_home"), classes=3, per_domain=5, size=(36, 40))


def _task(**kwargs) -> MultiDomainTask:
    return MultiDomainTask(backbone=BackboneConfig(name="srm_cifar_resnet20"), num_classes=5, **kwargs)


def test_parameter_count_is_model_plus_gate_sets_plus_heads():
    plain = _task()
    base = sum(p.numel() for p in plain.model.parameters())
    gate_set = gate_set_parameters(plain.model)
    head = sum(p.numel() for p in plain.model.fc.parameters())
    specific = _task(domain_specific_recalibration=True)
    assert sum(p.numel() for p in specific.model.parameters()) == base + 3 * gate_set
    both = _task(domain_specific_recalibration=True, domain_heads=True)
    assert sum(p.numel() for p in both.model.parameters()) == base + 3 * gate_set + 3 * head


def test_one_training_step_on_a_mixed_batch_makes_domain_gates_differ():
    task = _task(domain_specific_recalibration=True)
    x = torch.randn(1, 3, 32, 32)

    def gates(d: int) -> list[torch.Tensor]:
        seen: list[torch.Tensor] = []
        hooks = [m.copies[d].register_gate_hook(lambda _, g: seen.append(g.clone()))
                 for m in task.model.modules() if isinstance(m, DomainSpecific)]
        task.eval()
        with torch.no_grad():
            task(x, d)
        for h in hooks:
            h.remove()
        return seen

    before = [gates(d) for d in range(4)]
    assert all(torch.equal(a, b) for d in range(1, 4) for a, b in zip(before[0], before[d]))
    task.train()
    optimizer = torch.optim.SGD(task.parameters(), lr=0.1)
    batch = (torch.randn(8, 3, 32, 32), torch.randint(0, 5, (8,)), torch.tensor([0, 1, 2, 3] * 2))
    loss = task.training_loss(task(batch[0], batch[2]), batch[1])
    loss.backward()
    optimizer.step()
    after = [gates(d) for d in range(4)]
    assert all(any(not torch.allclose(a, b) for a, b in zip(after[0], after[d])) for d in range(1, 4))


def test_bad_combinations_name_the_option():
    with pytest.raises(InvalidOptionError, match="mixup_alpha=0.2"):
        _task(domain_specific_recalibration=True, mixup_alpha=0.2)
    with pytest.raises(InvalidOptionError, match="no recalibration"):
        MultiDomainTask(backbone=BackboneConfig(name="cifar_resnet20"), num_classes=5,
                        domain_specific_recalibration=True)


# -------------------------------------------------------------------------------- CLI

TINY = ["--data.init_args.num_classes", "3", "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
        "--data.init_args.image_size", "32", "--data.init_args.resize_size", "36",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]


@pytest.mark.parametrize("config", OFFICE_HOME_CONFIGS)
def test_every_office_home_config_fits_and_logs_per_domain_top1(tmp_path, office_home, config):
    family = config.split("_office_home")[0]
    args = ["fit", "--config", f"office_home/{config}", "--data.init_args.root", str(office_home), *TINY,
            "--model.init_args.backbone.name", SMALL[family], "--model.init_args.backbone.input_size", "32"]
    assert run_cli(args, tmp_path) == 0
    (run,) = run_dirs(tmp_path)
    per_domain = {d: last_value(run, f"val/acc1/{d}") for d in DOMAINS}
    trained = DOMAINS[1:] if config.endswith("_loo.yaml") else DOMAINS
    mean = sum(per_domain[d] for d in trained) / len(trained)
    assert last_value(run, "val/acc1") == pytest.approx(mean, abs=1e-6)
    assert any(row.get("val/loss") for row in read_metrics(run))


def test_domain_specific_run_checkpoints_one_gate_set_per_domain(tmp_path, office_home):
    args = ["fit", "--config", "office_home/srm_r18_office_home_dsr.yaml", "--data.init_args.root", str(office_home),
            *TINY, "--model.init_args.backbone.name", "srm_cifar_resnet20"]
    assert run_cli(args, tmp_path) == 0
    (run,) = run_dirs(tmp_path)
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    weights = [state[f"model.layer1.0.gate.copies.{d}.cfc.weight"] for d in range(4)]
    assert all(not torch.equal(weights[0], w) for w in weights[1:])  # trained apart on a mixed batch


def test_missing_domain_folder_exits_with_a_short_message(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a failed run must leave nothing behind in the repository
    root = write_office_home(tmp_path / "oh", classes=3, per_domain=5, real_world_name="Real_World")
    (root / "Product").rename(root / "Products")
    rc = run_cli(["fit", "--config", "office_home/r18_office_home.yaml", "--data.init_args.root", str(root), *TINY],
                 tmp_path / "runs")
    assert rc == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "domain 'Product' not found" in lines[0] and str(root / "Product") in lines[0]


def test_leave_one_out_with_domain_specific_gates_is_refused(tmp_path, office_home, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a failed run must leave nothing behind in the repository
    rc = run_cli(["fit", "--config", "office_home/srm_r18_office_home_loo.yaml", "--data.init_args.root",
                  str(office_home), *TINY, "--model.init_args.backbone.name", "srm_cifar_resnet20",
                  "--model.init_args.domain_specific_recalibration", "true"], tmp_path)
    assert rc == 2
    assert "held-out domain Art is never trained on" in capsys.readouterr().err

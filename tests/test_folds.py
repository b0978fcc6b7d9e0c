"""``python -m recal.commands.folds`` on a DTD fixture: k rows plus mean ± std, per split runs, bad splits."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest
import torch

from recal.commands.folds import main
from tests.fixtures import write_dtd

TINY = ["--data.init_args.root", None, "--data.init_args.num_classes", "3", "--data.init_args.batch_size", "2",
        "--data.init_args.num_workers", "0", "--data.init_args.image_size", "32", "--data.init_args.resize_size", "36",
        "--model.init_args.backbone.name", "srm_cifar_resnet20", "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dtd(tmp_path_factory) -> Path:
    return write_dtd(tmp_path_factory.mktemp("dtd"), classes=3, per_class=6, size=(40, 48))


def _tiny(root: Path) -> list[str]:
    return [str(root) if a is None else a for a in TINY]


def test_kfold_runner_writes_k_rows_and_mean_std(tmp_path, dtd, capsys):
    out = tmp_path / "folds"
    rc = main(["--config", "dtd/srm_r50_dtd.yaml", "--protocol", "kfold", "--folds", "3", "--out", str(out),
               "--", *_tiny(dtd)])
    assert rc == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)  # the folder is printed last
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["split", "test/acc1"]
    assert [r[0] for r in rows[1:]] == ["fold_0", "fold_1", "fold_2", "mean", "std"]
    values = [float(r[1]) for r in rows[1:4]]
    assert float(rows[4][1]) == pytest.approx(statistics.mean(values), abs=1e-6)
    assert float(rows[5][1]) == pytest.approx(statistics.stdev(values), abs=1e-6)
    table = (out / "results.md").read_text()
    assert table.count("| fold_") == 3 and "| mean ± std |" in table
    for fold in range(3):
        fit = out / f"fold_{fold}" / "fit"
        assert (fit / "config.yaml").is_file() and (fit / "checkpoints" / "last.ckpt").is_file()
        with open(fit / "test" / "version_0" / "metrics.csv", newline="") as f:
            logged = float(next(r for r in csv.DictReader(f) if r.get("test/acc1"))["test/acc1"])
        assert logged == pytest.approx(values[fold], abs=1e-6)
        assert f"fold: {fold}" in (fit / "config.yaml").read_text()


def test_partition_runner_tests_the_best_checkpoint_on_testN(tmp_path, dtd):
    out = tmp_path / "partitions"
    assert main(["--config", "dtd/srm_r50_dtd.yaml", "--splits", "[2]", "--out", str(out), "--", *_tiny(dtd)]) == 0
    assert (out / "results.md").read_text().count("| partition_2 |") == 1
    config = (out / "partition_2" / "fit" / "test" / "version_0" / "config.yaml").read_text()
    assert "partition: 2" in config and "best.ckpt" in config


@pytest.mark.parametrize("args, message", [
    (["--protocol", "kfold", "--folds", "5", "--splits", "[5]"], "fold index 5 outside 0..4 (k = 5)"),
    (["--splits", "[0]"], "DTD partition 0 outside 1..10"),
    (["--splits", "[11]"], "DTD partition 11 outside 1..10"),
])
def test_bad_split_exits_with_a_short_message(tmp_path, args, message, capsys):
    assert main(["--config", "dtd/srm_r50_dtd.yaml", "--out", str(tmp_path), *args]) == 2
    assert f"error: {message}" in capsys.readouterr().err


def _digests(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_kfold_tests_the_last_state_not_the_best_epoch_and_resumes_or_refuses(tmp_path, dtd, capsys):
    """``--checkpoint.mode min`` makes an early epoch "best": the fold must still test the final state."""
    out = tmp_path / "folds"
    args = ["--config", "dtd/srm_r50_dtd.yaml", "--protocol", "kfold", "--folds", "2", "--splits", "[0]",
            "--out", str(out), "--", *_tiny(dtd), "--trainer.max_epochs", "3", "--checkpoint.mode", "min"]
    assert main(args) == 0
    fit = out / "fold_0" / "fit"
    last = torch.load(fit / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 3 * 2 and last["epoch"] == 2
    tested = (fit / "test" / "version_0" / "config.yaml").read_text()
    assert str(fit / "checkpoints" / "last.ckpt") in tested
    assert "last.ckpt, step 6" in capsys.readouterr().err
    before = _digests(out)
    assert main(args) == 0  # same options: read back, nothing retrained or rewritten
    assert {k: v for k, v in _digests(out).items() if k not in ("results.csv", "results.md")} == \
        {k: v for k, v in before.items() if k not in ("results.csv", "results.md")}
    capsys.readouterr()
    assert main([*args[:args.index("--")], "--checkpoint", "best", *args[args.index("--"):]]) == 2
    line = capsys.readouterr().err
    assert "checkpoint: 'last' → 'best'" in line and str(out) in line
    assert {k: v for k, v in _digests(out).items()} == before


def test_an_unfinished_fit_resumes_from_its_checkpoint(tmp_path, dtd):
    out = tmp_path / "folds"
    args = ["--config", "dtd/srm_r50_dtd.yaml", "--protocol", "kfold", "--folds", "2", "--splits", "[1]",
            "--out", str(out), "--", *_tiny(dtd), "--trainer.max_epochs", "2"]
    assert main(args) == 0
    fit = out / "fold_1" / "fit"
    (out / "finished_runs.txt").write_text("")  # as if the runner had died before recording the fit
    final = torch.load(fit / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert main(args) == 0
    again = torch.load(fit / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert again["global_step"] == final["global_step"]  # resumed from its last state: nothing left to train
    assert [p.name for p in (fit / "test").iterdir()] == ["version_0"]


def test_a_config_without_folds_is_named(tmp_path, capsys):
    assert main(["--config", "quickstart.yaml", "--out", str(tmp_path / "o")]) == 2
    line = capsys.readouterr().err
    assert "quickstart.yaml" in line and "dtd/srm_r50_dtd.yaml" in line


"""Reading run folders (config values, final metrics) and the table helpers the commands share."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from recal.analysis import folds, runs, style_compare, sweep, tables
from recal.analysis.runs import checkpoint_file, config_value, final_metrics, find_runs, output_dir, unique_labels
from recal.analysis.sweep import SweepPlan, cli_value, collect, display_value, run_arguments, variant_label
from recal.errors import CheckpointMismatchError, DatasetNotFoundError, InvalidOptionError

CONFIG = {"seed_everything": 3, "model": {"class_path": "recal.tasks.ClassificationTask",
                                          "init_args": {"backbone": {"name": "srm_cifar_resnet20", "pooling": ["avg", "max"]}}}}


def _fake_run(folder: Path, config: dict, rows: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.csv").write_text("epoch,step,val/acc1,val/loss\n" + "\n".join(rows) + "\n")
    return folder


def test_config_value_follows_init_args_or_not() -> None:
    assert config_value(CONFIG, "model.backbone.pooling") == ["avg", "max"]
    assert config_value(CONFIG, "model.init_args.backbone.name") == "srm_cifar_resnet20"
    assert config_value(CONFIG, "seed_everything") == 3
    with pytest.raises(InvalidOptionError, match="model.backbone.nope"):
        config_value(CONFIG, "model.backbone.nope")


def test_final_metrics_are_the_last_logged_values(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "r", CONFIG, ["0,4,0.5,", "0,4,,2.0", "1,9,0.75,", "1,9,,1.5"])
    assert final_metrics(run, ["val/acc1", "val/loss", "val/acc5"]) == {"val/acc1": 0.75, "val/loss": 1.5,
                                                                         "val/acc5": pytest.approx(math.nan, nan_ok=True)}
    assert find_runs(tmp_path) == [run]
    with pytest.raises(DatasetNotFoundError, match="best.ckpt"):
        checkpoint_file(run)


def test_collect_reads_variants_from_config_yaml_not_folder_names(tmp_path: Path) -> None:
    for i, (pooling, seed, acc) in enumerate([(["avg"], 0, 0.5), (["avg"], 1, 0.7), (["avg", "max"], 0, 0.9)]):
        config = {**CONFIG, "seed_everything": seed,
                  "model": {"init_args": {"backbone": {"name": "srm_cifar_resnet20", "pooling": pooling}}}}
        _fake_run(tmp_path / "elsewhere" / f"job{i}" / "version_0", config, [f"0,4,{acc},1.0"])
    table = collect(tmp_path, key="model.backbone.pooling", metrics=["val/acc1"])
    assert [r["variant"] for r in table.variants] == ["avg", "avg+max"]
    assert [r["model.backbone.pooling"] for r in table.variants] == ["[avg]", "[avg, max]"]
    assert table.variants[0]["val/acc1 mean"] == pytest.approx(0.6)
    assert table.variants[0]["val/acc1 std"] == pytest.approx(0.1414213562)  # sample std, n − 1
    assert math.isnan(table.variants[1]["val/acc1 std"])  # one seed: no std
    assert table.variants[0]["seeds"] == "0 1"
    reordered = collect(tmp_path, key="model.backbone.pooling", values=[["avg", "max"], ["avg"]], metrics=["val/acc1"])
    assert [r["variant"] for r in reordered.variants] == ["avg+max", "avg"]
    with pytest.raises(InvalidOptionError, match="--key"):
        collect(tmp_path)


def test_sweep_run_arguments_give_each_run_its_own_folder(tmp_path: Path) -> None:
    plan = SweepPlan("quickstart.yaml", "model.backbone.pooling", [["avg", "std"]], [0, 1], ["--trainer.max_epochs", "1"])
    args = run_arguments(plan, ["avg", "std"], 1, tmp_path)
    assert args[:3] == ["fit", "--config", "quickstart.yaml"]
    assert args[args.index("--model.backbone.pooling") + 1] == '["avg", "std"]'
    assert args[args.index("--seed_everything") + 1] == "1"
    assert args[args.index("--trainer.default_root_dir") + 1] == str(tmp_path)
    assert args[args.index("--trainer.logger.init_args.name") + 1] == "avg+std"
    assert args[args.index("--trainer.logger.init_args.version") + 1] == "seed_1"
    assert variant_label("cfc") == "cfc" and cli_value("cfc") == "cfc" and cli_value(3) == "3"
    assert display_value(["avg", "std"]) == "[avg, std]" and display_value("mlp") == "mlp"


def test_tables_write_csv_and_markdown(tmp_path: Path) -> None:
    rows = [{"a": 1, "b": math.nan, "c": "x|y"}, {"a": 2, "b": 0.5, "c": None}]
    tables.write_csv(rows, tmp_path / "t.csv")
    assert tables.read_csv(tmp_path / "t.csv") == [{"a": "1", "b": "", "c": "x|y"}, {"a": "2", "b": "0.5", "c": ""}]
    text = tables.write_markdown(rows, tmp_path / "t.md", "T", "note").read_text()
    assert "| a | b | c |" in text and "| 1 | — | x\\|y |" in text and text.rstrip().endswith("note")
    assert tables.fmt_mean_std(*tables.mean_std([0.9, 0.92]), scale=100) == "91.00 ± 1.41"
    assert tables.fmt_mean_std(*tables.mean_std([0.9]), scale=100) == "90.00"
    assert tables.fmt_int(25557032) == "25,557,032"


def test_output_dir_defaults_to_a_fresh_timestamped_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = output_dir("prune", None), output_dir("prune", None)
    assert first.parent == second.parent == Path("runs/prune") and first != second
    assert output_dir("x", str(tmp_path / "mine")) == tmp_path / "mine"


def test_unique_labels_name_the_run_when_models_repeat() -> None:
    paths = [Path("a/srm/version_0/checkpoints/best.ckpt"), Path("a/srm/version_1/checkpoints/best.ckpt"),
             Path("b/se/version_0/checkpoints/best.ckpt")]
    assert unique_labels(["srm", "srm", "se"], paths) == ["srm (srm/version_0)", "srm (srm/version_1)", "se"]


def test_one_mean_std_serves_folds_and_sweeps_and_one_value_has_no_std(tmp_path: Path) -> None:
    assert folds.mean_std is sweep.mean_std is tables.mean_std
    mean, std = tables.mean_std([0.5])
    assert mean == 0.5 and math.isnan(std)  # one value: no sample standard deviation
    folds.write_results(tmp_path, [folds.FoldResult("fold_0", 0.5)], "one split")
    assert tables.read_csv(tmp_path / "results.csv")[-2:] == [{"split": "mean", "test/acc1": "0.500000"},
                                                              {"split": "std", "test/acc1": ""}]
    assert "| mean ± std | 50.00 ± — |" in (tmp_path / "results.md").read_text()
    _fake_run(tmp_path / "runs" / "job" / "version_0", CONFIG, ["0,4,0.5,1.0"])
    table = collect(tmp_path / "runs", key="model.backbone.pooling", metrics=["val/acc1"])
    sweep.write_outputs(table, tmp_path, "one seed")
    assert tables.read_csv(tmp_path / "table.csv")[0]["val/acc1 std"] == ""
    assert "| avg+max | [avg, max] | 1 | 50.00 |" in (tmp_path / "table.md").read_text()  # no "± nan"


def test_one_checkpoint_file_serves_the_analyses_and_style_compare(tmp_path: Path) -> None:
    assert style_compare.checkpoint_file is runs.checkpoint_file
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(b"not a checkpoint")
    assert checkpoint_file(run) == checkpoint_file(run, "last") == checkpoint_file(run / "checkpoints") == last
    best = run / "checkpoints" / "best.ckpt"
    best.write_bytes(b"not a checkpoint")
    assert checkpoint_file(run) == best and checkpoint_file(run, "last") == last
    # style_compare reads a run folder's last.ckpt through it, the analyses its best.ckpt
    with pytest.raises(CheckpointMismatchError, match=f"cannot read checkpoint {last}"):
        style_compare.load_variant(run)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError, match=f"run folder {empty} holds no checkpoints/last.ckpt; give a .ckpt"):
        style_compare.load_variant(empty)
    with pytest.raises(DatasetNotFoundError, match=f"run folder {empty} holds no checkpoints/best.ckpt or last.ckpt"):
        runs.load_run(empty)

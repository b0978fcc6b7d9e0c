"""cli.py end to end: the quickstart, every config, config lookup and user errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from recal.config_paths import CONFIG_ROOT, resolve_config
from recal.errors import InvalidOptionError
from tests.cli_runner import last_value, run_cli, run_cli_subprocess, run_dirs

TOP_CONFIGS = sorted(p.relative_to(CONFIG_ROOT).as_posix() for p in CONFIG_ROOT.rglob("*.yaml")
                     if p.parent.name != "data")
SINGLE_DEVICE_IMAGENET = ["r50.yaml", "se_r50.yaml", "ge_r50.yaml", "srm_r50.yaml",
                          "r101.yaml", "se_r101.yaml", "ge_r101.yaml", "srm_r101.yaml"]


def test_quickstart_reaches_five_times_chance_within_a_minute(tmp_path: Path) -> None:
    """2 epochs (capped at 60 s of training) of the embedded default: val top-1 ≥ 50 % (chance 10 %)."""
    rc = run_cli(["fit", "--config", "quickstart.yaml", "--trainer.max_epochs", "2",
                  "--model.init_args.lr_scheduler.init_args.T_max", "2",
                  "--trainer.max_time", "00:00:01:00"], tmp_path)
    assert rc == 0
    (run,) = run_dirs(tmp_path)
    assert last_value(run, "val/acc1") >= 0.5
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}


@pytest.mark.parametrize("config", TOP_CONFIGS)
def test_every_config_passes_print_config(config: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["fit", "--config", config, "--print_config"], Path("."))
    assert exit_info.value.code in (0, None)
    assert "class_path" in capsys.readouterr().out


def test_bare_config_names_resolve_under_configs(tmp_path: Path) -> None:
    assert resolve_config("srm_r50.yaml") == str(CONFIG_ROOT / "srm_r50.yaml")
    assert resolve_config("srm_resnet56_c10.yaml") == str(CONFIG_ROOT / "cifar" / "srm_resnet56_c10.yaml")
    local = tmp_path / "mine.yaml"
    local.write_text("seed_everything: 1\n")
    assert resolve_config(str(local)) == str(local)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.yaml").write_text(""), (tmp_path / "b" / "x.yaml").write_text("")
    with pytest.raises(InvalidOptionError, match=r"ambiguous.*a/x\.yaml.*b/x\.yaml"):
        resolve_config("x.yaml", root=tmp_path)
    with pytest.raises(InvalidOptionError, match="nope.yaml"):
        resolve_config("nope.yaml", root=tmp_path)


def _short_error(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_data_root_is_one_line_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_imagenet"
    result = run_cli_subprocess(["fit", "--config", "srm_r50.yaml", "--data.root", str(missing),
                                 "--trainer.fast_dev_run", "true"], tmp_path)
    line = _short_error(result)
    assert str(missing) in line and "train" in line


def test_root_without_train_and_val_names_the_layout(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    (root / "n01440764").mkdir(parents=True)
    result = run_cli_subprocess(["fit", "--config", "srm_r50.yaml", "--data.root", str(root),
                                 "--trainer.fast_dev_run", "true"], tmp_path)
    line = _short_error(result)
    assert str(root) in line and "train" in line and "val" in line


@pytest.mark.parametrize("override, bad, valid", [
    (["--model.init_args.backbone.name", "srm_resnet5"], "srm_resnet5", "srm_resnet50"),
    (["--model.init_args.backbone.pooling", "[avg, foo]"], "foo", "'std'"),
])
def test_unknown_model_or_pooling_is_one_line_naming_it(tmp_path: Path, override, bad, valid) -> None:
    result = run_cli_subprocess(["fit", "--config", "quickstart.yaml", *override], tmp_path)
    line = _short_error(result)
    assert bad in line and valid in line
    assert result.returncode == 2

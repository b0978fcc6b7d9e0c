"""``--config`` naming a fragment (a data component that task configs include) is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from recal.cli import main
from recal.config_paths import CONFIG_ROOT, configs_using, is_fragment, resolve_config, resolve_config_args
from recal.errors import InvalidOptionError
from tests.error_lines import the_error_line

DTD_USERS = ["dtd/ge_r50_dtd.yaml", "dtd/r50_dtd.yaml", "dtd/se_r50_dtd.yaml", "dtd/srm_r50_dtd.yaml"]


def test_fit_with_a_data_fragment_exits_2_and_lists_the_task_configs(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    assert main(["fit", "--config", "dtd.yaml", "--trainer.default_root_dir", str(tmp_path)]) == 2
    line = the_error_line(capsys.readouterr().err, "'dtd.yaml'", "fragment", "not a task config", *DTD_USERS)
    assert "finetune" not in line  # those configs spell their data out instead of including the file


def test_fragments_are_found_by_folder_and_by_content(tmp_path: Path) -> None:
    assert is_fragment(CONFIG_ROOT / "data" / "cifar10.yaml")
    assert not is_fragment(CONFIG_ROOT / "dtd" / "se_r50_dtd.yaml")
    mine = tmp_path / "mine.yaml"
    mine.write_text("class_path: recal.data.DigitsDataModule\ninit_args: {batch_size: 8}\n")
    assert is_fragment(mine, root=tmp_path / "configs")
    with pytest.raises(InvalidOptionError, match=r"is a fragment \(class_path: recal.data.DigitsDataModule\)"):
        resolve_config(str(mine), root=tmp_path / "configs")


def test_the_configs_that_include_a_fragment_are_listed(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(), (tmp_path / "task").mkdir()
    fragment = tmp_path / "data" / "d.yaml"
    fragment.write_text("class_path: recal.data.DigitsDataModule\n")
    (tmp_path / "task" / "a.yaml").write_text("trainer: {max_epochs: 1}\ndata: ../data/d.yaml\n")
    (tmp_path / "task" / "b.yaml").write_text("data: ../data/other.yaml\n# data: ../data/d.yaml\n")
    (tmp_path / "c.yaml").write_text(f"data: {fragment}\n")
    assert configs_using(fragment, tmp_path) == ["c.yaml", "task/a.yaml"]
    with pytest.raises(InvalidOptionError, match=r"'d.yaml' .* give a task config that uses it: c.yaml, task/a.yaml$"):
        resolve_config("d.yaml", root=tmp_path)


def test_task_configs_that_include_fragments_still_resolve() -> None:
    assert resolve_config("dtd/se_r50_dtd.yaml") == str(CONFIG_ROOT / "dtd" / "se_r50_dtd.yaml")
    assert resolve_config_args(["fit", "--config=srm_resnet56_c10.yaml"]) == [
        "fit", "--config=" + str(CONFIG_ROOT / "cifar" / "srm_resnet56_c10.yaml")]

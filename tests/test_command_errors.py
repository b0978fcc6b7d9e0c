"""Bad input to the ``python -m recal.commands.<name>`` commands: one ``error:`` line, exit status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from recal.analysis.complexity import complexity_row
from recal.analysis.runs import output_dir
from recal.commands import complexity, gates, pruning, style_compare, sweep
from recal.commands.parser import CommandParser
from recal.errors import InvalidOptionError
from recal.paths import creatable_problem, ensure_creatable, make_folder
from tests.error_lines import the_error_line

ROOT = Path(__file__).resolve().parents[1]


def parse_error(main, args: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run a command's ``main`` on ``args`` that its parser rejects; return its stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------- complexity's numbers


@pytest.mark.parametrize("option, value", [("--input_size", "0"), ("--input_size", "-5"), ("--num_classes", "0")])
def test_complexity_rejects_a_non_positive_size_or_class_count(option: str, value: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert complexity.main(["cifar_resnet20", option, value, "--out", str(out)]) == 2
    the_error_line(capsys.readouterr().err, f"{option} {value}", "expected a positive integer")
    assert not out.exists()  # the folder it made for the table is removed again


def test_complexity_row_raises_for_input_size_zero_instead_of_using_224() -> None:
    with pytest.raises(InvalidOptionError, match=r"--input_size 0: expected a positive integer"):
        complexity_row("cifar_resnet20", input_size=0)


def test_complexity_exits_2_without_traceback_from_the_shell(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "recal.commands.complexity", "--input_size", "-5", "--out", str(tmp_path / "o")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 2
    the_error_line(result.stderr, "--input_size -5", "expected a positive integer")


# ---------------------------------------------------------------- argument errors


@pytest.mark.parametrize("main, args, names", [
    (pruning.main, ["run", "--bogus", "1"], ["--bogus"]),
    (pruning.main, ["run", "--limit_batches", "abc"], ["--limit_batches", "abc", "int"]),
    (pruning.main, ["run", "--which", "worst"], ["--which", "worst", "best"]),
    (pruning.main, [], ["checkpoints"]),
    (complexity.main, ["--nope"], ["--nope"]),
    (complexity.main, ["--input_size", "big"], ["--input_size", "big", "int"]),
    (complexity.main, ["--layout", "v2"], ["--layout", "v2", "as_built"]),
    (gates.main, ["run", "--limit_batches", "x"], ["--limit_batches", "x"]),
    (style_compare.main, ["a.ckpt", "--size", "big"], ["--size", "big"]),
    (sweep.main, ["--seeds", "x"], ["--seeds", "x"]),
    (sweep.main, ["--whatever", "3"], ["--whatever"]),
])
def test_argument_errors_are_one_line_and_a_hint(main, args: list[str], names: list[str],
                                                 capsys: pytest.CaptureFixture) -> None:
    stderr = parse_error(main, args, capsys)
    the_error_line(stderr, *names)
    tool = main.__module__.split(".")[-1]
    assert f"(run `python -m recal.commands.{tool} --help` for the options)" in stderr
    assert "usage:" not in stderr  # not the whole usage text


def test_command_parser_names_a_missing_required_option(capsys: pytest.CaptureFixture) -> None:
    parser = CommandParser(prog="python -m recal.commands.folds")
    parser.add_argument("--config", type=str, required=True)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([])
    assert exit_info.value.code == 2
    the_error_line(capsys.readouterr().err, "required", "--config")


def test_command_parser_still_raises_when_asked_not_to_exit() -> None:
    parser = CommandParser(prog="python -m recal.commands.x", exit_on_error=False)
    parser.add_argument("--n", type=int, default=1)
    with pytest.raises(Exception, match="n"):
        parser.parse_args(["--n", "abc"])


# ---------------------------------------------------------------- output folders


def test_output_dir_under_a_regular_file_names_the_folder_and_the_file(tmp_path: Path) -> None:
    file = tmp_path / "file.txt"
    file.write_text("")
    with pytest.raises(InvalidOptionError, match=f"output folder {file / 'sub'} cannot be created: "
                                                 f"it is under the regular file {file}"):
        output_dir("prune", str(file / "sub"))
    with pytest.raises(InvalidOptionError, match=f"{file} is a regular file"):
        output_dir("prune", str(file))


def test_a_command_with_an_impossible_out_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    file = tmp_path / "file.txt"
    file.write_text("")
    assert complexity.main(["cifar_resnet20", "--out", str(file / "sub")]) == 2
    the_error_line(capsys.readouterr().err, str(file / "sub"), "under the regular file")


def test_ensure_creatable_checks_without_creating(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b" / "c"
    ensure_creatable(nested, "run folder")
    assert not (tmp_path / "a").exists()
    (tmp_path / "f").write_text("")
    with pytest.raises(InvalidOptionError, match=f"run folder {tmp_path / 'f' / 'x' / 'y'} cannot be created: "
                                                 f"it is under the regular file {tmp_path / 'f'}"):
        ensure_creatable(tmp_path / "f" / "x" / "y", "run folder")
    assert make_folder(nested, "run folder").is_dir()
    assert creatable_problem(nested) is None  # an existing folder is fine


def test_ensure_creatable_rejects_a_read_only_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    # as if the user lacked write permission (chmod would not stop root, who runs some CI)
    real_access = os.access
    monkeypatch.setattr("recal.paths.os.access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    with pytest.raises(InvalidOptionError, match=f"run folder {locked / 'run'} cannot be created: "
                                                 f"its parent folder {locked} is not writable"):
        ensure_creatable(locked / "run", "run folder")
    with pytest.raises(InvalidOptionError, match=f"{locked} is not writable"):
        ensure_creatable(locked, "run folder")

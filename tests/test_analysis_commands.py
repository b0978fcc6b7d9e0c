"""The analysis commands end to end on tiny runs of the embedded default.

One module-scoped sweep trains four tiny SRM runs (pooling avg / avg+std × seeds
0, 1; two steps each, batch 8) and one SE run; the sweep, collect, pruning and
gates commands then read what training wrote, and the tests check the numbers
they print against the runs' own metrics.csv and against Lightning's validation.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recal.commands import gates, pruning, sweep
from recal.analysis import plots
from recal.analysis.tables import read_csv
from recal.cli import create_cli
from tests.cli_runner import QUIET, last_value, run_cli, run_dirs

TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
        "--trainer.num_sanity_val_steps", "0", "--data.batch_size", "8", *QUIET]
VAL_SAMPLES = 16  # two validation batches of 8


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A pooling sweep, two variants × two seeds; returns its folder and what it printed."""
    out = tmp_path_factory.mktemp("sweep")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = sweep.main(["--config", "quickstart.yaml", "--key", "model.backbone.pooling",
                           "--values", "[[avg], [avg, std]]", "--seeds", "[0, 1]", "--out", str(out), "--", *TINY])
    assert code == 0
    return out, buffer.getvalue()


@pytest.fixture(scope="module")
def se_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny SE CIFAR-ResNet-20 run of the embedded default."""
    out = tmp_path_factory.mktemp("se")
    assert run_cli(["fit", "--config", "quickstart.yaml", "--model.backbone.name", "se_cifar_resnet20", *TINY], out) == 0
    (run,) = run_dirs(out)
    return run


def test_sweep_writes_one_row_per_variant_with_its_value(swept: tuple[Path, str]) -> None:
    out, printed = swept
    assert printed.strip().splitlines()[-1] == str(out)
    runs = sorted(p.parent for p in out.glob("runs/*/seed_*/config.yaml"))
    assert [p.relative_to(out).as_posix() for p in runs] == [
        "runs/avg/seed_0", "runs/avg/seed_1", "runs/avg+std/seed_0", "runs/avg+std/seed_1"]
    assert all((p / "checkpoints" / "last.ckpt").is_file() and (p / "metrics.csv").is_file() for p in runs)
    table = read_csv(out / "table.csv")
    assert [(r["variant"], r["model.backbone.pooling"], r["runs"], r["seeds"]) for r in table] == [
        ("avg", "[avg]", "2", "0 1"), ("avg+std", "[avg, std]", "2", "0 1")]
    for row in table:
        for metric in ("val/acc1", "val/acc5", "val/loss"):
            values = [last_value(out / "runs" / row["variant"] / f"seed_{s}", metric) for s in (0, 1)]
            mean = sum(values) / 2
            assert float(row[f"{metric} mean"]) == pytest.approx(mean, rel=1e-12)
            std = math.sqrt(sum((v - mean) ** 2 for v in values))  # n − 1 = 1
            assert float(row[f"{metric} std"] or 0) == pytest.approx(std, rel=1e-9, abs=1e-12)
    assert len(read_csv(out / "runs.csv")) == 4
    markdown = (out / "table.md").read_text()
    assert "| avg+std | [avg, std] | 2 |" in markdown and "val/acc1 (%)" in markdown
    assert (out / "chart.png").stat().st_size > 5_000 and (out / "chart.pdf").is_file()


def test_collect_gives_the_same_table(swept: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, _ = swept
    assert sweep.main(["--collect", str(out), "--out", str(tmp_path / "again")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "again")
    # bare run folders (as if launched elsewhere): the key and the order come from the command line
    assert sweep.main(["--collect", str(out / "runs"), "--key", "model.init_args.backbone.pooling",
                       "--values", "[[avg], [avg, std]]", "--out", str(tmp_path / "bare")]) == 0
    for name in ("table.csv", "table.md"):
        assert (tmp_path / "again" / name).read_text() == (out / name).read_text()
    original = read_csv(out / "table.csv")
    bare = read_csv(tmp_path / "bare" / "table.csv")
    assert [{k: v for k, v in r.items() if k != "model.backbone.pooling"} for r in original] == \
           [{k: v for k, v in r.items() if k != "model.init_args.backbone.pooling"} for r in bare]


def test_a_finished_sweep_is_resumed_not_retrained(swept: tuple[Path, str], capsys: pytest.CaptureFixture) -> None:
    out, _ = swept
    before = (out / "table.csv").read_text()
    assert sweep.main(["--config", "quickstart.yaml", "--key", "model.backbone.pooling",
                       "--values", "[[avg], [avg, std]]", "--seeds", "[0, 1]", "--out", str(out), "--", *TINY]) == 0
    assert capsys.readouterr().err.count("skipped") == 4
    assert (out / "table.csv").read_text() == before


def _digests(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_out_with_other_options_is_refused_naming_them(swept: tuple[Path, str], capsys) -> None:
    out, _ = swept
    before = _digests(out)
    assert sweep.main(["--config", "quickstart.yaml", "--key", "model.backbone.pooling",
                       "--values", "[[avg], [max]]", "--seeds", "[0, 1]", "--out", str(out), "--", *TINY]) == 2
    line = capsys.readouterr().err
    assert "values:" in line and "'max'" in line and str(out) in line
    assert _digests(out) == before  # sweep.yaml still names the options its runs were trained with


def test_a_bad_value_stops_the_sweep_before_anything_trains(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sweep"
    assert sweep.main(["--config", "quickstart.yaml", "--key", "model.backbone.name",
                       "--values", "[cifar_resnet20, srm_cifar_resnet2000]", "--out", str(out), "--", *TINY]) == 2
    err = capsys.readouterr().err
    assert "srm_cifar_resnet2000" in err
    assert not (out / "runs").exists()


def test_an_interrupted_sweep_run_resumes_from_its_checkpoint(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sweep"
    args = ["--config", "quickstart.yaml", "--key", "model.backbone.name", "--values", "[cifar_resnet20]",
            "--out", str(out), "--", *TINY]
    assert sweep.main(args) == 0
    run = out / "runs" / "cifar_resnet20" / "seed_0"
    (out / "finished_runs.txt").write_text("")  # as if the sweep had died before recording the run
    metrics = (run / "metrics.csv").read_bytes()
    assert sweep.main(args) == 0
    assert "(resumed)" in capsys.readouterr().err
    assert (run / "metrics.csv").read_bytes() == metrics  # continued from its final state: nothing re-logged


def _validate(run: Path, tmp_path: Path) -> float:
    """val/acc1 of a plain Lightning validation of the run's best checkpoint (two batches)."""
    cli = create_cli(["validate", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints" / "best.ckpt"),
                      "--trainer.logger", "false", "--trainer.limit_val_batches", "2",
                      "--trainer.default_root_dir", str(tmp_path), *QUIET])
    return float(cli.trainer.callback_metrics["val/acc1"])


def test_prune_se_vs_srm(swept: tuple[Path, str], se_run: Path, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    srm_run = swept[0] / "runs" / "avg+std" / "seed_0"
    legends: list[list[str]] = []
    original_save = plots.save

    def spy(fig, path):  # the figure as drawn: its lines and its legend
        ax = fig.axes[0]
        legends.append([t.get_text() for t in ax.get_legend().get_texts()] + [f"lines={len(ax.get_lines())}"])
        return original_save(fig, path)

    monkeypatch.setattr(plots, "save", spy)
    out = tmp_path / "prune"
    assert pruning.main([str(se_run), str(srm_run), "--fractions", "[0, 0.1, 0.5]", "--seeds", "[0, 1]",
                       "--limit_batches", "2", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    rows = read_csv(out / "pruning.csv")
    assert [r["model"] for r in rows[::9]] == ["se_cifar_resnet20", "srm_cifar_resnet20"] and len(rows) == 18
    widths = [16] * 3 + [32] * 3 + [64] * 3
    for r in rows:
        assert int(r["pruned_channels"]) == sum(round(float(r["fraction"]) * c) for c in widths)
    for run, model in ((se_run, "se_cifar_resnet20"), (srm_run, "srm_cifar_resnet20")):
        unpruned = [float(r["acc1"]) for r in rows if r["model"] == model and float(r["fraction"]) == 0]
        assert len(unpruned) == 3 and unpruned == [_validate(run, tmp_path / model)] * 3
    gate_means = read_csv(out / "mean_gates.csv")
    assert len(gate_means) == 2 * sum(widths)
    assert legends == [["se_cifar_resnet20: lowest mean gate", "se_cifar_resnet20: random (2 seeds, ±std)",
                        "srm_cifar_resnet20: lowest mean gate", "srm_cifar_resnet20: random (2 seeds, ±std)", "lines=4"]]
    assert (out / "pruning.png").stat().st_size > 5_000 and "| 50 % |" in (out / "pruning.md").read_text()


def test_gate_statistics(swept: tuple[Path, str], se_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    srm_run = swept[0] / "runs" / "avg+std" / "seed_0"
    out = tmp_path / "gates"
    assert gates.main([str(srm_run), str(se_run), "--limit_batches", "2", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert "srm_cifar_resnet20" in (out / "summary.md").read_text()
    for model in ("srm_cifar_resnet20", "se_cifar_resnet20"):
        folder = out / model
        blocks = read_csv(folder / "gate_distributions.csv")
        assert [b["block"] for b in blocks] == [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(3)]
        assert all(int(b["samples"]) == VAL_SAMPLES for b in blocks)
        channel_means = read_csv(folder / "channel_means.csv")
        for block in blocks:
            mine = [float(r["mean_gate"]) for r in channel_means if r["block"] == block["block"]]
            assert len(mine) == int(block["channels"])
            assert float(block["mean"]) == pytest.approx(sum(mine) / len(mine), rel=1e-9)
            assert 0 <= float(block["min"]) <= float(block["p50"]) <= float(block["max"]) <= 1
        for block in ("layer3.0", "layer3.1", "layer3.2"):
            per_class = read_csv(folder / f"per_class_{block}.csv")
            assert [r["class"] for r in per_class] == [str(k) for k in range(10)]
            assert len(per_class[0]) == 1 + 64
        assert not (folder / "per_class_layer2.2.csv").exists()
        for figure in ("gate_distributions.png", "per_class_gates.png"):
            assert (folder / figure).stat().st_size > 5_000


@pytest.mark.parametrize("command, args, message", [
    (pruning.main, ["/no/such/run"], "/no/such/run"),
    (gates.main, ["/no/such/run"], "/no/such/run"),
    (sweep.main, ["--config", "quickstart.yaml"], "--key"),
    (sweep.main, ["--config", "quickstart.yaml", "--preset", "pooling", "--values", "[[avg], [avg]]"], "repeat"),
])
def test_user_errors_are_one_line_and_exit_2(command, args, message, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert command([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not out.exists() or not any(p.name != "sweep.yaml" for p in out.iterdir())


def test_collect_of_a_folder_without_runs_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert sweep.main(["--collect", str(tmp_path), "--key", "model.backbone.pooling", "--out", str(tmp_path / "o")]) == 2
    assert "no run folders" in capsys.readouterr().err


def test_python_dash_m_entry_point_prints_the_folder_last(swept: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "collected"
    result = subprocess.run([sys.executable, "-m", "recal.commands.sweep", "--collect", str(swept[0]), "--out", str(out)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                            cwd=Path(__file__).resolve().parents[1], stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(out)
    assert (out / "table.csv").read_text() == (swept[0] / "table.csv").read_text()

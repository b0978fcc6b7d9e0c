"""The GPU suite (benchmarks/gpu_suite.py) in its tiny CPU mode, where only torch and torchvision exist.

A GPU machine may lack Lightning, fvcore, jsonargparse and the rest of recal's dependencies:
the suite runs in a process that cannot import them, under bf16 autocast and channels_last,
and writes every section's rows — each network, each gate's node against the plain composition,
the goals with met / missed, the per-device choice — to its Markdown and CSV tables. The table is
on disk row by row (a run cut short keeps what it finished); a section that fails becomes an error
row and the next one runs; sections past the time budget are written as skipped.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks import gpu_suite, timing

ROOT = Path(__file__).resolve().parents[1]
UNAVAILABLE = ("lightning", "pytorch_lightning", "fvcore", "jsonargparse", "torchmetrics", "rich", "matplotlib",
               "timm", "yaml", "scipy", "sklearn", "skimage", "onnx", "onnxruntime", "pycocotools")


@pytest.fixture(scope="module")
def suite_rows(tmp_path_factory) -> tuple[list[dict], str, Path]:
    out = tmp_path_factory.mktemp("gpu_suite")
    script = textwrap.dedent(f"""
        import sys
        for name in {UNAVAILABLE!r}:  # None in sys.modules: importing it fails as for a package not installed
            sys.modules[name] = None
        import torch
        torch.set_num_threads(2)
        from benchmarks import gpu_suite
        gpu_suite.main(["--device", "cpu", "--precision", "bf16", "--channels-last", "--tiny",
                        "--compiled", "srm_cifar_resnet20", "--out", {str(out)!r}])
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in {UNAVAILABLE!r} and sys.modules[m] is not None)
        assert not leaked, leaked
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "gpu_suite.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, (out / "gpu_suite.md").read_text(), out


def _section(rows: list[dict], name: str) -> list[dict]:
    return [r for r in rows if r["section"] == name]


def test_every_section_wrote_its_rows(suite_rows) -> None:
    rows, markdown, _ = suite_rows
    assert not [r for r in rows if r["measurement"] in ("error", "skipped")]
    train = _section(rows, "train, eager")
    assert [r["measurement"].split(",")[0] for r in train] == [gpu_suite.BASELINE, *gpu_suite.GOAL_NETWORKS]
    assert train[0]["ratio"] == "1.000" and all(float(r["value"]) > 0 for r in train)
    inference = _section(rows, "inference, fused")
    assert [r["measurement"].split(",")[0] for r in inference] == ["fused resnet50", "fused srm_resnet50",
                                                                  "fused se_resnet50"]
    assert len(_section(rows, "train, eager, equal multiply-adds")) == 1 + len(gpu_suite.THROUGHPUT_NETWORKS)
    assert len(_section(rows, "recalibrated torchvision networks")) == 3 + 2 * len(gpu_suite.RECALIBRATED)
    compiled = _section(rows, "train, torch.compile")
    assert [r["measurement"].split(",")[0] for r in compiled] == ["compiled srm_cifar_resnet20"]
    assert compiled[0]["note"].startswith("compile + first step")
    assert len(_section(rows, "recal compiled kernels")) == 1
    assert "cpu, bf16 autocast, channels_last" in markdown and "torchvision" in markdown
    for row in rows:  # the Markdown holds the same rows as the CSV
        assert f"| {row['section']} | {row['measurement']} |" in markdown


def test_goals_say_met_or_missed_with_the_gap(suite_rows) -> None:
    rows, _, _ = suite_rows
    train = {r["measurement"].split(",")[0]: float(r["ratio"]) for r in _section(rows, "train, eager")}
    inference = {r["measurement"].split(",")[0]: float(r["ratio"]) for r in _section(rows, "inference, fused")}
    goals = _section(rows, "goals")
    assert [g["measurement"] for g in goals] == [
        "resnet50 train ≥ 0.99×", "srm_resnet50 train ≥ 0.95×", "se_resnet50 train ≥ 0.95×", "ge_resnet50 train ≥ 0.90×",
        "fused srm_resnet50 inference ≥ 0.97×"]
    measured = [train["resnet50"], train["srm_resnet50"], train["se_resnet50"], train["ge_resnet50"],
                inference["fused srm_resnet50"]]
    for goal, ratio, target in zip(goals, measured, (0.99, 0.95, 0.95, 0.90, 0.97)):
        assert float(goal["ratio"]) == pytest.approx(ratio, abs=1e-3)
        assert goal["note"] == ("met" if ratio >= target else f"missed by {target - ratio:.3f}")


def test_the_nodes_section_times_every_gate_and_names_the_choice(suite_rows) -> None:
    rows, _, _ = suite_rows
    nodes = _section(rows, "fused nodes")
    blocks = [r for r in nodes if " block end " in r["measurement"]]
    assert len(blocks) == len(gpu_suite.GATE_NODES) * 4
    assert all(r["note"] in ("fused faster", "plain faster") and float(r["ratio"]) > 0 for r in blocks)
    networks = [r for r in nodes if " train step" in r["measurement"]]
    assert [r["measurement"].split(" train step")[0] for r in networks] == [
        "srm_resnet50", "se_resnet50", "eca_resnet50", "ge_resnet50", "ge_resnet50"]
    choice = nodes[-1]
    assert choice["measurement"] == "choice for cpu"
    assert "lists ['gated_add', 'global_dot', 'pooled_block_end']" in choice["note"]


def test_rows_reach_the_disk_as_they_are_measured(tmp_path) -> None:
    table = gpu_suite.Table(tmp_path)
    table.header("t", ["a line"])
    table.add("s", "first", 1.0, "img/s", 1.0, "base")
    with open(tmp_path / "gpu_suite.csv", newline="") as f:  # before the table is closed
        assert [r["measurement"] for r in csv.DictReader(f)] == ["first"]
    assert "| s | first | 1.00 | img/s | 1.000 | base |" in (tmp_path / "gpu_suite.md").read_text()
    table.close()


def test_a_failing_section_is_a_row_and_a_late_one_is_skipped(tmp_path) -> None:
    args, setting = gpu_suite.parse(["--tiny", "--out", str(tmp_path), "--budget-s", "0"])
    table = gpu_suite.Table(tmp_path)

    def broken(suite):
        raise RuntimeError("CUDA error: no kernel image is available\nmore")
    suite = gpu_suite.Suite(args, setting, table)
    with timing.using(setting):
        assert gpu_suite._guarded(suite, "fused nodes", broken) is None
        assert suite.over_budget("torch.compile")
    table.close()
    rows = table.rows
    assert rows[0]["measurement"] == "error" and rows[0]["note"] == "RuntimeError: CUDA error: no kernel image is available"
    assert rows[1]["measurement"] == "skipped" and "--budget-s 0" in rows[1]["note"]

"""``python -m recal.complexity``: the eight paper rows from instantiated models, beside the papers' GFLOPs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recal import complexity
from recal.analysis.tables import read_csv
from recal.models import create_model

# model → (params, paper GFLOPs, our v1 conv+linear GMACs)
PAPER_ROWS = {
    "resnet50": (25_557_032, 3.86, 3.858),
    "se_resnet50": (28_088_024, 3.87, 3.860),
    "ge_resnet50": (31_121_704, 3.87, 3.863),
    "srm_resnet50": (25_617_448, 3.88, 3.858),
    "resnet101": (44_549_160, 7.58, 7.570),
    "se_resnet101": (49_326_872, 7.60, 7.575),
    "ge_resnet101": (53_578_024, 7.60, 7.579),
    "srm_resnet101": (44_679_208, 7.62, 7.570),
}


def _last_line(capsys: pytest.CaptureFixture) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_default_table_is_specs_eight_rows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert complexity.main(["--full", "false", "--out", str(tmp_path)]) == 0
    assert _last_line(capsys) == str(tmp_path)
    rows = {r["model"]: r for r in read_csv(tmp_path / "complexity.csv")}
    assert list(rows) == list(PAPER_ROWS)
    markdown = (tmp_path / "complexity.md").read_text()
    for name, (params, paper, ours) in PAPER_ROWS.items():
        with torch.device("meta"):  # shapes only: counting needs no memory or initialisation
            recount = sum(p.numel() for p in create_model(name, 1000).parameters())  # here, not by the tool
        row = rows[name]
        assert recount == params == int(row["params"])
        assert row["reference params"] == f"{params:,}"
        assert row["layout"] == "v1" and row["input"] == "224"
        assert float(row["paper GFLOPs"]) == paper
        assert round(int(row["macs"]) / 1e9, 3) == ours
        assert float(row["Δ GMACs"]) == pytest.approx(ours - paper, abs=1e-3)
        assert abs(ours - paper) <= 0.05
        # ours beside the paper's on one Markdown row
        assert f"| {params:,} | {params:,} | {ours:.3f} | {paper:.2f} |" in markdown
    assert (tmp_path / "complexity.png").stat().st_size > 10_000 and (tmp_path / "complexity.pdf").is_file()


def test_configs_names_input_size_and_full_count(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert complexity.main(["quickstart.yaml", "srm_cifar_resnet20", "--input_size", "64", "--out", str(tmp_path / "a")]) == 0
    assert complexity.main(["--config", "quickstart.yaml", "--out", str(tmp_path / "b")]) == 0
    from_config, from_name = read_csv(tmp_path / "a" / "complexity.csv")
    (at_32,) = read_csv(tmp_path / "b" / "complexity.csv")
    assert from_config["source"].endswith("quickstart.yaml") and from_name["source"] == "model name"
    assert from_config["params"] == from_name["params"] == at_32["params"] == "273818"
    assert from_config["macs"] == from_name["macs"] and from_config["input"] == "64" and at_32["input"] == "32"
    # every convolution grows 4× at twice the side; the head (64·10) and SRM's CFC (C·2 per block) do not
    fixed = 64 * 10 + 2 * (3 * 16 + 3 * 32 + 3 * 64)
    assert int(from_name["macs"]) - fixed == 4 * (int(at_32["macs"]) - fixed)
    assert int(at_32["fvcore all ops"]) > int(at_32["macs"])  # BatchNorm, pooling on top
    assert from_config["paper GFLOPs"] == "" and from_config["layout"] == "—"


def test_as_built_layout_counts_torchvisions_v15(tmp_path: Path) -> None:
    assert complexity.main(["resnet50", "--layout", "as_built", "--full", "false", "--out", str(tmp_path)]) == 0
    (row,) = read_csv(tmp_path / "complexity.csv")
    assert row["layout"] == "v1.5" and round(int(row["macs"]) / 1e9, 3) == 4.089  # torchvision's figure


def test_unknown_model_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert complexity.main(["srm_resnet5", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "srm_resnet5" in err[0]
    assert not (tmp_path / "x").exists()

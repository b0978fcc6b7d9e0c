"""The complexity counter (recal/analysis/complexity.py) and ``python -m recal.commands.complexity``.

The command's default table is the eight paper rows from instantiated models, beside the
papers' GFLOPs (recal/analysis/paper_numbers.py) and equal to the golden numbers
(tests/golden_numbers.csv); the counter itself is checked on networks small enough to count
by hand.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from recal.analysis.complexity import cfc_macs, count_macs, count_parameters
from recal.analysis.golden_numbers import read_golden
from recal.analysis.paper_numbers import PAPER_FIGURES, PAPER_MODELS
from recal.analysis.tables import read_csv
from recal.commands import complexity
from recal.models import create_model

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fvcore.nn import FlopCountAnalysis

GOLDEN = read_golden()
# model → (params of the official code, paper GFLOPs, our v1 conv+linear multiply-adds)
PAPER_ROWS = {name: (PAPER_FIGURES[(name, None, 1000)].exact_params, PAPER_FIGURES[(name, None, 1000)].gflops,
                     GOLDEN[name]["macs"]) for name in PAPER_MODELS}


def _last_line(capsys: pytest.CaptureFixture) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_default_table_is_specs_eight_rows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert complexity.main(["--full", "false", "--out", str(tmp_path)]) == 0
    assert _last_line(capsys) == str(tmp_path)
    rows = {r["model"]: r for r in read_csv(tmp_path / "complexity.csv")}
    assert list(rows) == list(PAPER_ROWS)
    markdown = (tmp_path / "complexity.md").read_text()
    for name, (params, paper, macs) in PAPER_ROWS.items():
        ours = round(macs / 1e9, 3)
        with torch.device("meta"):  # shapes only: counting needs no memory or initialisation
            recount = sum(p.numel() for p in create_model(name, 1000).parameters())  # here, not by the tool
        row = rows[name]
        assert recount == params == int(row["params"]) == GOLDEN[name]["params"]
        assert row["reference params"] == f"{params:,}"
        assert row["layout"] == "v1" and row["input"] == "224"
        assert float(row["paper GFLOPs"]) == paper
        assert int(row["macs"]) == macs and float(row["GMACs"]) == ours
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


def test_a_fine_tuning_config_is_counted_without_its_weights_file(tmp_path: Path) -> None:
    assert complexity.main(["dtd/r50_dtd_finetune.yaml", "--full", "false", "--out", str(tmp_path)]) == 0
    (row,) = read_csv(tmp_path / "complexity.csv")
    assert (row["params"], row["macs"]) == (str(GOLDEN["dtd/r50_dtd.yaml"]["params"]), str(GOLDEN["dtd/r50_dtd.yaml"]["macs"]))


# -------------------------------------------------------------- the counter itself


class TinyNet(nn.Sequential):
    def __init__(self, srm: bool = False) -> None:
        from recal.layers.srm import SRM

        super().__init__(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            *([SRM(8)] if srm else []),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 5),
        )


def test_count_parameters_is_the_numel_sum() -> None:
    model = TinyNet(srm=True)
    assert count_parameters(model) == 3 * 8 * 9 + 2 * 8 + 4 * 8 + 8 * 5 + 5


def test_conv_linear_only_counts_by_hand() -> None:
    conv, linear = 10 * 10 * 8 * 3 * 9, 8 * 5
    assert count_macs(TinyNet(), 10) == conv + linear
    assert count_macs(TinyNet(srm=True), 10) == conv + linear + 8 * 2
    assert cfc_macs(TinyNet(srm=True)) == 16


@pytest.mark.parametrize("srm", [False, True])
def test_full_count_is_fvcore_default_plus_cfc(srm: bool) -> None:
    model = TinyNet(srm=srm).eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, 3, 10, 10))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    default = analysis.total()
    full = count_macs(model, 10, conv_linear_only=False)
    assert full == default + (16 if srm else 0)
    assert full > count_macs(model, 10)  # BatchNorm and the adaptive pool count there


def test_full_count_of_resnet50() -> None:
    model = create_model("resnet50", stride_in_1x1=True)
    full = count_macs(model, 224, conv_linear_only=False)
    assert full - GOLDEN["resnet50"]["macs"] == 21174272 + 100352  # BatchNorm + adaptive pool: 3,879,247,872 in all


def test_count_macs_restores_every_training_mode() -> None:
    model = TinyNet(srm=True).train()
    model[1].eval()  # e.g. a frozen BatchNorm
    modes = [m.training for m in model.modules()]
    count_macs(model, 10)
    assert [m.training for m in model.modules()] == modes
    model.eval()
    count_macs(model, 10)
    assert not any(m.training for m in model.modules())


def test_count_macs_is_per_image_and_scales_with_the_input() -> None:
    # conv MACs grow with the area; the linear head and the CFC do not
    small, large = count_macs(TinyNet(srm=True), 10), count_macs(TinyNet(srm=True), 20)
    assert large - 16 - 40 == 4 * (small - 16 - 40)


def test_count_macs_follows_the_parameter_dtype() -> None:
    assert count_macs(TinyNet(srm=True).double(), 10) == count_macs(TinyNet(srm=True), 10)


def test_count_macs_does_not_touch_batchnorm_statistics() -> None:
    model = TinyNet(srm=True).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model, 10)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)

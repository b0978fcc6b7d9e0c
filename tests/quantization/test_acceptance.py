"""The int8 study on trained networks of the embedded default: plain, SE, SRM, GE and ECA CIFAR-ResNet-20s.

Each network is trained for three epochs of the quickstart (val top-1 ≥ 90 %, asserted), then
``python -m recal.quantize`` runs every variant on all five with a small calibration (min/max
observer, 2 batches), a 4-batch qat fine-tune and the per-block sensitivity.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pytest

from recal import quantize
from recal.analysis.tables import read_csv
from recal.quantization.study import CSV_COLUMNS
from recal.quantization.variants import VARIANTS
from tests.cli_runner import last_value, run_cli, run_dirs

NETWORKS = ("cifar_resnet20", "se_cifar_resnet20", "srm_cifar_resnet20", "ge_cifar_resnet20", "eca_cifar_resnet20")
EPOCHS = "3"  # measured: 2 epochs leave the plain network at 79 %; 3 (cosine over 3) reach 97.8-99.2 %
# measured with these options (2 min/max calibration batches, 4-batch qat): agreement with fp32 on the
# 360 val images ≥ 99.4 % (post-training) and ≥ 98.0 % (qat) for plain, SE, SRM and ECA; GE is the
# sensitive one: 94.7 % with its gate int8 (95.0 % per-tensor), 93.1 % after qat, 99.7 % with its gate
# float; the bounds leave a few images
PTQ_AGREEMENT, QAT_AGREEMENT = 0.92, 0.90
# GE with its gate in int8 depends on the trained weights more than on anything the flow does: over
# eight 3-epoch fits of ge_cifar_resnet20 (seeds 0-3, before and after a change of its gather's
# summation order) int8_gates / per_tensor agreed on 69-94 % of the images, qat on 91-98 %, while
# float_gates stayed at 99.7-100 %; its int8-gate bounds are below that spread (a broken conversion
# agrees on ~10 %)
GE_INT8_GATE_AGREEMENT, GE_QAT_AGREEMENT = 0.60, 0.85


def agreement_bound(model: str, variant: str) -> float:
    if model.startswith("ge_") and variant in ("int8_gates", "per_tensor"):
        return GE_INT8_GATE_AGREEMENT
    if variant == "qat":
        return GE_QAT_AGREEMENT if model.startswith("ge_") else QAT_AGREEMENT
    return PTQ_AGREEMENT


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name → run folder of a quickstart fit of that network."""
    runs = {}
    for name in NETWORKS:
        out = tmp_path_factory.mktemp(name)
        assert run_cli(["fit", "--config", "quickstart.yaml", "--model.init_args.backbone.name", name,
                        "--trainer.max_epochs", EPOCHS, "--model.init_args.lr_scheduler.init_args.T_max", EPOCHS],
                       out) == 0
        (run,) = run_dirs(out)
        assert last_value(run, "val/acc1") >= 0.90, name  # the premise: a network worth quantizing
        runs[name] = run
    return runs


@pytest.fixture(scope="session")
def study(trained: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The output folder of one study over the five runs, and the command's stdout."""
    out = tmp_path_factory.mktemp("quantize") / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = quantize.main([*map(str, trained.values()), "--calibration_batches", "2", "--observer", "minmax",
                              "--qat_batches", "4", "--latency_repeats", "3", "--out", str(out)])
    assert code == 0
    return out, stdout.getvalue()


def test_every_network_runs_every_variant_with_the_promised_columns(study) -> None:
    out, stdout = study
    rows = read_csv(out / "quantization.csv")
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["model"], r["variant"]) for r in rows] == [(n, v) for n in NETWORKS for v in VARIANTS]
    assert {r["model"]: r["family"] for r in rows} == {"cifar_resnet20": "none", "se_cifar_resnet20": "se",
                                                       "srm_cifar_resnet20": "srm", "ge_cifar_resnet20": "ge",
                                                       "eca_cifar_resnet20": "eca"}
    assert all(float(r["fp32_acc1"]) >= 0.90 and r["val_images"] == "360" for r in rows)
    assert stdout.strip().splitlines()[-1] == str(out)  # the folder last, after the table
    assert "| srm_cifar_resnet20 | float_style |" in stdout
    for name in ("quantization.md", "quantization.png", "quantization.pdf", "sensitivity.png"):
        assert (out / name).is_file()


def test_int8_follows_fp32_on_trained_networks(study) -> None:
    rows = read_csv(study[0] / "quantization.csv")
    applicable = [r for r in rows if r["int8_acc1"]]
    assert len(applicable) == len(rows) - (len(NETWORKS) - 1)  # float_style only where there is SRM
    for r in applicable:
        bound = agreement_bound(r["model"], r["variant"])
        assert float(r["agreement"]) >= bound, (r["model"], r["variant"], r["agreement"])
        drop = float(r["fp32_acc1"]) - float(r["int8_acc1"])
        assert math.isclose(float(r["drop_acc1"]), drop, abs_tol=1e-9)
        # a top-1 change needs a changed prediction (1e-6: the accuracies are float32)
        assert abs(drop) <= 1 - float(r["agreement"]) + 1e-6
        # int8 weights: about a third of the fp32 bytes; GE's global gather is an einsum over its conv's weight
        # (recal/layers/kernels/global_dot.py), not a conv call, so FX leaves those C·k² weights float32: about half
        ceiling = 0.6 if r["model"].startswith("ge_") else 0.45
        assert 0 < int(r["int8_bytes"]) < ceiling * int(r["fp32_bytes"]), (r["model"], r["variant"])
        assert all(float(r[f"latency_ratio_b{b}"]) > 0 for b in (1, 32))


def test_not_applicable_and_identical_variants_say_so(study) -> None:
    rows = {(r["model"], r["variant"]): r for r in read_csv(study[0] / "quantization.csv")}
    for name in NETWORKS:
        style = rows[name, "float_style"]
        if name.startswith("srm_"):
            assert style["int8_acc1"] and not style["note"]
        else:
            assert style["note"] == "not applicable: no SRM style pooling" and not style["int8_acc1"]
    plain = rows["cifar_resnet20", "float_gates"]
    assert "same network as int8_gates" in plain["note"]
    assert plain["int8_acc1"] == rows["cifar_resnet20", "int8_gates"]["int8_acc1"]


def test_sensitivity_has_one_row_per_gated_block(study) -> None:
    out = study[0]
    rows = read_csv(out / "sensitivity.csv")
    for name in NETWORKS[1:]:
        blocks = [r["block"] for r in rows if r["model"] == name]
        assert blocks == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert not any(r["model"] == "cifar_resnet20" for r in rows)
    assert "cifar_resnet20: no gated block (not applicable)" in (out / "sensitivity.md").read_text()
    for r in rows:
        assert math.isclose(float(r["drop_acc1"]), float(r["fp32_acc1"]) - float(r["int8_acc1"]), abs_tol=1e-9)
        assert float(r["agreement"]) >= PTQ_AGREEMENT

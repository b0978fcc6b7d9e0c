"""The throughput benchmark's table in a tiny setting: every model's counts, speeds and ratios, and its files.

The figures themselves are for a quiet machine (benchmarks/RESULTS.md); here one round at
32² checks that each row holds what its columns say.
"""

from __future__ import annotations

import csv

import torch

from recal.analysis.complexity import count_macs, count_parameters
from recal.layers.kernels import dispatch
from recal.models import create_model


def test_the_table_counts_and_times_every_model_against_resnet50(tmp_path, monkeypatch) -> None:
    from benchmarks import throughput

    monkeypatch.setattr(dispatch, "_mode", dispatch._mode)  # the script sets the kernels: restore them after
    threads = torch.get_num_threads()
    try:
        rows = throughput.main(["--models", "se_resnet50", "sknet50", "--size", "32", "--batch", "2",
                                "--repeats", "1", "--kernels", "eager", "--threads", "1", "--malloc", "default",
                                "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert [r["model"] for r in rows] == ["resnet50", "se_resnet50", "sknet50"]
    for row in rows:
        model = create_model(row["model"], input_size=32)
        assert row["params"] == count_parameters(model)
        assert row["GMACs"] == round(count_macs(model, 32) / 1e9, 3)
        assert row["train img/s"] > 0 and row["inference img/s"] > 0
    assert rows[0]["train × resnet50"] == rows[0]["inference × resnet50"] == 1.0
    with open(tmp_path / "throughput.csv") as f:
        assert [r["model"] for r in csv.DictReader(f)] == ["resnet50", "se_resnet50", "sknet50"]
    assert (tmp_path / "throughput.png").stat().st_size > 0 and (tmp_path / "throughput.md").is_file()

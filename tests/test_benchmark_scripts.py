"""Every speed script in benchmarks/ in its tiny mode, under bf16 autocast and channels_last.

The figures are for quiet machines (benchmarks/RESULTS.md); here each script runs one round
at small sizes, as the GPU setting runs it (bf16 autocast, channels_last) but on the CPU, so
that none of them rots: every row it promises is there, with positive times and a finite ratio.
The setting options: CUDA's defaults, and a CUDA request on a machine without one refused in
one line.
"""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from benchmarks import timing
from recal.layers.kernels import dispatch

TINY = ["--tiny", "--precision", "bf16", "--channels-last", "--kernels", "eager", "--threads", "1", "--malloc", "default"]


@pytest.fixture(autouse=True)
def restored_state(monkeypatch):
    """The scripts set threads, kernels and the timing setting for the process: undo it after each test."""
    monkeypatch.setattr(dispatch, "_mode", dispatch._mode)
    monkeypatch.setattr(timing, "_setting", timing._setting)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _check(rows, expected: list[str]) -> None:
    assert [r.target for r in rows] == expected
    for r in rows:
        assert r.baseline_ms > 0 and r.candidate_ms > 0 and math.isfinite(r.ratio) and r.ratio > 0


def test_bench_modules(capsys) -> None:
    from benchmarks import bench_modules

    rows = bench_modules.main(TINY)
    shapes = ["2×32×7×7", "2×64×3×3", "2×128×2×2", "2×256×2×2"]
    _check(rows, [f"{name} fwd+bwd {shape}" for name in ("SRM", "SE", "GE") for shape in shapes])
    assert "cpu, bf16 autocast, channels_last" in capsys.readouterr().out


def test_bench_network() -> None:
    from benchmarks import bench_network

    rows = bench_network.main(TINY)
    _check(rows, [f"{name} train step (batch 2, 64²) / torchvision resnet50" for name in bench_network.GOALS])


def test_bench_fuse() -> None:
    from benchmarks import bench_fuse

    rows = bench_fuse.main(TINY)
    _check(rows, [f"fused {name} eval (batch 2) / fused resnet50" for name in ("srm_resnet50", "se_resnet50")])
    assert rows[1].passed is None  # SE is reported, with no goal


def test_bench_recalibrate() -> None:
    from benchmarks import bench_recalibrate

    rows = bench_recalibrate.main(TINY)
    assert len(rows) == 2 + len(bench_recalibrate.OTHERS)
    _check(rows, [r.target for r in rows])
    assert rows[-1].target.startswith("recalibrate(regnet_x_400mf, srm)")


def test_bench_nodes() -> None:
    from benchmarks import bench_nodes

    rows = bench_nodes.main(TINY)
    _check(rows, [f"{gate} block end 2×{c}×{s}², {path} node / plain" for gate, path in bench_nodes.GATE_NODES.items()
                  for c, s in bench_nodes.stage_shapes(tiny=True)]
           + [f"{name} train step (batch 2, 64²), {path} node / plain" for name, paths in bench_nodes.NETWORK_NODES.items()
              for path in paths])
    assert {r.goal for r in rows} == {"listed for cpu"}


def test_throughput(tmp_path) -> None:
    from benchmarks import throughput

    rows = throughput.main([*TINY, "--models", "srm_resnet50", "--out", str(tmp_path)])
    assert [r["model"] for r in rows] == ["resnet50", "srm_resnet50"]
    assert all(r["train img/s"] > 0 and r["inference img/s"] > 0 for r in rows)
    assert (tmp_path / "throughput.csv").is_file()


def test_bench_data() -> None:
    from benchmarks import bench_data

    rows = bench_data.main(["--tiny", "--workers", "1"])
    assert [r.target.split(",")[0] for r in rows] == ["CIFAR-10 datamodule memory", "ImageNet train pipeline"]
    assert "2000+500 images" in rows[0].target and "64 JPEGs" in rows[1].target
    # the memory figures are positive, not judged: forked from this test process (the whole suite's
    # memory), workers copy on write what a fresh `python -m benchmarks.bench_data` would not
    assert rows[0].baseline_ms > 0 and rows[0].candidate_ms >= 0 and rows[1].ratio > 0


def test_cuda_defaults_follow_researchers_habits(monkeypatch) -> None:
    """On CUDA: bf16 autocast, channels_last and cudnn.benchmark unless told otherwise; the CPU keeps float32."""
    parser = argparse.ArgumentParser()
    timing.add_setting_options(parser)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert timing.apply_setting(parser, parser.parse_args(["--device", "cuda"])) == timing.Setting("cuda", "bf16", True)
    assert torch.backends.cudnn.benchmark
    assert timing.apply_setting(parser, parser.parse_args(["--device", "cuda", "--precision", "32", "--no-channels-last"])) \
        == timing.Setting("cuda", "32", False)
    assert timing.apply_setting(parser, parser.parse_args([])) == timing.Setting("cpu", "32", False)


def test_cuda_without_a_gpu_is_one_line(monkeypatch, capsys) -> None:
    from benchmarks import bench_network

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        bench_network.main(["--device", "cuda"])
    assert exit_.value.code == 2
    assert "--device cuda: no CUDA device is visible to torch" in capsys.readouterr().err


def test_a_setting_places_models_and_batches_and_autocasts() -> None:
    setting = timing.Setting("cpu", "bf16", True)
    model = setting.place(torch.nn.Conv2d(3, 4, 3))
    x = setting.tensor(torch.randn(2, 3, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    with setting.autocast():
        assert model(x).dtype == torch.bfloat16
    assert setting.tensor(torch.arange(3)).dim() == 1
    with timing.using(setting):
        assert "bf16 autocast, channels_last" in timing.machine()
    assert "float32, contiguous" in timing.machine()

"""The embedded demo learns: the coins quickstart fits its own photo, and ``predict`` writes COCO results."""

from __future__ import annotations

import json
import time

import pytest
import torch
from torchvision.io import decode_png

from recal.data.coins import coin_regions
from tests.cli_runner import last_value, run_cli, run_dirs
from tests.detection.runs import CONFIGS

# ten optimiser steps (one epoch of 20 views, batch 2), then the validation on the photo
DEMO_STEPS = ["--data.init_args.train_views", "20", "--trainer.max_epochs", "1"]
# the budget is CPU time per thread: the wall time on an idle machine (a loaded one only waits longer)
DEMO_CPU_SECONDS = 120


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    wall, cpu = time.monotonic(), time.process_time()
    assert run_cli(["fit", "--config", str(CONFIGS / "quickstart.yaml"), *DEMO_STEPS], out) == 0
    cpu_per_thread = (time.process_time() - cpu) / torch.get_num_threads()
    (run,) = run_dirs(out)
    return run, cpu_per_thread, time.monotonic() - wall


def test_the_demo_fits_its_photo_within_two_minutes(trained):
    run, cpu_per_thread, wall = trained
    map_50 = last_value(run, "val/map_50")
    print(f"coins quickstart: mAP@0.5 {map_50:.3f}, mAP {last_value(run, 'val/map'):.3f}; "
          f"{cpu_per_thread:.0f} s CPU per thread, {wall:.0f} s wall")
    assert map_50 >= 0.5
    assert cpu_per_thread <= DEMO_CPU_SECONDS


def test_predict_writes_coco_results_and_drawn_images(trained, tmp_path):
    run = trained[0]
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert run_cli(["predict", "--config", str(CONFIGS / "quickstart.yaml"), "--ckpt_path", str(checkpoint),
                    "--detections.score_threshold", "0.5"], tmp_path) == 0
    folder = run / "predict" / "version_0"
    results = json.loads((folder / "detections.json").read_text())
    assert results and {tuple(sorted(r)) for r in results} == {("bbox", "category_id", "image_id", "score")}
    assert {r["image_id"] for r in results} == {0} and {r["category_id"] for r in results} == {1}
    confident = [r for r in results if r["score"] >= 0.5]
    assert len(confident) >= 12  # of the 24 coins
    h, w = coin_regions().image.shape[:2]
    for r in results:
        x, y, bw, bh = r["bbox"]
        assert 0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= w + 0.01 and y + bh <= h + 0.01
    drawn = decode_png(torch.frombuffer(bytearray((folder / "images" / "0.png").read_bytes()), dtype=torch.uint8))
    assert tuple(drawn.shape) == (3, h, w)
    # red box outlines were drawn over the grey photo
    assert ((drawn[0].int() - drawn[1].int()) > 100).sum() > 100

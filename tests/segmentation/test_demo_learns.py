"""The segmentation quickstart learns: trained on CPU for at most 2 minutes, its photo scores mIoU ≥ 0.5."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli_runner import read_metrics, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

BUDGET_S = 120  # seconds of training
# all-background would score 0.35 (IoU 0.70 background, 0 coin): 0.5 needs coins found
MIOU_FLOOR = 0.5


def test_the_quickstart_overfits_its_photo_within_two_minutes(tmp_path: Path) -> None:
    start = time.monotonic()
    # three of the quickstart's eight epochs (24 steps of 4 crops), a validation on the full photo after each;
    # max_time caps the training at the budget however loaded the machine is
    rc = run_cli(["fit", "--config", "segmentation/quickstart.yaml", "--trainer.max_epochs", "3",
                  "--trainer.max_time", f"00:00:{BUDGET_S // 60:02d}:00"], tmp_path)
    elapsed = time.monotonic() - start
    assert rc == 0
    (run,) = tmp_path.glob("segmentation/quickstart/version_*")
    miou = [float(row["val/miou"]) for row in read_metrics(run) if row.get("val/miou")]
    print(f"segmentation quickstart: val/miou per epoch {[round(m, 3) for m in miou]} in {elapsed:.0f} s")
    assert max(miou) >= MIOU_FLOOR

"""Run ``cli.py`` in-process or as a subprocess, with every output under a test's tmp folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from recal.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def run_cli(args: list[str], out: Path) -> int:
    """``cli.py`` in this process, logging under ``out``; returns the exit status."""
    return main([*args, "--trainer.default_root_dir", str(out), *QUIET])


def run_cli_subprocess(args: list[str], out: Path, timeout: float = 300,
                       env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python cli.py`` in a fresh process (DDP, exit codes, stderr), logging under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    command = [sys.executable, str(ROOT / "cli.py"), *args, "--trainer.default_root_dir", str(out), *QUIET]
    return subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def run_dirs(out: Path) -> list[Path]:
    """Every run folder (``<name>/version_N``) under ``out``, oldest first."""
    return sorted(out.glob("*/version_*"), key=lambda p: (p.parent.name, int(p.name.split("_")[1])))


def checkpoint(path: Path) -> dict:
    """A checkpoint file's contents."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def last_value(run_dir: Path, key: str) -> float:
    """The last logged value of metric ``key``."""
    values = [float(row[key]) for row in read_metrics(run_dir) if row.get(key)]
    assert values, f"{key} never logged in {run_dir}"
    return values[-1]

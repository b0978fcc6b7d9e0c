"""Style transfer end to end through ``cli.py``: the four variants train, predict, compare, errors.

What the task must do: each of IN, BN, BN+SE, BN+SRM trains 30 steps on the embedded demo and
the mean loss of its last 5 steps is below 0.9 × its first 5; ``predict`` writes one image per
input with the input's size (odd sizes included); ``python -m recal.commands.style_compare`` makes the
figure and the table from the four checkpoints; a missing style image, an image-less content
folder and a wrongly shaped VGG file each end in a short message naming the path (exit 2).

The runs use 32-px crops, batch 2, one intra-op thread (4× faster than two on our shared
2-core machines) and a seeded random VGG-16 (allowed explicitly) to stay within the test
budget; the module-scoped fixture trains each variant once and the later tests reuse its
checkpoints.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recal.commands import style_compare
from recal.cli import main
from recal.models.style_net import NORMS, random_vgg16_features
from recal.tasks.style_transfer import StyleTransferTask, perceptual_losses

pytestmark = [pytest.mark.filterwarnings("ignore:STYLE TRANSFER WITH A RANDOMLY INITIALISED"),
              pytest.mark.usefixtures("one_thread")]

TINY = ["--model.init_args.allow_random_vgg", "true",
        "--data.init_args.image_size", "32", "--data.init_args.style_size", "32", "--data.init_args.batch_size", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def config(norm: str) -> str:
    return str(Path(__file__).resolve().parents[2] / "configs" / "style_transfer" / f"{norm}.yaml")


def fit_args(norm: str, root: Path, *extra: str) -> list[str]:
    return ["fit", "--config", config(norm), *TINY, "--trainer.default_root_dir", str(root), *extra]


@pytest.fixture(scope="module")
def runs(one_thread: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each variant trained 30 steps (validation and checkpoint at step 30); norm → run folder."""
    root = tmp_path_factory.mktemp("style_runs")
    folders = {}
    for norm in NORMS:
        assert main(fit_args(norm, root, "--trainer.max_steps", "30", "--trainer.val_check_interval", "30",
                             "--trainer.log_every_n_steps", "1")) == 0
        folders[norm] = root / "style_transfer" / norm / "version_0"
    return folders


def train_losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]


@pytest.mark.parametrize("norm", NORMS)
def test_each_variant_learns_in_30_steps(runs: dict[str, Path], norm: str) -> None:
    losses = train_losses(runs[norm])
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5])


@pytest.mark.parametrize("norm", NORMS)
def test_run_folder_holds_losses_grids_and_a_small_checkpoint(runs: dict[str, Path], norm: str) -> None:
    run = runs[norm]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("train/content_loss", "train/style_loss", "train/tv_loss", "val/loss", "val/style_loss"):
        assert key in header
    assert sorted(p.name for p in (run / "images").iterdir()) == ["val_step000000.png", "val_step000030.png"]
    assert Image.open(run / "images" / "val_step000030.png").size == (4 * 34 + 2, 2 * 34 + 2)  # 4 images, 2 rows
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["norm"] == norm
    assert not any(k.startswith("loss_net.") for k in ckpt["state_dict"])  # VGG-16 is rebuilt, not stored


def test_the_30_step_run_is_deterministic(runs: dict[str, Path], tmp_path: Path) -> None:
    assert main(fit_args("bn_srm", tmp_path, "--trainer.max_steps", "3", "--trainer.val_check_interval", "3",
                         "--trainer.log_every_n_steps", "1")) == 0
    assert train_losses(tmp_path / "style_transfer" / "bn_srm" / "version_0") == train_losses(runs["bn_srm"])[:3]


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # the checkpoint came from another run folder
def test_predict_writes_each_image_at_its_own_size(runs: dict[str, Path], tmp_path: Path) -> None:
    sizes = {"odd.jpg": (250, 333), "nested/tiny.png": (37, 45), "gray.png": (64, 64)}
    rng = np.random.default_rng(0)
    for name, (h, w) in sizes.items():
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        shape = (h, w) if name == "gray.png" else (h, w, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(tmp_path / "in" / name)
    out = tmp_path / "out"
    ckpt = runs["bn_srm"] / "checkpoints" / "last.ckpt"
    code = main(["predict", "--config", config("bn_srm"), "--ckpt_path", str(ckpt),
                 "--data.init_args.predict_dir", str(tmp_path / "in"), "--model.init_args.output_dir", str(out),
                 "--trainer.default_root_dir", str(tmp_path / "runs"),
                 "--trainer.enable_progress_bar", "false"])
    assert code == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["gray.png", "nested/tiny.png", "odd.png"]
    for name, (h, w) in sizes.items():
        image = Image.open((out / name).with_suffix(".png"))
        assert image.size == (w, h) and image.mode == "RGB"


def test_style_compare_makes_the_figure_and_the_tables(runs: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "compare"
    checkpoints = [str(runs[n] / "checkpoints" / "last.ckpt") for n in ("in", "bn_srm", "bn", "bn_se")]
    assert style_compare.main([*checkpoints, "--size", "32", "--max_images", "3", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert Image.open(out / "figure.png").size[0] > Image.open(out / "figure.png").size[1]  # 6 columns, 3 rows
    assert (out / "figure.pdf").stat().st_size > 0
    with open(out / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["variant"] for r in rows] == ["BN", "BN+SE", "BN+SRM", "IN"]  # the paper's column order
    assert all(float(r["style_loss"]) > 0 and float(r["content_loss"]) > 0 and r["step"] == "30" for r in rows)
    assert all(float(r["train_style_loss"]) > 0 for r in rows)
    table = (out / "losses.md").read_text()
    assert table.startswith("| variant | norm | step |") and "BN+SRM" in table


def test_style_compare_rejects_two_checkpoints_of_one_variant(runs: dict[str, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = str(runs["bn"] / "checkpoints" / "last.ckpt")
    assert style_compare.main([ckpt, ckpt, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "'bn'" in err and "Traceback" not in err
    assert style_compare.main([str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "y")]) == 2
    assert str(tmp_path / "missing.ckpt") in capsys.readouterr().err


def user_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "Traceback" not in err
    return err


def test_missing_style_image_is_a_short_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "styles" / "candy.jpg"
    err = user_error(fit_args("bn_srm", tmp_path, "--data.init_args.style_image", str(missing)), capsys)
    assert str(missing) in err


def test_content_folder_without_images_is_a_short_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "train2014"
    empty.mkdir()
    (empty / "captions.json").write_text("{}")
    err = user_error(fit_args("bn_srm", tmp_path, "--data.init_args.content_dir", str(empty)), capsys)
    assert str(empty) in err and "no image files" in err


def test_wrongly_shaped_vgg_weights_are_a_short_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = {f"features.{k}": v for k, v in random_vgg16_features().features.state_dict().items()}
    state["features.0.weight"] = torch.zeros(32, 3, 3, 3)
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    err = user_error(fit_args("bn_srm", tmp_path, "--model.init_args.vgg_weights", str(path)), capsys)
    assert str(path) in err and "features.0.weight" in err


def test_without_vgg_weights_training_needs_explicit_permission(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    err = user_error(fit_args("in", tmp_path, "--model.init_args.allow_random_vgg", "false"), capsys)
    assert "vgg_weights" in err and "allow_random_vgg" in err


def test_loss_conventions_of_fast_neural_style() -> None:
    loss_net = random_vgg16_features(seed=0)
    content = torch.rand(2, 3, 32, 32) * 255
    style = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        features = loss_net(style)
    from recal.models.style_net import gram_matrix

    grams = {k: gram_matrix(v) for k, v in features.items()}
    same = perceptual_losses(loss_net, grams, content, content)
    assert same["content_loss"] == 0  # output = content: no content loss
    as_style = perceptual_losses(loss_net, grams, style.expand(2, -1, -1, -1), content, tv_weight=1e-6)
    assert as_style["style_loss"] < 1e-3 * same["style_loss"]  # output = style: (numerically) no style loss
    assert as_style["tv_loss"] > 0
    total = as_style["content_loss"] + as_style["style_loss"] + as_style["tv_loss"]
    torch.testing.assert_close(as_style["loss"], total)


def test_checkpoints_load_without_the_loss_network() -> None:
    task = StyleTransferTask(norm="bn_srm", width=8, residual_blocks=1, allow_random_vgg=True)
    task.setup("fit")
    saved = {"state_dict": task.state_dict()}
    task.on_save_checkpoint(saved)
    assert not any(k.startswith("loss_net.") for k in saved["state_dict"])
    fresh = StyleTransferTask(norm="bn_srm", width=8, residual_blocks=1, allow_random_vgg=True)
    fresh.setup("fit")  # strict loading: the loss network comes from setup, the rest from the checkpoint
    fresh.load_state_dict(saved["state_dict"])
    predictor = StyleTransferTask(norm="bn_srm", width=8, residual_blocks=1)
    predictor.setup("predict")  # no VGG-16 needed to stylise
    predictor.load_state_dict(saved["state_dict"])
    assert predictor.loss_net is None

"""The SRM paper's style-transfer figure and a loss table, from one checkpoint per variant.

Lee, Kim & Nam (SRM, ICCV 2019) compare feed-forward stylisation networks
(Johnson et al., ECCV 2016) normalised with BN, BN+SE, BN+SRM and IN in one
figure: Style | Content | BN | BN+SE | BN+SRM | IN, one row per content image.
Given the checkpoints of those runs (``python cli.py fit --config
configs/style_transfer/<norm>.yaml``), :func:`compare` writes into its output folder:

- ``figure.png`` / ``figure.pdf``: that figure (columns in the paper's order,
  for the variants given);
- ``losses.md`` / ``losses.csv``: per variant, the last logged training content
  and style losses (the run's ``metrics.csv``, when it sits beside the
  checkpoint) and both losses recomputed now on the figure's content images with
  one loss network for all variants — the comparable numbers.

Content and style come from the first checkpoint's data settings (its
validation images and style image, e.g. the embedded demo) unless
``content_dir`` / ``style_image`` say otherwise; the caller names the datamodule class
that reads them (the command passes :class:`recal.data.content_images.ContentImagesDataModule`),
so that the analysis itself imports no dataset.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from rich.progress import Progress
from torch import Tensor

from recal.analysis.runs import checkpoint_file
from recal.errors import CheckpointMismatchError, InvalidOptionError
from recal.models.style_net import NORM_TITLES, PAPER_ORDER, STYLE_LAYERS, TransformerNet, gram_matrix, stylize
from recal.paths import ensure_creatable, make_folder
from recal.tasks.style_transfer import build_loss_network, perceptual_losses

# Builds the figure's data from keyword arguments (content_dir, style_image, val_dir, image_size,
# val_images, …): eval_list(), eval_transform() and style_image() give the images.
DataModuleClass = Callable[..., Any]


@dataclass
class Variant:
    """One trained stylisation network and what its checkpoint says about its run."""

    path: Path
    norm: str
    net: TransformerNet
    hparams: dict[str, Any]
    data_hparams: dict[str, Any]
    step: int
    train_losses: dict[str, float] = field(default_factory=dict)


def last_logged_losses(ckpt: Path) -> dict[str, float]:
    """The last ``train/content_loss`` and ``train/style_loss`` of the run's metrics.csv, if found."""
    metrics = ckpt.parent.parent / "metrics.csv"
    found: dict[str, float] = {}
    if metrics.is_file():
        with open(metrics, newline="") as f:
            for row in csv.DictReader(f):
                for key in ("content_loss", "style_loss"):
                    if row.get(f"train/{key}"):
                        found[key] = float(row[f"train/{key}"])
    return found


def load_variant(path: str | Path) -> Variant:
    """Rebuild the transformer of a StyleTransferTask checkpoint (no loss network needed)."""
    path = checkpoint_file(path, "last")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # several exception types for a file that is not a checkpoint
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: {exc}") from exc
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if "norm" not in hparams or "state_dict" not in ckpt:
        raise CheckpointMismatchError(f"{path} is not a StyleTransferTask checkpoint (no 'norm' hyperparameter)")
    net = TransformerNet(hparams["norm"], hparams.get("width", 32), hparams.get("residual_blocks", 5))
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointMismatchError(
            f"checkpoint {path} does not fit a {hparams['norm']} TransformerNet: {exc}") from exc
    return Variant(path, hparams["norm"], net.eval(), dict(hparams), dict(ckpt.get("datamodule_hyper_parameters", {})),
                   int(ckpt.get("global_step", 0)), last_logged_losses(path))


def order_variants(variants: Sequence[Variant]) -> list[Variant]:
    """Variants in the paper's column order; two checkpoints of one variant are an error."""
    by_norm: dict[str, Variant] = {}
    for v in variants:
        if v.norm in by_norm:
            raise InvalidOptionError(f"checkpoints {by_norm[v.norm].path} and {v.path} are both {v.norm!r} runs; "
                                     f"give one checkpoint per variant")
        by_norm[v.norm] = v
    return [by_norm[n] for n in PAPER_ORDER if n in by_norm]


def data_module(datamodule_class: DataModuleClass, first: Variant, content_dir: Optional[str],
                style_image: Optional[str], size: int, max_images: int) -> Any:
    """A ``datamodule_class`` with the training data settings of ``first`` and the figure's content, style and size."""
    keep = ("content_dir", "style_image", "style_size", "val_dir", "demo_content", "demo_style")
    kwargs = {k: first.data_hparams[k] for k in keep if k in first.data_hparams}
    if content_dir is not None:
        kwargs["val_dir"] = content_dir
    if style_image is not None:
        kwargs["style_image"] = style_image
    return datamodule_class(**kwargs, image_size=size, val_images=max_images)


def figure(style: Tensor, contents: Tensor, outputs: dict[str, Tensor], path: Path) -> None:
    """Style | Content | one column per variant; rows = content images (0–255 tensors)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [("Style", None), ("Content", contents), *((NORM_TITLES[n], out) for n, out in outputs.items())]
    rows = contents.shape[0]
    fig, axes = plt.subplots(rows, len(columns), figsize=(1.6 * len(columns), 1.6 * rows), squeeze=False)
    for c, (title, images) in enumerate(columns):
        axes[0, c].set_title(title, fontsize=10)
        for r in range(rows):
            image = style if images is None else images[r]
            axes[r, c].imshow(image.permute(1, 2, 0).clamp(0, 255).byte().numpy())
            axes[r, c].axis("off")
    fig.tight_layout(pad=0.2)
    for suffix in (".png", ".pdf"):
        # Roughly one pixel per image pixel, but never so few that the titles become unreadable.
        fig.savefig(path.with_suffix(suffix), dpi=max(100.0, contents.shape[-1] / 1.5))
    plt.close(fig)


def write_tables(rows: list[dict[str, Any]], folder: Path, note: str) -> None:
    """``losses.csv`` and ``losses.md`` with one row per variant."""
    keys = list(rows[0])
    with open(folder / "losses.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(row[k]) for k in keys) + " |" for row in rows]
    (folder / "losses.md").write_text("\n".join(lines) + f"\n\n{note}\n")


def compare(
    checkpoints: Sequence[str],
    datamodule_class: DataModuleClass,
    content_dir: Optional[str] = None,
    style_image: Optional[str] = None,
    size: int = 256,
    max_images: int = 4,
    vgg_weights: Optional[str] = None,
    allow_random_vgg: bool = False,
    out: Optional[str] = None,
) -> Path:
    """Write the figure and the loss tables for ``checkpoints``; return the output folder.

    ``datamodule_class`` reads the content and style images (see the module docstring);
    ``out`` defaults to ``runs/style_compare/<timestamp>``.
    """
    if size < 4 or max_images < 1:
        raise InvalidOptionError(f"--size {size} --max_images {max_images}; expected a size of at least 4 px "
                                 f"and at least one image")
    folder = Path(out) if out else Path("runs/style_compare") / time.strftime("%Y%m%d-%H%M%S")
    ensure_creatable(folder, "output folder")  # before minutes of stylising, not after
    with Progress(transient=True) as progress:
        task = progress.add_task("loading checkpoints", total=len(checkpoints))
        loaded = []
        for path in checkpoints:
            loaded.append(load_variant(path))
            progress.advance(task)
        variants = order_variants(loaded)
        dm = data_module(datamodule_class, variants[0], content_dir, style_image, size, max_images)
        eval_set = dm.eval_list()
        transform = dm.eval_transform()
        contents = torch.stack([transform(eval_set[i][0]) for i in range(len(eval_set))])
        style = dm.style_image()

        # One loss network for every variant, or the numbers are not comparable.
        hp = variants[0].hparams
        weights = vgg_weights or hp.get("vgg_weights")
        loss_net = build_loss_network(weights, allow_random_vgg or bool(hp.get("allow_random_vgg")), hp.get("seed", 0))
        with torch.no_grad():
            features = loss_net(style.unsqueeze(0))
        grams = {k: gram_matrix(features[k]) for k in STYLE_LAYERS}

        task = progress.add_task("stylising and scoring", total=len(variants))
        outputs: dict[str, Tensor] = {}
        rows: list[dict[str, Any]] = []
        for v in variants:
            with torch.no_grad():
                outputs[v.norm] = stylize(v.net, contents)
                losses = perceptual_losses(loss_net, grams, outputs[v.norm], contents,
                                           v.hparams.get("content_weight", 1e5),
                                           v.hparams.get("style_weight", 1e10), tv_weight=0.0)
            rows.append({"variant": NORM_TITLES[v.norm], "norm": v.norm, "step": v.step,
                         "train_content_loss": v.train_losses.get("content_loss"),
                         "train_style_loss": v.train_losses.get("style_loss"),
                         "content_loss": float(losses["content_loss"]), "style_loss": float(losses["style_loss"]),
                         "checkpoint": str(v.path)})
            progress.advance(task)

        make_folder(folder, "output folder")
        figure(thumbnail(style, size), contents, outputs, folder / "figure.png")
        source = weights or f"a randomly initialised VGG-16 (seed {hp.get('seed', 0)}; not meaningful)"
        write_tables(rows, folder, f"train_*: last logged training losses of each run (metrics.csv). "
                     f"content_loss, style_loss: weighted losses of the {len(contents)} figure images at {size} px, "
                     f"one loss network for all variants: {source}.")
    return folder


def thumbnail(image: Tensor, size: int) -> Tensor:
    """A ``size``² centre crop of an image resized so its shorter side is ``size`` (figure column)."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])(image)

"""Write the saved-checkpoint fixtures: tiny checkpoints of every task, and their reference outputs.

Run once, with the code whose checkpoints later code must keep loading::

    python -m tests.saved_checkpoints.write

Each run is ``cli.py fit`` for two steps on data the tests can rewrite byte for byte (the
embedded digits, the DTD and Office-Home fixtures of :mod:`tests.fixtures`, the embedded
style-transfer photos); its ``last.ckpt`` is kept without optimizer state (weights, hyper-
parameters, step). ``references.pt`` holds, per checkpoint, a fixed input with the network's
eval-mode output and features, and the ``val/loss`` that ``cli.py validate --ckpt_path`` logged.
``layers.pt`` does the same for single blocks and conv replacements too large to save as a
whole network (selective kernel, split attention, pre-activation and wide blocks).
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import torch

from tests.cli_runner import run_cli
from tests.fixtures import write_dtd, write_office_home
from tests.saved_checkpoints.layers import layer_references
from tests.saved_checkpoints.networks import fixed_input, network_outputs, task_from_checkpoint

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parents[1] / "configs"
STEPS = ["--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--seed_everything", "0"]
SMALL_DATA = ["--data.init_args.num_classes", "3", "--data.init_args.batch_size", "4",
              "--data.init_args.num_workers", "0", "--data.init_args.image_size", "32",
              "--data.init_args.resize_size", "36"]
CLASSIFICATION = ["cifar_resnet20", "srm_cifar_resnet20", "se_cifar_resnet20", "ge_cifar_resnet20",
                  "cmpe_se_cifar_resnet20", "eca_cifar_resnet20"]


def data_roots(folder: Path) -> dict[str, Path]:
    """The dataset fixtures, written exactly as the loading test writes them."""
    return {"dtd": write_dtd(folder / "dtd", classes=3, per_class=6, size=(40, 48)),
            "office_home": write_office_home(folder / "office_home", classes=3, per_domain=5, size=(36, 40))}


def run_arguments(roots: dict[str, Path]) -> dict[str, list[str]]:
    """checkpoint name → the ``cli.py`` arguments (config and overrides) of its run, without the subcommand."""
    runs = {name: ["--config", str(CONFIGS / "quickstart.yaml"), "--model.init_args.backbone.name", name,
                   "--data.init_args.batch_size", "16"] for name in CLASSIFICATION}
    runs["texture_srm_cifar_resnet20"] = [
        "--config", str(CONFIGS / "dtd" / "srm_r50_dtd.yaml"), "--data.init_args.root", str(roots["dtd"]),
        *SMALL_DATA, "--model.init_args.backbone.name", "srm_cifar_resnet20",
        "--model.init_args.backbone.input_size", "32"]
    runs["multi_domain_dsr_srm_cifar_resnet20"] = [
        "--config", str(CONFIGS / "office_home" / "srm_r18_office_home_dsr.yaml"),
        "--data.init_args.root", str(roots["office_home"]), *SMALL_DATA,
        "--model.init_args.backbone.name", "srm_cifar_resnet20", "--model.init_args.backbone.input_size", "32"]
    runs["style_transfer_bn_srm"] = [
        "--config", str(CONFIGS / "style_transfer" / "bn_srm.yaml"), "--model.init_args.allow_random_vgg", "true",
        "--model.init_args.width", "8", "--model.init_args.residual_blocks", "1",
        "--data.init_args.image_size", "32", "--data.init_args.style_size", "32", "--data.init_args.batch_size", "2",
        "--data.init_args.samples_per_epoch", "8", "--trainer.val_check_interval", "2"]
    return runs


def validation_loss(run: Path) -> float:
    with open(run / "metrics.csv", newline="") as f:
        return [float(row["val/loss"]) for row in csv.DictReader(f) if row.get("val/loss")][-1]


def weights_only(checkpoint: dict) -> dict:
    """The checkpoint without optimizer, scheduler and loop state: what loading for evaluation reads."""
    kept = ("state_dict", "hyper_parameters", "global_step", "epoch", "pytorch-lightning_version")
    return {key: checkpoint[key] for key in kept if key in checkpoint}


def main() -> None:
    references = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        roots = data_roots(tmp / "data")
        for name, arguments in run_arguments(roots).items():
            out = tmp / name
            assert run_cli(["fit", *arguments, *STEPS], out) == 0, name
            (last,) = out.glob("**/checkpoints/last.ckpt")  # style transfer's runs are two folders deep
            checkpoint = torch.load(last, map_location="cpu", weights_only=False)
            saved = HERE / f"{name}.ckpt"
            torch.save(weights_only(checkpoint), saved)
            assert run_cli(["validate", *arguments, "--trainer.limit_val_batches", "1", "--ckpt_path", str(saved)],
                           tmp / f"{name}-validate") == 0, name
            (validated,) = (tmp / f"{name}-validate").glob("**/validate/version_0")
            x = fixed_input()
            references[name] = {"val_loss": validation_loss(validated), "input": x,
                                **network_outputs(task_from_checkpoint(checkpoint), x)}
            print(f"{name}: {saved.stat().st_size / 1e6:.2f} MB, val/loss {references[name]['val_loss']:.6f}")
    torch.save(references, HERE / "references.pt")
    torch.save(layer_references(), HERE / "layers.pt")


if __name__ == "__main__":
    main()

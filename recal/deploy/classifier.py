"""Which checkpoints hold a classification network, that network, and the image size it takes.

A classification network maps images (N, 3, H, W) to logits (N, classes): the ``.model`` of
a :class:`~recal.tasks.ClassificationTask` or of a subclass — TextureTask's single-crop
network (its multi-crop averaging is how the task evaluates, not part of the network), and
MultiDomainTask's shared network when it has no per-domain gates or heads (those choose
parameters by a domain id, an input that is not an image). Anything else, such as
StyleTransferTask's image-to-image network, is refused by name — before its config is
rebuilt when the checkpoint records its task class (``hyper_parameters._class_path``, which
LightningCLI saves). Deployment commands (ONNX export, int8 quantization) share this refusal.
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import nn

from recal.analysis.runs import LoadedRun, checkpoint_file, load_run
from recal.errors import CheckpointMismatchError, InvalidOptionError

# MultiDomainTask options that make the network read a domain id beside the images
PER_DOMAIN_OPTIONS = ("domain_specific_recalibration", "domain_heads")


def refusal(task_class: type, hparams: Mapping[str, Any]) -> Optional[str]:
    """Why a ``task_class`` task with ``hparams`` holds no classification network, or None if it does."""
    from recal.tasks import ClassificationTask, MultiDomainTask

    if not issubclass(task_class, ClassificationTask):
        return (f"a {task_class.__name__} checkpoint, not a classification task; expected ClassificationTask "
                f"or a subclass (TextureTask, MultiDomainTask)")
    if issubclass(task_class, MultiDomainTask):
        per_domain = [option for option in PER_DOMAIN_OPTIONS if hparams.get(option)]
        if per_domain:
            return (f"a MultiDomainTask with {per_domain[0]}: true, whose network also needs a domain id; "
                    f"expected a network of images only ({' and '.join(PER_DOMAIN_OPTIONS)} false)")
    return None


def saved_task_class(path: Path) -> tuple[Optional[type], Mapping[str, Any]]:
    """The task class checkpoint file ``path`` was written by (from its ``_class_path``) and its hparams.

    None for a checkpoint without ``_class_path`` (not written through LightningCLI): its
    rebuilt task is checked instead. A class that cannot be imported here is a one-line error.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: {exc}") from exc
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    class_path = hparams.get("_class_path")
    if not isinstance(class_path, str):
        return None, hparams
    module_name, _, class_name = class_path.rpartition(".")
    try:
        task_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CheckpointMismatchError(f"checkpoint {path} was written by task {class_path!r}, which cannot be "
                                      f"imported here ({exc})") from exc
    if not isinstance(task_class, type):
        raise InvalidOptionError(f"checkpoint {path} is a {class_path!r} checkpoint, not a classification task")
    return task_class, hparams


def check_classification_checkpoint(path: Path) -> None:
    """Refuse checkpoint file ``path`` from its saved task class, without rebuilding anything.

    A checkpoint without ``_class_path`` (not written through LightningCLI) passes here and
    is checked by :func:`classification_network` once its task is rebuilt.
    """
    task_class, hparams = saved_task_class(path)
    reason = refusal(task_class, hparams) if task_class is not None else None
    if reason:
        raise InvalidOptionError(f"checkpoint {path} is {reason}")


def classification_network(task: nn.Module, source: str | Path) -> nn.Module:
    """The (N, 3, H, W) → (N, classes) network of ``task`` (rebuilt from ``source``), or a one-line refusal."""
    reason = refusal(type(task), getattr(task, "hparams", {}))
    if reason:
        raise InvalidOptionError(f"checkpoint {source} is {reason}")
    return task.model


def network_input_size(task: nn.Module, datamodule: Any) -> int:
    """The side of the square images the network was built for and evaluated on.

    The backbone's ``input_size`` when the config sets it (GE's and CMPE-SE's gates are
    built for it); else the datamodule's evaluation crop (``eval_crop_size``, ``image_size``);
    else the architecture family's default (32 for CIFAR networks, 224 for ImageNet ones).
    """
    from recal.models.registry import architecture, parse_model_name

    backbone = task.hparams.get("backbone")
    options = backbone if isinstance(backbone, Mapping) else vars(backbone) if backbone is not None else {}
    for value in (options.get("input_size"), getattr(datamodule, "eval_crop_size", None),
                  getattr(datamodule, "image_size", None)):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    entry = architecture(parse_model_name(options["name"])[0]) if options.get("name") else None
    return entry.family.input_size if entry is not None else 224  # torchvision./timm. classifiers: ImageNet's


@dataclass
class LoadedClassifier:
    """A classification checkpoint rebuilt: its run (task, datamodule), network and input size."""

    run: LoadedRun
    network: nn.Module
    input_size: int


def load_classifier(path: str | Path, config: Optional[str] = None, which: str = "best") -> LoadedClassifier:
    """Rebuild the classification network of a ``.ckpt`` or run folder; refuse any other task in one line."""
    ckpt = checkpoint_file(path, which)
    check_classification_checkpoint(ckpt)
    run = load_run(ckpt, config, which)
    network = classification_network(run.task, ckpt)
    return LoadedClassifier(run, network, network_input_size(run.task, run.datamodule))

"""Initialise a backbone from a weights file: a torchvision state dict or a recal checkpoint.

Fine-tuning (DTD, ``configs/dtd/*_finetune.yaml``) starts from ImageNet weights — torchvision's ResNet files
(``resnet50-0676ba61.pth``: a plain state dict, whose names our v1.5 ResNets share) or a
``best.ckpt``/``last.ckpt`` of a recal run (a Lightning checkpoint whose ``state_dict`` keys
start with ``model.``). The classifier head is never loaded: the new task has its own
classes. Everything else must match name for name and shape for shape, or loading stops
with a :class:`~recal.errors.CheckpointMismatchError` naming the file and what differs —
a ResNet-18 file given to a ResNet-50 must not half-load. ``allow_missing_gates`` lets a
plain network's file initialise its recalibrated version (an SE/SRM/GE ResNet, or a torchvision
or timm network after :func:`recal.models.recalibrate.recalibrate`): the recalibration modules,
absent from the file, keep their own initialisation, and where a gate took the place of the
network's own squeeze-excitation module, that module's tensors in the file are reported as
replaced and not loaded.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from recal.errors import CheckpointMismatchError
from recal.layers.gate import ChannelGate
from recal.models.parts import classifier_path
from recal.tasks.state_dict_differences import state_dict_differences

__all__ = ["LoadedWeights", "load_backbone_weights", "read_state_dict"]


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The model state dict in ``path``: a plain state dict, ``{"model": …}`` or a Lightning checkpoint.

    Files are read with ``weights_only=True`` first; a Lightning checkpoint that stores
    hyperparameter objects needs a full unpickle, which — like any checkpoint — runs code
    from the file: load only files you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointMismatchError(f"weights file {path} does not exist")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            if "weights only" not in str(error).lower():
                raise
            obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # not a torch file at all, or a truncated one
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointMismatchError(f"weights file {path} cannot be read as a PyTorch file: {first_line}") from error
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state = {k[len("model."):]: v for k, v in obj["state_dict"].items() if k.startswith("model.")}
        if not state:
            raise CheckpointMismatchError(f"weights file {path} is a Lightning checkpoint without 'model.' weights")
        return state
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if isinstance(obj, dict) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        return obj
    raise CheckpointMismatchError(
        f"weights file {path} holds neither a state dict nor a Lightning checkpoint (got {type(obj).__name__})")


# Said when only recalibration modules are missing: a plain ResNet file given to a gated ResNet.
GATE_NOTE = " (recalibration modules; allow_missing_gates: true keeps their init)"


@dataclass(frozen=True)
class LoadedWeights:
    """What a weights file did not set: the gate keys it lacks, and its keys of modules the gates replaced."""

    missing_gates: list[str]
    replaced: list[str]

    def summary(self, path: str | Path) -> str:
        """One line for the log: what came from ``path`` and what kept its initialisation."""
        text = f"weights from {path}"
        if self.missing_gates:
            text += f"; {len(self.missing_gates)} recalibration tensor(s) not in the file keep their init"
        if self.replaced:
            text += (f"; {len(self.replaced)} tensor(s) of the squeeze-excitation modules the gates replaced "
                     f"are not loaded ({self.replaced[0]} …)")
        return text


def load_backbone_weights(model: nn.Module, path: str | Path, head: str | None = None, model_name: str | None = None,
                          allow_missing_gates: bool = False) -> LoadedWeights:
    """Copy the weights in ``path`` into ``model``, except its head ``head``; say what was not loaded.

    Raises :class:`~recal.errors.CheckpointMismatchError` naming ``path`` when a key is missing
    from the file, the file has keys the model lacks, or shapes differ — except, under
    ``allow_missing_gates``, the gate modules' keys and the file's keys under a gate's name
    (the module the gate replaced).
    """
    head = head or classifier_path(model)
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(head + ".")}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(head + ".")}
    gates = tuple(name + "." for name, m in model.named_modules() if isinstance(m, ChannelGate))
    loaded = LoadedWeights([k for k in own if k not in state and k.startswith(gates)],
                           [k for k in state if k not in own and k.startswith(gates)])
    if allow_missing_gates:
        own = {k: v for k, v in own.items() if k not in loaded.missing_gates}
        state = {k: v for k, v in state.items() if k not in loaded.replaced}

    def gate_note(missing: list[str]) -> str:
        return GATE_NOTE if gates and all(k.startswith(gates) for k in missing) else ""

    differences = state_dict_differences(own, state, missing_note=gate_note)
    if differences:
        name = model_name or type(model).__name__
        raise CheckpointMismatchError(f"weights file {path} does not fit {name}: " + "; ".join(differences))
    model.load_state_dict(state, strict=False)
    return loaded  # without allow_missing_gates, anything left out was an error above

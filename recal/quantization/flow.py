"""From a float network to an int8 one: fuse, trace with observers, calibrate, convert.

:func:`quantizable_copy` is the float network every variant starts from:
:func:`recal.models.fuse.fuse` merges each BatchNorm into its convolution and SRM's
CFC + BN into one affine (fewer operations to quantize, and no BN whose int8 form
would add rounding), then :func:`~recal.quantization.style_split.split_srm` gives SRM's
statistics a module of their own. :func:`quantize` traces that copy with FX
(``prepare_fx``, observers per the variant's QConfigMapping), runs the calibration
batches through it and converts it (``convert_fx``) to a network of int8 kernels;
``qat`` instead fake-quantizes the copy (``prepare_qat_fx``), fine-tunes it with SGD
for a few batches of the training set and then converts it.

torch.ao's FX quantization is deprecated in favour of PT2E and says so on every call;
those warnings are silenced here. A network FX cannot trace or convert is reported as a
:class:`~recal.errors.UserError` naming the network, the innermost module that fails and
the reason, in one line.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from recal.errors import UserError
from recal.models.fuse import fuse
from recal.quantization.style_split import split_srm
from recal.quantization.variants import qconfig_mapping

# what torch.ao raises for a network or operation it cannot trace, observe or convert
QUANTIZATION_FAILURES = (torch.fx.proxy.TraceError, RuntimeError, NotImplementedError, TypeError,
                         AssertionError, AttributeError, ValueError)


class QuantizationFailed(UserError):
    """A network, or a layer in it, that FX graph-mode int8 quantization cannot handle."""


@contextmanager
def quiet_torch_ao() -> Iterator[None]:
    """Silence torch.ao's deprecation and observer chatter (FX mode warns on every prepare and convert)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def quantizable_copy(model: nn.Module, label: str) -> nn.Module:
    """An eval-mode copy of ``model``: BatchNorms merged (:func:`~recal.models.fuse.fuse`), SRM split.

    Fusion reads conv → BN pairs off the FX-traced graph, so an untraceable network fails here first.
    """
    try:
        return split_srm(fuse(model)).eval()
    except QUANTIZATION_FAILURES as error:
        raise _failure(label, "fuse", model, error, _trace_only) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()


def innermost_failing(model: nn.Module, attempt: Callable[[nn.Module], Any]) -> str:
    """The deepest submodule name of ``model`` on which ``attempt`` still fails ("" for the network itself)."""
    for name, module in reversed(list(model.named_modules())):
        if not name:
            continue
        try:
            with quiet_torch_ao():
                attempt(module)
        except QUANTIZATION_FAILURES:
            return name
        except Exception:  # noqa: BLE001  (a part may not run alone; that says nothing about quantization)
            continue
    return ""


def _failure(label: str, stage: str, model: nn.Module, error: BaseException,
             attempt: Optional[Callable[[nn.Module], Any]] = None) -> QuantizationFailed:
    where = innermost_failing(model, attempt) if attempt is not None else ""
    layer = f" at {where} ({type(model.get_submodule(where)).__name__})" if where else ""
    return QuantizationFailed(f"{label}: cannot be quantized with FX graph mode ({stage}){layer}: {_first_line(error)}")


def _trace_only(module: nn.Module) -> None:
    from torch.ao.quantization.fx.tracer import QuantizationTracer

    QuantizationTracer([], []).trace(module)


def prepare(model: nn.Module, variant: str, example: Tensor, label: str, observer: str = "histogram") -> nn.Module:
    """``model`` (a :func:`quantizable_copy`) traced with the observers of ``variant`` (fake quantizers for qat)."""
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    mapping = qconfig_mapping(variant, model, observer)
    try:
        with quiet_torch_ao():
            if variant == "qat":
                return prepare_qat_fx(model.train(), mapping, (example,))
            return prepare_fx(model.eval(), mapping, (example,))
    except QUANTIZATION_FAILURES as error:
        raise _failure(label, "prepare", model, error, _trace_only) from error


def prepare_with(model: nn.Module, mapping: Any, example: Tensor, label: str) -> nn.Module:
    """``model`` traced with the observers of an explicit ``mapping`` (the per-block sensitivity)."""
    from torch.ao.quantization.quantize_fx import prepare_fx

    try:
        with quiet_torch_ao():
            return prepare_fx(model.eval(), mapping, (example,))
    except QUANTIZATION_FAILURES as error:
        raise _failure(label, "prepare", model, error, _trace_only) from error


@torch.inference_mode()
def calibrate(prepared: nn.Module, batches: Sequence[Tensor]) -> None:
    """Run ``batches`` through ``prepared`` (eval mode) so that its observers see the activations."""
    prepared.eval()
    with quiet_torch_ao():
        for x in batches:
            prepared(x)


def convert(prepared: nn.Module, example: Tensor, label: str) -> nn.Module:
    """The int8 network of a calibrated (or fine-tuned) ``prepared`` one, checked to run on ``example``."""
    from torch.ao.quantization.quantize_fx import convert_fx

    try:
        with quiet_torch_ao():
            converted = convert_fx(prepared.eval())
            with torch.inference_mode():
                converted(example)
    except QUANTIZATION_FAILURES as error:
        raise _failure(label, "convert", prepared, error) from error
    return converted


def finetune(prepared: nn.Module, batches: Callable[[], Iterator[tuple[Tensor, Tensor]]], epochs: int,
             lr: float, progress: Any = None, description: str = "") -> None:
    """Quantization-aware fine-tune: SGD (momentum 0.9, no weight decay) on ``batches()`` for ``epochs`` epochs.

    The network is fake-quantized (``prepare_qat_fx``), so the gradient sees int8 rounding
    through straight-through estimators; the learning rate is small because the float
    weights are already trained and only need to settle onto the int8 grid.
    """
    prepared.train()
    for parameter in prepared.parameters():
        parameter.requires_grad_(True)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        bar = progress.add_task(f"{description} epoch {epoch + 1}/{epochs}", total=None) if progress else None
        with quiet_torch_ao():
            for x, y in batches():
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(prepared(x), y)
                loss.backward()
                optimizer.step()
                if bar is not None:
                    progress.advance(bar)
        if bar is not None:
            progress.remove_task(bar)
    prepared.eval()


def quantize(model: nn.Module, variant: str, calibration: Sequence[Tensor], label: str,
             train_batches: Optional[Callable[[], Iterator[tuple[Tensor, Tensor]]]] = None, qat_epochs: int = 1,
             qat_lr: float = 1e-3, progress: Any = None, observer: str = "histogram") -> nn.Module:
    """The int8 network of float ``model`` under ``variant``, calibrated on ``calibration`` (input batches).

    ``model`` itself is left untouched. ``qat`` also needs ``train_batches`` (a callable
    giving one epoch of ``(x, y)``); its observers are calibrated by the fine-tune itself.
    """
    if not calibration:
        raise UserError("no calibration batches: --calibration_batches must be at least 1")
    prepared = prepare(quantizable_copy(model, label), variant, calibration[0], label, observer)
    if variant == "qat":
        if train_batches is None:
            raise ValueError("the qat variant needs train_batches")
        finetune(prepared, train_batches, qat_epochs, qat_lr, progress, f"{label} qat")
    else:
        calibrate(prepared, calibration)
    return convert(prepared, calibration[0], label)

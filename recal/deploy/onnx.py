"""ONNX export of a classification network, checked against onnxruntime on CPU.

The network is exported as inference runs it: :func:`recal.models.fuse.fuse` first (BN
merged into convolutions, SRM's CFC + BN into one affine), then ``torch.onnx.export`` with
the dynamo exporter (``torch.export`` underneath, so recal's layers run their readable
definitions, :mod:`recal.layers.kernels.dispatch`) and a dynamic batch axis; height and
width stay fixed at the size the network was built for (GE's and CMPE-SE's gates depend on
it). The written file is then run by onnxruntime's CPUExecutionProvider at several batch
sizes on fixed random images and compared with PyTorch: with the fused network (what the
exporter translated) and with the unfused eval-mode network (what was trained), as the
largest absolute difference of the logits: within ``tolerance`` (1e-4) where the logits lie
within ±1, within ``tolerance`` times the largest |logit| beyond.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from recal.errors import InvalidOptionError, UserError
from recal.layers.kernels import compiled_kernels, readable_mode
from recal.models.fuse import fuse

TOLERANCE = 1e-4
BATCH_SIZES = (1, 4)
INPUT_NAME, OUTPUT_NAME, BATCH_AXIS = "images", "logits", "batch"
# torch.export specialises a dimension whose example size is 0 or 1: trace with 2 images
EXAMPLE_BATCH = 2


class ExportMismatchError(UserError, RuntimeError):
    """onnxruntime's logits differ from PyTorch's by more than the tolerance allows."""


@dataclass
class BatchCheck:
    """onnxruntime against PyTorch at one batch size: largest absolute logit differences."""

    batch_size: int
    vs_fused: float
    vs_unfused: float
    largest_logit: float

    @property
    def difference(self) -> float:
        return max(self.vs_fused, self.vs_unfused)

    def bound(self, tolerance: float) -> float:
        """``tolerance`` absolute for logits within ±1, relative to the largest |logit| beyond.

        float32 rounding grows with the logits' scale: a deep network with logits near 100
        differs from itself computed in another order by ~1e-3 (measured: README, "Exporting a classifier to ONNX").
        """
        return tolerance * max(1.0, self.largest_logit)


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote and measured."""

    path: Path
    input_shape: tuple[Any, ...]
    opset: int
    export_seconds: float
    tolerance: float
    checks: list[BatchCheck] = field(default_factory=list)

    @property
    def max_difference(self) -> float:
        """The largest difference of any check, against either PyTorch network."""
        return max((c.difference for c in self.checks), default=0.0)

    @property
    def worst(self) -> BatchCheck:
        """The check closest to (or furthest beyond) its bound."""
        return max(self.checks, key=lambda c: c.difference / c.bound(self.tolerance))

    @property
    def passed(self) -> bool:
        return all(c.difference <= c.bound(self.tolerance) for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "max_difference": self.max_difference, "passed": self.passed}

    def markdown(self, title: str) -> str:
        """The export and its checks as a short Markdown report."""
        rows = [f"| {c.batch_size} | {c.vs_fused:.2e} | {c.vs_unfused:.2e} | {c.largest_logit:.3g} |"
                for c in self.checks]
        verdict = "PASS" if self.passed else "FAIL"
        return "\n".join([
            f"# ONNX export: {title}", "",
            f"- file: {self.path}",
            f"- input `{INPUT_NAME}`: {self.input_shape} (float32, batch axis dynamic); output `{OUTPUT_NAME}`",
            "- network: fused (BN into convs, SRM's CFC + BN into one affine)",
            f"- exporter: torch.onnx dynamo, opset {self.opset}; {self.export_seconds:.1f} s",
            "", "onnxruntime (CPUExecutionProvider) against PyTorch, largest absolute logit difference:", "",
            "| batch | vs fused | vs unfused | max abs logit |", "|---|---|---|---|", *rows, "",
            f"{verdict}: largest difference {self.max_difference:.2e}; allowed {self.tolerance:g} × max(1, max abs "
            "logit)", "",
        ])


def image_shape(input_size: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) of ``input_size`` (a side or a pair), or a one-line refusal."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise InvalidOptionError(f"input_size={input_size!r}: expected a positive integer or (height, width)")
    return size  # type: ignore[return-value]


def check_batch_sizes(batch_sizes: Sequence[int]) -> None:
    """Refuse an empty list or a batch size below 1, naming the list."""
    if not batch_sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in batch_sizes):
        raise InvalidOptionError(f"check_batch_sizes={list(batch_sizes)}: expected one or more positive integers")


def write_onnx(network: nn.Module, path: str | Path, input_size: int | Sequence[int],
               opset: Optional[int] = None) -> int:
    """Export eval-mode ``network`` to ``path`` with a dynamic batch axis; check the file; return its opset."""
    import onnx

    height, width = image_shape(input_size)
    example = torch.randn(EXAMPLE_BATCH, 3, height, width, generator=torch.Generator().manual_seed(0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), readable_mode(), compiled_kernels(False), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's chatter; the onnxruntime check judges the result
        torch.onnx.export(network, (example,), str(path), dynamo=True, verbose=False,
                          dynamic_shapes=({0: torch.export.Dim(BATCH_AXIS, min=1)},),
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                          # one self-contained file (the exporter still splits a model over 2 GB)
                          external_data=False)
    onnx.checker.check_model(str(path))
    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def check_onnx(path: str | Path, fused: nn.Module, unfused: nn.Module, input_size: int | Sequence[int],
               batch_sizes: Sequence[int] = BATCH_SIZES, seed: int = 0) -> list[BatchCheck]:
    """Run ``path`` in onnxruntime on CPU at each batch size; compare with both PyTorch networks."""
    import onnxruntime

    check_batch_sizes(batch_sizes)
    height, width = image_shape(input_size)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # share the CPU as PyTorch was told to
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    checks = []
    for n in batch_sizes:
        images = torch.randn(n, 3, height, width, generator=generator)
        with torch.no_grad(), compiled_kernels(False):
            expected, trained = fused(images), unfused(images)
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
        if tuple(got.shape) != tuple(expected.shape):
            raise ExportMismatchError(f"{path} gives logits of shape {tuple(got.shape)} for {n} images; PyTorch "
                                      f"gives {tuple(expected.shape)}")
        got = torch.from_numpy(got)
        checks.append(BatchCheck(n, (got - expected).abs().max().item(), (got - trained).abs().max().item(),
                                 expected.abs().max().item()))
    return checks


def export_onnx(model: nn.Module, path: str | Path, input_size: int | Sequence[int], *,
                batch_sizes: Sequence[int] = BATCH_SIZES, tolerance: float = TOLERANCE,
                opset: Optional[int] = None, strict: bool = True) -> OnnxExport:
    """Write ``model``, fused, as ONNX to ``path`` and check the file in onnxruntime.

    ``model`` is left as it was (both networks compared are eval-mode copies). ``strict``:
    raise :class:`ExportMismatchError` when a difference exceeds ``tolerance`` (absolute for
    logits within ±1, relative to the largest |logit| beyond, :meth:`BatchCheck.bound`); else the
    caller reads :attr:`OnnxExport.passed` (a command that first writes its report).
    """
    check_batch_sizes(batch_sizes)
    height, width = image_shape(input_size)
    unfused = copy.deepcopy(model).eval()
    network = fuse(model)
    start = time.perf_counter()
    opset_version = write_onnx(network, path, (height, width), opset)
    seconds = time.perf_counter() - start
    result = OnnxExport(Path(path), (BATCH_AXIS, 3, height, width), opset_version, seconds, tolerance,
                        check_onnx(path, network, unfused, (height, width), batch_sizes))
    if strict and not result.passed:
        raise ExportMismatchError(mismatch_message(result))
    return result


def mismatch_message(result: OnnxExport) -> str:
    """The one-line error of an export whose onnxruntime outputs differ too much."""
    worst = result.worst
    return (f"{result.path}: onnxruntime's logits differ from PyTorch's by {worst.difference:.2e} at batch size "
            f"{worst.batch_size} (vs fused {worst.vs_fused:.2e}, vs unfused {worst.vs_unfused:.2e}); expected at "
            f"most {worst.bound(result.tolerance):.2e} (tolerance {result.tolerance:g} × max(1, max abs logit "
            f"{worst.largest_logit:.3g}))")

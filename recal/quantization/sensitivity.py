"""Per-block quantization sensitivity: int8 in one gated block at a time, float32 everywhere else.

A gated block is the module that holds a gate module (``layer2.1`` for ``layer2.1.gate``):
its convolutions, its gate, the gate multiply and its residual addition are quantized with
the default x86 mapping (:func:`~recal.quantization.variants.single_block_mapping`, the
``int8_gates`` choice), the rest of the network stays float, and the top-1 drop against the
float network says how much of the whole network's int8 loss that block accounts for.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from torch import Tensor, nn

from recal.analysis.gates import gated_blocks
from recal.quantization.evaluation import FloatReference, compare
from recal.quantization.flow import calibrate, convert, prepare_with, quantizable_copy
from recal.quantization.variants import single_block_mapping


def gated_block_names(model: nn.Module) -> list[str]:
    """The blocks holding a gate module, in forward order (``layer1.0``, …)."""
    return list(dict.fromkeys(name.rpartition(".")[0] for name in gated_blocks(model)))


def block_sensitivity(model: nn.Module, reference: FloatReference, calibration: Sequence[Tensor], datamodule: Any,
                      num_classes: int, label: str, limit_batches: Optional[int] = None,
                      progress: Any = None, observer: str = "histogram") -> list[dict[str, Any]]:
    """One row per gated block of ``model``: top-1 / top-5 with only that block int8, drop and agreement."""
    rows = []
    for block in gated_block_names(model):
        part = f"{label} ({block} alone)"
        prepared = prepare_with(quantizable_copy(model, part), single_block_mapping(block, observer), calibration[0],
                                part)
        calibrate(prepared, calibration)
        int8 = convert(prepared, calibration[0], f"{label} ({block} alone)")
        scores = compare(int8, reference, datamodule, num_classes, limit_batches, progress, f"{label} {block} int8")
        rows.append({"model": label, "block": block, "fp32_acc1": reference.acc1, "int8_acc1": scores["acc1"],
                     "drop_acc1": reference.acc1 - scores["acc1"], "int8_acc5": scores["acc5"],
                     "agreement": scores["agreement"]})
    return rows

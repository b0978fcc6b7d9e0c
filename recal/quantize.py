"""``python -m recal.quantize``: int8 post-training static quantization of classification checkpoints.

For each checkpoint (a ``.ckpt`` or a run folder; model and data from the run's
config.yaml, or ``--config``) and each variant — gates in float32 or int8, per-tensor
weights, SRM's style statistics in float32, a short quantization-aware fine-tune
(:mod:`recal.quantization.variants`) — an int8 copy is calibrated on the first
``--calibration_batches`` training batches with torch.ao's FX graph mode (x86 backend)
and compared with the float network on the validation set: top-1 / top-5, agreement,
latency at batch 1 and 32, serialized size (:mod:`recal.quantization.study`). With
``--sensitivity`` (on by default) every gated block is also quantized alone. Writes
``quantization.{csv,md,png,pdf}`` and ``sensitivity.{csv,md,png,pdf}`` under ``--out``.

    python -m recal.quantize runs/quickstart/version_0 runs/se/version_0 --calibration_batches 8
"""

from __future__ import annotations

import sys
from typing import Literal, Optional, Sequence

from recal.commands.parser import CommandParser, finish_in_folder, parse_command
from recal.quantization.variants import VARIANTS


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.quantize``."""
    parser = CommandParser(prog="python -m recal.quantize", description=__doc__.split("\n\n")[0])
    parser.add_checkpoint_arguments("classification checkpoints or run folders")
    parser.add_argument("--variants", type=list[str], default=list(VARIANTS),
                        help=f"which variants to run, of {list(VARIANTS)} (default: all)")
    parser.add_argument("--calibration_batches", type=int, default=8, help="training batches that calibrate int8")
    parser.add_argument("--observer", type=Literal["histogram", "minmax"], default="histogram",
                        help="activation calibration: histogram (torch's x86 default, slow) or minmax")
    parser.add_argument("--qat_epochs", type=int, default=1, help="epochs of the qat variant's fine-tune")
    parser.add_argument("--qat_batches", type=Optional[int], default=None,
                        help="training batches per qat epoch (default: the whole training set)")
    parser.add_argument("--qat_lr", type=float, default=1e-3, help="SGD learning rate of the qat fine-tune")
    parser.add_argument("--sensitivity", type=bool, default=True, help="also quantize each gated block alone")
    parser.add_argument("--limit_batches", type=Optional[int], default=None,
                        help="evaluate on the first N validation batches only")
    parser.add_argument("--latency_repeats", type=int, default=20, help="timed forwards per latency (median)")
    parser.add_argument("--labels", type=Optional[list[str]], default=None, help="table names (default: model names)")
    parser.add_argument("--out", type=Optional[str], default=None, help="output folder (default runs/quantize/<timestamp>)")
    return parser


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the command on ``args`` (default ``sys.argv[1:]``); print the table, then the output folder last."""
    cfg = parse_command(build_parser(), args)

    def work(folder):
        from recal.quantization.study import quantization_study

        return quantization_study(cfg.checkpoints, folder, cfg.config, cfg.which, cfg.variants,
                                  cfg.calibration_batches, cfg.qat_epochs, cfg.qat_batches, cfg.qat_lr,
                                  cfg.sensitivity, cfg.limit_batches, cfg.latency_repeats, cfg.labels, cfg.observer)
    return finish_in_folder("quantize", cfg.out, work, "quantization.md")


if __name__ == "__main__":
    sys.exit(main())

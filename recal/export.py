"""``python -m recal.export``: a classification checkpoint as an ONNX model, checked against onnxruntime.

The checkpoint (a ``.ckpt`` or a run folder; model and data from the run's config.yaml, or
``--config``) is rebuilt, its network fused for inference (:func:`recal.models.fuse.fuse`)
and exported with a dynamic batch axis (:mod:`recal.deploy.onnx`); onnxruntime then runs
the file on CPU at each ``--check_batch_sizes`` and its logits are compared with PyTorch's,
fused and unfused. Writes ``<model name>.onnx``, ``export.md`` and ``export.json`` (the
figures) under ``--out``; a difference above ``--tolerance`` is an error (the files stay).
Checkpoints of other tasks (style transfer, multi-domain with per-domain gates) are refused.

    python -m recal.export runs/srm/version_0 --format onnx
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal, Optional, Sequence

from jsonargparse import Namespace

from recal.commands.parser import CommandParser, finish_in_folder, parse_command
from recal.deploy.onnx import (BATCH_SIZES, TOLERANCE, ExportMismatchError, check_batch_sizes, export_onnx,
                               image_shape, mismatch_message)
from recal.errors import InvalidOptionError


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.export``."""
    parser = CommandParser(prog="python -m recal.export", description=__doc__.split("\n\n")[0])
    parser.add_checkpoint_arguments("a .ckpt file or a run folder", many=False)
    parser.add_argument("--format", type=Literal["onnx"], default="onnx", help="what to write")
    parser.add_argument("--input_size", type=Optional[int], default=None,
                        help="image side (default: the backbone's input_size, else the datamodule's, else 32 / 224)")
    parser.add_argument("--check_batch_sizes", type=list[int], default=list(BATCH_SIZES),
                        help="batch sizes at which onnxruntime is compared with PyTorch")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help="largest logit difference allowed: absolute for logits within ±1, relative beyond")
    parser.add_argument("--out", type=Optional[str], default=None, help="output folder (default runs/export/<timestamp>)")
    return parser


def export(cfg: Namespace, folder: Path) -> None:
    """Rebuild, export and check ``cfg.checkpoint`` into ``folder``; raise after writing the report if it fails."""
    from recal.deploy.classifier import load_classifier

    # checked before the (slow) rebuild of the run
    check_batch_sizes(cfg.check_batch_sizes)
    if cfg.input_size is not None:
        image_shape(cfg.input_size)
    if not cfg.tolerance >= 0:
        raise InvalidOptionError(f"--tolerance={cfg.tolerance}: expected a non-negative number")
    loaded = load_classifier(cfg.checkpoint, cfg.config, cfg.which)
    name = loaded.run.model_name
    print(f"exporting {name} from {loaded.run.checkpoint} to ONNX …", file=sys.stderr)
    result = export_onnx(loaded.network, folder / f"{name}.onnx", cfg.input_size or loaded.input_size,
                         batch_sizes=cfg.check_batch_sizes, tolerance=cfg.tolerance, strict=False)
    (folder / "export.json").write_text(json.dumps({"checkpoint": str(loaded.run.checkpoint), "model": name,
                                                    **result.as_dict()}, indent=2) + "\n")
    (folder / "export.md").write_text(result.markdown(f"{name} ({loaded.run.checkpoint})"))
    if not result.passed:
        raise ExportMismatchError(mismatch_message(result))


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the command on ``args`` (default ``sys.argv[1:]``); print the report and the output folder last."""
    cfg = parse_command(build_parser(), args)
    return finish_in_folder("export", cfg.out, lambda folder: export(cfg, folder), "export.md")


if __name__ == "__main__":
    sys.exit(main())

"""``python -m recal.commands.style_compare``: the SRM paper's style-transfer figure and a loss table.

Given one StyleTransferTask checkpoint per variant (``python cli.py fit --config
configs/style_transfer/<norm>.yaml``), writes under ``--out`` the figure Style | Content |
BN | BN+SE | BN+SRM | IN (``figure.{png,pdf}``) and ``losses.{md,csv}``
(:mod:`recal.analysis.style_compare`).

    python -m recal.commands.style_compare runs/style_transfer/{bn,bn_se,bn_srm,in}/version_0/checkpoints/last.ckpt
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from jsonargparse import ActionConfigFile

from recal.analysis.style_compare import compare
from recal.commands.parser import CommandParser, finish_command, parse_command
from recal.data.content_images import ContentImagesDataModule


def build_parser() -> CommandParser:
    """The command line of ``python -m recal.commands.style_compare``."""
    parser = CommandParser(prog="python -m recal.commands.style_compare", description=(
        "The SRM paper's style-transfer figure (Style | Content | BN | BN+SE | BN+SRM | IN) and a table of "
        "content and style losses, from one StyleTransferTask checkpoint per variant."))
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file with any of these options")
    parser.add_argument("checkpoints", nargs="+", type=str,
                        help="StyleTransferTask checkpoints (or run folders), one per variant: bn, bn_se, bn_srm, in")
    parser.add_argument("--content_dir", type=Optional[str], default=None,
                        help="folder of content images (default: the first run's validation images)")
    parser.add_argument("--style_image", type=Optional[str], default=None,
                        help="style image (default: the first run's style image)")
    parser.add_argument("--size", type=int, default=256, help="content images are resized and centre-cropped to this")
    parser.add_argument("--max_images", type=int, default=4, help="rows of the figure")
    parser.add_argument("--vgg_weights", type=Optional[str], default=None,
                        help="torchvision VGG-16 state dict for the loss table (default: the first run's)")
    parser.add_argument("--allow_random_vgg", type=bool, default=False,
                        help="score with a randomly initialised VGG-16 when no weights are known (demos)")
    parser.add_argument("--out", type=Optional[str], default=None,
                        help="output folder (default: runs/style_compare/<timestamp>)")
    return parser


def main(args: Optional[Sequence[str]] = None) -> int:
    """Run the command on ``args`` (default ``sys.argv[1:]``); return the exit status."""
    cfg = parse_command(build_parser(), args)
    # the datamodule that reads the figure's images is chosen here: the analysis imports no dataset
    return finish_command(lambda: compare(cfg.checkpoints, ContentImagesDataModule, cfg.content_dir, cfg.style_image,
                                          cfg.size, cfg.max_images, cfg.vgg_weights, cfg.allow_random_vgg, cfg.out))


if __name__ == "__main__":
    sys.exit(main())

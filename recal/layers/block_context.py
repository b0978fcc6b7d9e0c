"""What a block tells the module placed in it.

Each module declares what it needs through its ``from_block`` constructor: most need the
gated channels only, GE the map size (its global kernel), CMPE-SE the block's inner width
and its image layout.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlockContext:
    """What a gate factory may need to know about the block it is placed in.

    ``channels``: the gated (residual output) channels; ``inner_channels``: the
    width of the block's inner convolutions (CMPE-SE's m = inner / 16);
    ``spatial_size``: the gated map's side at the backbone's ``input_size`` (GE's
    global kernel); ``row_width``: channels per row of CMPE-SE's folded image.
    """

    channels: int
    inner_channels: int
    spatial_size: int | None
    row_width: int = 16

"""The published figures recal's complexity is compared against: parameters and GFLOPs.

The SE, GE and SRM papers print parameters and "GFLOPs" (multiply-adds of the convolution
and linear layers at one 224×224 image, Caffe "v1" ResNet layout) for ResNet-50/101 with
and without their module; the SKNet and CMPE-SE papers print parameters of theirs.
:func:`recal.analysis.complexity.complexity_row` shows a model's figures beside its own
counts, and the tests check recal's counts against them (``tests/analysis/test_paper_numbers.py``).
recal's own counts are pinned apart, in ``tests/golden_numbers.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class PaperFigures:
    """What one model of a paper is compared against.

    ``exact_params`` is an exact parameter count of the official (or a reference)
    implementation, where one is known; ``printed_params`` the paper's rounded figure
    where it is not shown exactly; ``source`` names where the figure comes from, when
    that is not the SE / GE / SRM papers' table; ``gflops`` is the paper's GFLOPs at 224².
    """

    exact_params: Optional[int] = None
    printed_params: Optional[str] = None
    source: Optional[str] = None
    gflops: Optional[float] = None

    @property
    def shown_params(self) -> str:
        """The "reference params" cell of the complexity table: ``25,557,032``, ``27.5M (SKNet paper)``."""
        figure = self.printed_params or f"{self.exact_params:,}"
        return f"{figure} ({self.source})" if self.source else figure


# The SE / GE / SRM papers' comparison: ResNet-50/101 with each module (the complexity command's default rows).
PAPER_MODELS = ("resnet50", "se_resnet50", "ge_resnet50", "srm_resnet50",
                "resnet101", "se_resnet101", "ge_resnet101", "srm_resnet101")

# (model, variant, classes) → its figures. The eight ImageNet parameter counts are exact
# counts of the official code; the rest are as printed.
PAPER_FIGURES: dict[tuple[str, Optional[str], int], PaperFigures] = {
    ("resnet50", None, 1000): PaperFigures(25_557_032, gflops=3.86),
    ("se_resnet50", None, 1000): PaperFigures(28_088_024, gflops=3.87),
    ("ge_resnet50", None, 1000): PaperFigures(31_121_704, gflops=3.87),
    ("srm_resnet50", None, 1000): PaperFigures(25_617_448, gflops=3.88),
    ("resnet101", None, 1000): PaperFigures(44_549_160, gflops=7.58),
    ("se_resnet101", None, 1000): PaperFigures(49_326_872, gflops=7.60),
    ("ge_resnet101", None, 1000): PaperFigures(53_578_024, gflops=7.60),
    ("srm_resnet101", None, 1000): PaperFigures(44_679_208, gflops=7.62),
    # the paper prints 27.5M; the exact count is the one recal's tests have always held SKNet-50 to
    ("sknet50", None, 1000): PaperFigures(27_479_784, "27.5M", "SKNet paper", 4.47),
    ("resnest50", None, 1000): PaperFigures(27_483_240, source="timm resnest50d"),
    ("cmpe_se_preact_resnet164", "double_fc", 10): PaperFigures(printed_params="2.12M", source="CMPE-SE paper"),
    ("cmpe_se_preact_resnet164", "pair_2x1", 10): PaperFigures(printed_params="1.95M", source="CMPE-SE paper"),
    ("cmpe_se_preact_resnet164", "pair_1x1", 10): PaperFigures(printed_params="2.04M", source="CMPE-SE paper"),
}

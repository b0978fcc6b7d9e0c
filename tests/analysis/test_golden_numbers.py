"""The golden numbers (tests/golden_numbers.csv, written by ``python -m recal.commands.golden_numbers``).

One row per model name, CMPE-SE variant and backbone config, as the complexity command
counts it (recal/analysis/golden_numbers.py says how): exact parameters and multiply-adds
of the convolution and linear layers on one image (plus SRM's CFC, C·d per module). A
change to any architecture shows up here first; rewrite the file only together with the
reason.

Every row's classes, input side, layout and parameters are recomputed (on the meta device:
shapes only). Multiply-adds need an fvcore trace of a real model — about ten minutes for
all rows on two CPU cores — so they are recomputed for a representative subset,
:data:`MACS_CHECKED`: every gate family (none, SE, SRM, GE, CMPE-SE with each of its
variants, ECA, CBAM, SK, split attention) and every architecture family (ImageNet basic-block and
bottleneck ResNets, ResNeXt, CIFAR ResNets, the pre-activation ResNet-164, wide ResNets),
and configs with other heads (100, 65 and 47 classes; a fine-tuning config). The eight
ResNet-50/101 rows of the papers' comparison are recomputed exactly by
tests/analysis/test_complexity.py. ``RECAL_ALL_MACS=1`` recomputes every row's multiply-adds.
"""

from __future__ import annotations

import os

import pytest
import torch

from recal.analysis.complexity import count_parameters, counted_backbone
from recal.analysis.golden_numbers import golden_backbone, golden_row, golden_targets, read_golden

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = read_golden()
MACS_CHECKED = (
    # ImageNet basic block, every channel gate
    "resnet18", "se_resnet18", "srm_resnet18", "ge_resnet18", "cmpe_se_resnet18", "eca_resnet18", "cbam_resnet18",
    # bottleneck, grouped bottleneck, and the conv replacements
    "srm_resnet50", "resnext50_32x4d", "sknet50", "resnest50",
    # ResNet-D and ResNeSt-50-fast (equal multiply-adds, the throughput benchmark's pair)
    "resnet50d", "resnest50_fast",
    # CIFAR ResNet, every channel gate
    "cifar_resnet20", "se_cifar_resnet20", "srm_cifar_resnet20", "ge_cifar_resnet20", "cmpe_se_cifar_resnet20",
    "eca_cifar_resnet20", "cbam_cifar_resnet20",
    # pre-activation ResNet-164 with CMPE-SE's other designs
    "cmpe_se_preact_resnet164/pair_2x1", "cmpe_se_preact_resnet164/pair_1x1", "cmpe_se_preact_resnet164/folded_3x3",
    # wide ResNets
    "wrn16_4", "se_wrn16_4", "ge_wrn16_4",
    # configs: CIFAR-10, CIFAR-100, Office-Home (65), DTD fine-tuning (47, its weights file not needed)
    "quickstart.yaml", "cifar/se_wrn16_8_c100.yaml", "office_home/ge_r18_office_home.yaml",
    "dtd/r50_dtd_finetune.yaml",
)
ALL_MACS = os.environ.get("RECAL_ALL_MACS") == "1"


def test_the_file_pins_every_model_and_backbone_config() -> None:
    targets = golden_targets()
    missing = [t for t in targets if t not in GOLDEN]
    stale = [t for t in GOLDEN if t not in targets]
    assert not missing and not stale, (f"tests/golden_numbers.csv lacks {missing} and has {stale} too many; "
                                       "python -m recal.commands.golden_numbers rewrites it")
    assert set(MACS_CHECKED) <= set(GOLDEN)


@pytest.mark.parametrize("target", list(GOLDEN))
def test_golden_numbers_are_what_the_code_computes(target: str) -> None:
    pinned = GOLDEN[target]
    with torch.device("meta"):  # shapes only: reading a config and counting parameters need no real tensors
        backbone, classes, _ = golden_backbone(target)
        counted, layout = counted_backbone(backbone)
        params = count_parameters(counted.build(classes))
    assert {"target": target, "classes": classes, "input": counted.input_size, "layout": layout, "params": params} == \
        {key: value for key, value in pinned.items() if key != "macs"}
    if ALL_MACS or target in MACS_CHECKED:
        assert golden_row(target) == pinned

"""ResNet-D and ResNeSt-50-fast: the two networks of equal multiply-adds that the throughput benchmark compares.

ResNet-D-50 is timm's ``resnet50d`` tensor for tensor (its state dict loads strictly and the
logits agree); ResNeSt-50-fast is the official 2s1x64d model, whose average pool carries each
stage's stride before the split-attention 3×3. Both count 4.33 G multiply-adds at 224², as
the ResNeSt paper's 4.34 GFLOPs say.
"""

from __future__ import annotations

import pytest
import torch

from recal.analysis.complexity import count_macs, count_parameters
from recal.errors import InvalidOptionError
from recal.layers import SplitAttentionConv
from recal.models import create_model


def test_resnet50d_is_timms_resnet50d() -> None:
    import timm

    ours, theirs = create_model("resnet50d").eval(), timm.create_model("resnet50d").eval()
    assert count_parameters(ours) == 25_576_264
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


def test_resnet_d_refuses_the_v1_layout() -> None:
    with pytest.raises(InvalidOptionError, match=r"'resnet50d' does not take option 'stride_in_1x1'.*ResNet-D"):
        create_model("srm_resnet50d", stride_in_1x1=True)
    assert sum(p.numel() for p in create_model("srm_resnet50d").parameters()) > 25_576_264


def test_resnest50_fast_pools_before_the_split_attention_conv() -> None:
    fast, plain = create_model("resnest50_fast"), create_model("resnest50")
    assert count_parameters(fast) == count_parameters(plain)  # the pool moves, no weight does
    seen = {}
    conv = fast.layer2[0].conv2
    assert isinstance(conv, SplitAttentionConv) and conv.avd_first
    def record(key: str):
        def hook(module, args, out) -> None:
            seen[key] = args[0].shape[-1]
        return hook
    conv.conv.register_forward_hook(record("fast"))
    plain.layer2[0].conv2.conv.register_forward_hook(record("plain"))
    with torch.no_grad():
        fast.eval()(torch.randn(1, 3, 64, 64))
        plain.eval()(torch.randn(1, 3, 64, 64))
    assert (seen["fast"], seen["plain"]) == (8, 16)  # layer2's input is 16²: halved before the 3×3, or after


def test_equal_multiply_adds_for_resnet_d_and_resnest_fast() -> None:
    d, fast = (count_macs(create_model(name), 224) / 1e9 for name in ("resnet50d", "resnest50_fast"))
    assert round(d, 2) == round(fast, 2) == 4.33

"""The int8 flow on untrained networks: what each variant leaves in float32, read off the converted graphs."""

from __future__ import annotations

import operator

import pytest
import torch
from torch import Tensor, nn

from recal.errors import InvalidOptionError
from recal.layers.srm import SRM
from recal.models import BackboneConfig
from recal.models.fuse import FusedSRM, fuse
from recal.quantization.flow import QuantizationFailed, quantize
from recal.quantization.style_split import SplitSRM, split_srm, style_modules
from recal.quantization.variants import check_variants, not_applicable

FLOAT_MULS = (operator.mul, torch.mul)
GATED_BLOCKS = 9  # CIFAR-ResNet-20: 3 stages of 3 blocks, one gate each


def network(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = BackboneConfig(name=name).build(10).eval()
    with torch.no_grad():  # trained-looking BN statistics, so that gates and activations are not degenerate
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
    return model


def batches(count: int = 2) -> list[Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(4, 3, 32, 32, generator=generator) for _ in range(count)]


class MulRecorder(torch.fx.Interpreter):
    """Runs a converted graph and records every multiply (and sigmoid): its target and its tensor operands."""

    def __init__(self, module: torch.fx.GraphModule) -> None:
        super().__init__(module)
        self.muls: list[tuple[object, list[Tensor]]] = []

    def call_function(self, target, args, kwargs):
        if target in FLOAT_MULS or target is torch.ops.quantized.mul or target is torch.sigmoid:
            # the two operands; quantized::mul's further arguments are the output scale and zero point
            self.muls.append((target, [a for a in args[:2] if isinstance(a, Tensor)]))
        return super().call_function(target, args, kwargs)


def recorded_muls(int8: torch.fx.GraphModule, x: Tensor) -> list[tuple[object, list[Tensor]]]:
    recorder = MulRecorder(int8)
    with torch.inference_mode():
        recorder.run(x)
    return recorder.muls


def gate_multiplies(muls):
    """The broadcast ``x * gate`` multiplies: an (N, C, H, W) map times an (N, C, 1, 1) gate."""
    return [(t, ops) for t, ops in muls if t is not torch.sigmoid and len(ops) == 2 and all(o.dim() == 4 for o in ops)
            and {tuple(o.shape[2:]) == (1, 1) for o in ops} == {True, False}]


@pytest.fixture(scope="module")
def int8_networks() -> dict[tuple[str, str], nn.Module]:
    """SE and SRM CIFAR-ResNet-20s under the variants the graph tests read."""
    calibration = batches()
    wanted = [("se_cifar_resnet20", "float_gates"), ("se_cifar_resnet20", "int8_gates"),
              ("srm_cifar_resnet20", "float_gates"), ("srm_cifar_resnet20", "int8_gates"),
              ("srm_cifar_resnet20", "float_style"), ("srm_cifar_resnet20", "per_tensor")]
    return {(name, variant): quantize(network(name), variant, calibration, name, observer="minmax")
            for name, variant in wanted}


@pytest.mark.parametrize("name", ["se_cifar_resnet20", "srm_cifar_resnet20"])
def test_float_gates_multiply_in_float32_and_int8_gates_in_int8(int8_networks, name: str) -> None:
    x = batches(1)[0]
    floats = gate_multiplies(recorded_muls(int8_networks[name, "float_gates"], x))
    assert len(floats) == GATED_BLOCKS
    for target, operands in floats:  # dequantized inputs, a plain float multiply
        assert target in FLOAT_MULS and all(not o.is_quantized and o.dtype == torch.float32 for o in operands)
    ints = gate_multiplies(recorded_muls(int8_networks[name, "int8_gates"], x))
    assert len(ints) == GATED_BLOCKS
    for target, operands in ints:
        assert target is torch.ops.quantized.mul and all(o.is_quantized for o in operands)


def test_float_style_keeps_srm_statistics_float_and_the_rescale_int8(int8_networks) -> None:
    x = batches(1)[0]

    def style_integration(muls):  # the fused CFC: (N, C, d) statistics times the (C, d) weight
        return [(t, ops) for t, ops in muls if t is not torch.sigmoid and len(ops) == 2 and ops[0].dim() == 3]

    def sigmoid_inputs(muls):
        return [ops[0] for t, ops in muls if t is torch.sigmoid]
    floats = style_integration(recorded_muls(int8_networks["srm_cifar_resnet20", "float_style"], x))
    ints = style_integration(recorded_muls(int8_networks["srm_cifar_resnet20", "int8_gates"], x))
    assert len(floats) == len(ints) == GATED_BLOCKS
    assert all(t in FLOAT_MULS and not ops[0].is_quantized for t, ops in floats)
    assert all(t is torch.ops.quantized.mul and ops[0].is_quantized for t, ops in ints)
    # the float score goes through a float sigmoid (the quantized one would clip it to its [0, 1) grid)
    assert [s.is_quantized for s in sigmoid_inputs(recorded_muls(int8_networks["srm_cifar_resnet20", "float_style"],
                                                                  x))] == [False] * GATED_BLOCKS
    assert all(s.is_quantized for s in sigmoid_inputs(recorded_muls(int8_networks["srm_cifar_resnet20", "int8_gates"],
                                                                     x)))
    rescale = gate_multiplies(recorded_muls(int8_networks["srm_cifar_resnet20", "float_style"], x))
    assert len(rescale) == GATED_BLOCKS and all(t is torch.ops.quantized.mul for t, _ in rescale)


def test_per_tensor_weights_have_one_scale_per_convolution(int8_networks) -> None:
    def schemes(model):
        return {m.weight().qscheme() for m in model.modules() if type(m).__module__.startswith(
            "torch.ao.nn.quantized") and hasattr(m, "weight") and callable(m.weight)}
    assert schemes(int8_networks["srm_cifar_resnet20", "per_tensor"]) == {torch.per_tensor_affine}
    assert schemes(int8_networks["srm_cifar_resnet20", "int8_gates"]) == {torch.per_channel_affine}


def test_int8_outputs_follow_the_float_network(int8_networks) -> None:
    model, x = network("srm_cifar_resnet20"), batches(1)[0]
    with torch.inference_mode():
        reference = model(x)
        for variant in ("float_gates", "int8_gates", "float_style"):
            error = (int8_networks["srm_cifar_resnet20", variant](x) - reference).abs().max()
            assert error < 0.2 * reference.abs().max(), variant


@pytest.mark.parametrize("srm", [SRM(16), SRM(16, integration="mlp", reduction=4), SRM(16, pooling=["avg"])])
def test_split_srm_computes_the_same_gate(srm: SRM) -> None:
    torch.manual_seed(0)
    for p in srm.parameters():
        nn.init.normal_(p)
    srm.bn.running_mean.uniform_(-1, 1), srm.bn.running_var.uniform_(0.5, 2)
    srm = srm.double().eval()
    x = torch.randn(3, 16, 5, 5, dtype=torch.float64)
    parts = [srm] + ([FusedSRM(srm)] if srm.integration == "cfc" else [])
    for part in parts:
        split = SplitSRM(part).double()
        torch.testing.assert_close(split(x), srm(x), rtol=1e-10, atol=1e-12)


def test_style_modules_are_found_only_in_srm_networks() -> None:
    srm = split_srm(fuse(network("srm_cifar_resnet20")))
    assert len(style_modules(srm)) == GATED_BLOCKS and not_applicable("float_style", srm) is None
    se = split_srm(fuse(network("se_cifar_resnet20")))
    assert style_modules(se) == [] and "not applicable" in not_applicable("float_style", se)


def test_unknown_or_repeated_variants_are_named() -> None:
    with pytest.raises(InvalidOptionError, match=r"'int4'.*float_gates"):
        check_variants(["int8_gates", "int4"])
    with pytest.raises(InvalidOptionError, match="repeats"):
        check_variants(["qat", "qat"])


class DataDependent(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x if x.sum() > 0 else -x  # Python control flow on a traced value


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.odd = DataDependent()

    def forward(self, x: Tensor) -> Tensor:
        return self.odd(self.conv(x))


def test_a_network_fx_cannot_trace_is_named_with_its_layer() -> None:
    with pytest.raises(QuantizationFailed, match=r"^toy: .*\(fuse\) at odd \(DataDependent\): TraceError"):
        quantize(Toy(), "int8_gates", batches(1), "toy", observer="minmax")


def test_single_block_mapping_quantizes_that_block_only() -> None:
    from recal.quantization.flow import calibrate, convert, prepare_with, quantizable_copy
    from recal.quantization.sensitivity import gated_block_names
    from recal.quantization.variants import single_block_mapping

    model, calibration = network("srm_cifar_resnet20"), batches(1)
    assert gated_block_names(model) == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    prepared = prepare_with(quantizable_copy(model, "srm"), single_block_mapping("layer2.1", "minmax"),
                            calibration[0], "srm")
    calibrate(prepared, calibration)
    int8 = convert(prepared, calibration[0], "srm")
    quantized = [name for name, m in int8.named_modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
    assert quantized and all(name.startswith("layer2.1.") for name in quantized)
    assert {"layer2.1.conv1", "layer2.1.conv2"} <= set(quantized)
    gates = gate_multiplies(recorded_muls(int8, calibration[0]))
    assert sorted(t is torch.ops.quantized.mul for t, _ in gates) == [False] * 8 + [True]

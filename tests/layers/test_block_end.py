"""block_end, the end of every residual block, against its readable reference.

- block_end equals block_end_reference for every gate family, a wrapped gate and no gate,
  with and without the block's BatchNorm, in training (outputs and gradients) and in
  inference, to 1e-10 in float64;
- the pooled-statistics node (SRM, SE, ECA; recal.layers.kernels.pooled_block_end), with and
  without the block's BatchNorm absorbed, equals BN module → style_pool → gate → rescale →
  add → ReLU under autograd to 1e-10 in float64: output, every gradient, BN's running
  statistics;
- the hand-written rescale + add + ReLU node (GE, CMPE-SE) equals its plain formula;
- the shifted-sum statistics equal torch.var_mean, and a bf16 map's are float32 ones;
- under bf16 autocast the node's input gradient keeps bf16's digits when means dwarf the spread;
- a whole SRM-ResNet train step equals the readable network;
- inference may write into the block's own intermediate, never into a caller's tensor;
- static-shape compiled kernels survive more shapes than dynamo's default limit;
- the allocator setting keeps freed memory (no page faults on reallocation).
"""

from __future__ import annotations

import copy
import resource
import warnings

import pytest
import torch
from torch import Tensor, nn

import recal.layers.kernels.dispatch as dispatch
from recal.allocator import keep_freed_memory
from recal.layers import block_end, block_end_reference, readable_mode
from recal.layers.kernels import compiled_kernels, fast_kernel
from recal.layers.kernels.gated_add import gated_add, gated_add_reference
from recal.layers.kernels.moments import mean_var
from recal.models import create_model, create_recalibration
from recal.models.domain import DomainSpecific, set_domain
from tests.numerics import relative_difference

GATES = {
    "srm": dict(name="srm"),
    "srm_std": dict(name="srm", pooling=("std",)),
    "srm_avg": dict(name="srm", pooling=("avg",)),
    "srm_mlp": dict(name="srm", integration="mlp"),
    "se": dict(name="se"),
    "eca": dict(name="eca"),
}


def _gate(key: str, channels: int = 16) -> nn.Module:
    options = dict(GATES[key])
    gate = create_recalibration(options.pop("name"), channels, **options).double().train()
    with torch.no_grad():
        for p in gate.parameters():
            p.normal_(0, 0.5)
    return gate


def _norm(channels: int, momentum: float | None) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, momentum=momentum).double().train()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    return norm


def _step(gate: nn.Module, norm: nn.Module | None, z: Tensor, identity: Tensor, relu: bool, fused: bool):
    """Output, gradients and the BN state after one forward + backward."""
    z, identity = z.detach().requires_grad_(), identity.detach().requires_grad_()
    modules = [gate] + ([norm] if norm is not None else [])
    for m in modules:
        m.zero_grad(set_to_none=True)
    if fused:
        y = block_end(z, norm=norm, gate=gate, shortcut=identity, relu=relu)
    else:  # the readable composition: BN module, the gate module, the addition
        y = block_end_reference(z, norm=norm, gate=gate, shortcut=identity, relu=relu)
    y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
    grads = [p.grad for m in modules for p in m.parameters()]
    state = [b.clone() for b in norm.buffers()] if norm is not None else []
    return [y.detach(), z.grad, identity.grad, *grads, *state]


@pytest.mark.parametrize("key", list(GATES))
@pytest.mark.parametrize("with_norm", [True, False], ids=["bn_absorbed", "no_bn"])
def test_pooled_block_end_equals_the_readable_composition(key: str, with_norm: bool) -> None:
    for side, momentum, relu in ((5, 0.1, True), (5, None, False), (1, 0.1, True)):
        gate = _gate(key)
        norm = _norm(16, momentum) if with_norm else None
        z = torch.randn(4, 16, side, side, dtype=torch.float64) * 3 + 1
        identity = torch.randn_like(z)
        ref_gate, ref_norm = copy.deepcopy(gate), copy.deepcopy(norm)
        fast = _step(gate, norm, z, identity, relu, fused=True)
        for _ in range(2):  # two steps: the running statistics' momentum (and None's running average) too
            fast = _step(gate, norm, z * 1.5, identity, relu, fused=True)
        reference = _step(ref_gate, ref_norm, z, identity, relu, fused=False)
        for _ in range(2):
            reference = _step(ref_gate, ref_norm, z * 1.5, identity, relu, fused=False)
        assert len(fast) == len(reference)
        worst = max(relative_difference(f, r) for f, r in zip(fast, reference))
        assert worst < 1e-10, f"{key} side={side} momentum={momentum} relu={relu}: {worst:.2e}"


def test_the_one_node_is_taken_and_skipped_where_it_should_be() -> None:
    gate = _gate("srm")
    z = torch.randn(2, 16, 4, 4, dtype=torch.float64, requires_grad=True)
    identity = torch.randn_like(z)
    assert type(block_end(z, gate=gate, shortcut=identity, relu=True).grad_fn).__name__ == "_PooledBlockEndBackward"
    assert type(gate(z).grad_fn).__name__ == "MulBackward0"  # the module alone: x * gate, nothing else
    max_gate = create_recalibration("srm", 16, pooling=("avg", "max")).double()
    ended = block_end(z, gate=max_gate, shortcut=identity, relu=False)
    assert type(ended.grad_fn).__name__ == "_GatedAddBackward"  # max pooling: a scatter, no closed form
    with readable_mode():
        assert type(block_end(z, gate=gate, shortcut=identity, relu=False).grad_fn).__name__ == "AddBackward0"


def _any_gate(key: str, channels: int = 16, side: int = 5) -> nn.Module | None:
    if key == "none":
        return None
    if key == "wrapped_srm":  # per-domain copies: block_end adds the shortcut after the wrapper
        wrapper = DomainSpecific(_gate("srm", channels), 2).double().train()
        return wrapper
    options = {"ge": dict(name="ge", spatial_size=side), "ge_extent_2": dict(name="ge", variant="theta_plus", extent=2),
               "cmpe_se": dict(name="cmpe_se", variant="pair_1x1", maps=2),
               "srm_max": dict(name="srm", pooling=("avg", "max")), "cbam": dict(name="cbam")}.get(key, GATES.get(key))
    options = dict(options)
    gate = create_recalibration(options.pop("name"), channels, **options).double().train()
    with torch.no_grad():
        for p in gate.parameters():
            p.normal_(0, 0.5)
    return gate


@pytest.mark.parametrize("key", ["none", "srm", "se", "eca", "srm_max", "ge", "ge_extent_2", "cmpe_se", "cbam",
                                 "wrapped_srm"])
@pytest.mark.parametrize("with_norm", [True, False], ids=["bn", "no_bn"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "inference"])
def test_block_end_equals_its_reference(key: str, with_norm: bool, training: bool) -> None:
    results = []
    for end in (block_end, block_end_reference):
        torch.manual_seed(0)
        gate, norm = _any_gate(key), _norm(16, 0.1) if with_norm else None
        modules = [m for m in (gate, norm) if m is not None]
        for m in modules:
            m.train(training)
        if isinstance(gate, DomainSpecific):
            set_domain(gate, torch.tensor([0, 1, 1, 0]))
        out = (torch.randn(4, 16, 5, 5, dtype=torch.float64) * 2 + 1).requires_grad_(training)
        shortcut = torch.randn_like(out).requires_grad_(training)
        with torch.set_grad_enabled(training):
            # the caller owns out only with overwrite; the reference never writes
            extra = {"overwrite": True} if end is block_end else {}
            y = end(out.clone() if training else out.detach().clone(), norm=norm, gate=gate, shortcut=shortcut,
                    relu=True, **extra)
        outputs = [y.detach()]
        if training:
            y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
            outputs += [out.grad, shortcut.grad, *(p.grad for m in modules for p in m.parameters())]
        results.append(outputs)
    for fast, reference in zip(*results):
        assert relative_difference(fast, reference) < 1e-10


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("spatial", [False, True], ids=["channel_scale", "spatial_scale"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gated_add_node_equals_its_formula(relu: bool, spatial: bool, channels_last: bool) -> None:
    x = torch.randn(3, 8, 5, 5, dtype=torch.float64)
    identity = torch.randn_like(x)
    scale = torch.rand(3, 8, 5, 5, dtype=torch.float64) if spatial else torch.rand(3, 8, 1, 1, dtype=torch.float64)
    if channels_last:
        x, identity = x.contiguous(memory_format=torch.channels_last), identity.contiguous(memory_format=torch.channels_last)
    results = []
    for fn in (gated_add, gated_add_reference):
        leaves = [t.detach().clone().requires_grad_() for t in (x, scale, identity)]
        y = fn(*leaves, relu)
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
        results.append([y.detach()] + [t.grad for t in leaves])
    for fast, reference in zip(*results):
        assert relative_difference(fast, reference) < 1e-10


def test_shifted_sum_statistics_equal_var_mean() -> None:
    x = torch.randn(4, 8, 49, dtype=torch.float64) * 2 + 3
    mean, var = mean_var(x)
    ref_var, ref_mean = torch.var_mean(x, dim=2, correction=1)
    assert relative_difference(mean, ref_mean) < 1e-12 and relative_difference(var, ref_var) < 1e-12
    # float32 with a mean far from zero against the spread: the shift keeps the variance's digits
    far = torch.randn(4, 8, 3136, dtype=torch.float64) + 1000
    _, var32 = mean_var(far.float())
    truth = far.var(dim=2)
    assert ((var32.double() - truth).abs() / truth).max() < 1e-3
    one_value = mean_var(x[:, :, :1])
    assert torch.equal(one_value[0], x[:, :, 0]) and torch.equal(one_value[1], torch.zeros_like(x[:, :, 0]))


def test_bf16_statistics_are_float32_ones_of_the_bf16_values() -> None:
    x = (torch.randn(4, 8, 3136, dtype=torch.float64) * 2 + 300).bfloat16()
    mean, var = mean_var(x, torch.float32)
    assert mean.dtype == var.dtype == torch.float32
    truth_var, truth_mean = torch.var_mean(x.double(), dim=2, correction=1)
    assert relative_difference(mean, truth_mean) < 1e-6 and ((var.double() - truth_var).abs() / truth_var).max() < 1e-3


@pytest.mark.parametrize("key", ["srm", "srm_std", "se"])
def test_the_bf16_input_gradient_keeps_its_digits_when_means_dwarf_the_spread(key: str) -> None:
    """Under autocast the node forms the input gradient in bf16: centred on one of each row's values,
    ∂L/∂mean − b·mean + b·z does not cancel for a map whose means are 50× its spread."""
    gate = _gate(key).float()
    z = (torch.randn(4, 16, 12, 12) + 50).bfloat16().contiguous(memory_format=torch.channels_last)
    identity = torch.randn(4, 16, 12, 12).bfloat16()
    upstream = torch.randn(4, 16, 12, 12)

    def input_gradient(gate: nn.Module, z: Tensor, identity: Tensor) -> Tensor:
        z = z.detach().requires_grad_()
        y = block_end(z, gate=gate, shortcut=identity, relu=False)
        y.backward(upstream.to(y.dtype))
        return z.grad
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = input_gradient(gate, z, identity)
    # the same function on the same bf16 values, in float64 (autograd through the readable pieces)
    exact = input_gradient(copy.deepcopy(gate).double(), z.double(), identity.double())
    assert fast.dtype == torch.bfloat16
    error = (fast.double() - exact).abs().max() / exact.abs().max()
    assert error < 1.5e-2, f"relative error {error:.3g}"  # bf16 itself: ~5e-3; uncentred: 3–6e-2


@pytest.mark.parametrize("name", ["srm_resnet18", "se_resnet50"])
def test_a_whole_train_step_equals_the_readable_network(name: str, randomize) -> None:
    # 64 px and 4 images: at 32 px layer4 is 1×1, and BN over 2 values is too ill-conditioned for 1e-10
    model = randomize(create_model(name, 10, input_size=64), scale=0.2).double().train()
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)

    def step(m: nn.Module) -> list[Tensor]:
        m.zero_grad(set_to_none=True)
        m(x).logsumexp(1).sum().backward()
        return [p.grad for p in m.parameters()] + [b.clone() for b in m.buffers()]

    reference_model = copy.deepcopy(model)
    fast = step(model)
    with readable_mode():  # the readable network: BN modules, style_pool, autograd
        reference = step(reference_model)
    assert max(relative_difference(f, r) for f, r in zip(fast, reference)) < 1e-10


def test_inference_writes_only_into_the_blocks_own_intermediate(randomize) -> None:
    gate = randomize(create_recalibration("srm", 16)).eval()
    x, identity = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)
    kept = x.clone()
    with torch.no_grad():
        expected = torch.relu(x * gate.gate(x)[:, :, None, None] + identity)
        torch.testing.assert_close(block_end(x, gate=gate, shortcut=identity, relu=True), expected)
        assert torch.equal(x, kept)  # a caller's tensor is never overwritten
        torch.testing.assert_close(block_end(x, gate=gate, shortcut=identity, relu=True, overwrite=True), expected)
        torch.testing.assert_close(x, expected)  # the block's own: written in place
        model = randomize(create_model("srm_resnet18", 10, input_size=32)).eval()
        image = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(model(image), model.double()(image.double()).float(), rtol=1e-4, atol=1e-4)


def test_static_compiled_kernels_survive_more_shapes_than_dynamos_limit(monkeypatch) -> None:
    # dynamo's own limit (8 versions per function) is the same whatever the backend: use the
    # eager backend so that the test builds no C++
    real_compile = torch.compile
    monkeypatch.setattr(dispatch.torch, "compile", lambda fn, **kw: real_compile(fn, **{**kw, "backend": "eager"}))
    torch._dynamo.reset()

    @fast_kernel
    def double(x: Tensor) -> Tensor:
        return x * 2

    with compiled_kernels(), warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to eager would warn
        for n in range(1, 13):
            assert torch.equal(double(torch.ones(n, 3)), torch.full((n, 3), 2.0))
    torch._dynamo.reset()


def test_the_allocator_keeps_freed_memory(monkeypatch) -> None:
    monkeypatch.setenv("RECAL_MALLOC", "default")
    assert keep_freed_memory() is False
    monkeypatch.delenv("RECAL_MALLOC")
    assert keep_freed_memory() is True  # Linux with glibc: our machines and CI

    def faults_of_one_allocation() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(16, 1024, 1024)  # 64 MiB, written and freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults_of_one_allocation()
    # glibc's default would map (and fault in) 16,384 fresh pages every time
    assert min(faults_of_one_allocation() for _ in range(3)) < 1000

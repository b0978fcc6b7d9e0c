"""Fast paths against their readable references.

- compiled kernels (inductor) = the eager definitions, in float64 to 1e-10 relative
  (outputs, input gradients, parameter gradients); the float32 difference is printed;
- every module traces with ``torch.compile(fullgraph=True)`` (aot_eager: no C++ build),
  also while recal's own compiled kernels are switched on;
- channels_last and bf16 autocast;
- ``fuse`` keeps the function (1e-10 in float64) and removes the BatchNorms it can.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import Tensor, nn

from recal.models import ChannelGate, create_conv, create_model, create_recalibration, fuse
from recal.layers import block_end
from recal.layers.kernels import compiled_kernels, kernels_enabled, set_kernels
from recal.tasks.kernels import choose_kernels
from tests.numerics import relative_difference

C, H = 32, 6
MODULES = {
    "se": lambda: create_recalibration("se", C),
    "srm": lambda: create_recalibration("srm", C),
    "srm_all_mlp": lambda: create_recalibration("srm", C, pooling=("avg", "std", "max"), integration="mlp"),
    "ge_theta": lambda: create_recalibration("ge", C, spatial_size=H),
    "ge_theta_plus_2": lambda: create_recalibration("ge", C, variant="theta_plus", extent=2),
    "ge_theta_minus": lambda: create_recalibration("ge", C, variant="theta_minus"),
    "cmpe_se_pair_1x1": lambda: create_recalibration("cmpe_se", C, variant="pair_1x1", maps=2),
    "cmpe_se_folded": lambda: create_recalibration("cmpe_se", C, variant="folded_3x3", maps=2, row_width=8),
    "eca": lambda: create_recalibration("eca", C),
    "cbam": lambda: create_recalibration("cbam", C),
    "sk": lambda: create_conv("sk", 64, 64, 1, 32),
    "splat": lambda: create_conv("splat", 64, 64, 2, 1),
}


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    # Gate modules share one forward code object; compiling many instances in one process
    # would hit dynamo's per-code recompile limit, which fullgraph=True turns into an error.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    set_kernels("eager")


def _inputs(name: str, dtype=torch.float32) -> tuple[Tensor, ...]:
    channels = 64 if name in ("sk", "splat") else C
    x = torch.randn(4, channels, H, H, dtype=dtype, requires_grad=True)
    if name.startswith("cmpe"):
        return x, torch.randn(4, channels, H, H, dtype=dtype)
    return (x,)


def _randomized(module: nn.Module, randomize) -> nn.Module:
    return randomize(module).train()


def _forward_backward(module: nn.Module, *inputs: Tensor, residual: Tensor | None = None,
                      norm: nn.Module | None = None):
    module.zero_grad(set_to_none=True)
    x = inputs[0].detach().requires_grad_()
    if isinstance(module, ChannelGate) and residual is not None:
        out = block_end(x, norm=norm, gate=module, shortcut=residual, relu=True)
    else:
        out = module(x, *inputs[1:])
    out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
    params = list(module.parameters()) + (list(norm.parameters()) if norm is not None else [])
    grads = [p.grad.clone() for p in params if p.grad is not None]
    if norm is not None:
        norm.zero_grad(set_to_none=True)
        grads += [norm.running_mean.clone(), norm.running_var.clone()]
    return out.detach(), x.grad, grads


def test_compiled_kernels_equal_the_eager_definitions(randomize) -> None:
    """The one inductor test: style_pool, rescale and GE's gather; SRM's fused block end
    (statistics, scale-shift-add, gradient sums, input gradient) with and without the block's BN
    absorbed; float64 and float32."""
    report = []
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, None)):
        for name in ("srm", "ge_theta"):
            module = _randomized(MODULES[name](), randomize).to(dtype)
            (x,) = _inputs(name, dtype)
            residual = torch.randn_like(x)
            norm = _randomized(nn.BatchNorm2d(C), randomize).to(dtype)
            cases = [(None, None), (residual, None)] + ([(residual, norm)] if name == "srm" else [])
            for res, bn in cases:
                state = copy.deepcopy((module.state_dict(), norm.state_dict()))
                reference = _forward_backward(module, x, residual=res, norm=bn)
                module.load_state_dict(state[0])  # BN running stats moved; start both paths alike
                norm.load_state_dict(state[1])
                with compiled_kernels():
                    fast = _forward_backward(module, x, residual=res, norm=bn)
                module.load_state_dict(state[0])
                norm.load_state_dict(state[1])
                diffs = [relative_difference(fast[0], reference[0]), relative_difference(fast[1], reference[1]),
                         *(relative_difference(f, r) for f, r in zip(fast[2], reference[2]))]
                report.append(f"{name} {dtype} residual={res is not None} bn={bn is not None}: "
                              f"max rel diff {max(diffs):.2e}")
                if tolerance is not None:
                    assert max(diffs) < tolerance, report[-1]
    print("\n".join(report))  # the float32 differences, reported beside the float64 check


def test_compiled_kernels_equal_the_eager_ones_under_bf16_autocast(randomize) -> None:
    """SRM's and SE's block ends as GPUs train them (bf16 autocast, channels_last, the block's BN run
    first): the bf16 input gradient's kernel and SE's means-only statistics, compiled against eager."""
    torch.manual_seed(0)
    z = (torch.randn(4, C, 8, 8) + 3).bfloat16().contiguous(memory_format=torch.channels_last)
    shortcut = torch.randn(4, C, 8, 8).bfloat16().contiguous(memory_format=torch.channels_last)
    upstream = torch.randn(4, C, 8, 8).bfloat16()
    for name in ("srm", "se"):
        gate = _randomized(create_recalibration(name, C), randomize)
        results = []
        for compiled in (False, True):
            x = z.clone().requires_grad_()
            with warnings.catch_warnings(record=True) as caught, compiled_kernels(compiled):
                warnings.simplefilter("always")
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = block_end(x, gate=gate, shortcut=shortcut, relu=True)
                gate.zero_grad(set_to_none=True)
                y.backward(upstream)
            assert not [w for w in caught if "recal: compiling" in str(w.message)]  # no eager fallback
            results.append([y, x.grad, *(p.grad for p in gate.parameters())])
        for eager, fast in zip(*results):
            assert eager.dtype == fast.dtype
            assert relative_difference(fast.float(), eager.float()) < 2e-2, name


@pytest.mark.parametrize("name", list(MODULES))
def test_every_module_compiles_without_graph_breaks(name: str, randomize) -> None:
    module = _randomized(MODULES[name](), randomize).eval()
    inputs = _inputs(name)
    expected = module(*inputs)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*inputs), expected)
    with compiled_kernels():  # recal's own kernels step aside while dynamo traces
        torch.testing.assert_close(torch.compile(module, fullgraph=True, backend="aot_eager")(*inputs), expected)


def test_a_whole_gated_network_compiles_without_graph_breaks() -> None:
    model = create_model("srm_cifar_resnet20", 10).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(torch.compile(model, fullgraph=True, backend="aot_eager")(x), model(x))


@pytest.mark.parametrize("name", list(MODULES))
def test_channels_last_gives_the_same_result(name: str, randomize) -> None:
    module = _randomized(MODULES[name](), randomize).eval()
    inputs = _inputs(name)
    expected = module(*inputs)
    last = tuple(t.contiguous(memory_format=torch.channels_last) for t in inputs)
    torch.testing.assert_close(module.to(memory_format=torch.channels_last)(*last), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(MODULES))
def test_bf16_autocast_runs_and_stays_finite(name: str, randomize) -> None:
    module = _randomized(MODULES[name](), randomize).train()
    x, *rest = _inputs(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x.to(torch.bfloat16), *(r.to(torch.bfloat16) for r in rest))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    out.float().sum().backward()


@pytest.mark.parametrize("name", ["srm_resnet50", "ge_resnet50", "se_resnet18", "srm_preact_resnet164",
                                  "srm_wrn16_2", "sknet50", "resnest50", "cmpe_se_cifar_resnet20", "cbam_resnet18"])
def test_fuse_keeps_the_function_in_float64(name: str, randomize) -> None:
    size = 64
    model = randomize(create_model(name, 10, input_size=size), scale=0.2).double().eval()
    fused = fuse(model)
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        assert relative_difference(fused(x), model(x)) < 1e-10
    bns = lambda m: sum(isinstance(q, nn.BatchNorm2d) for q in m.modules())  # noqa: E731
    assert bns(fused) < bns(model)
    if name in ("srm_resnet50", "ge_resnet50", "se_resnet18", "cmpe_se_cifar_resnet20", "cbam_resnet18"):
        assert bns(fused) == 0
    assert not any(type(m).__name__ == "SRM" for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the input model is untouched


def test_fused_srm_keeps_the_channel_mask(randomize) -> None:
    model = randomize(create_model("srm_cifar_resnet20", 10), scale=0.2).eval()
    gate = next(m for m in model.modules() if isinstance(m, ChannelGate))
    gate.channel_mask[1] = 0
    fused_gate = next(m for m in fuse(model).modules() if isinstance(m, ChannelGate))
    assert torch.equal(fused_gate.channel_mask, gate.channel_mask)


def test_eager_mode_never_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    set_kernels("eager")

    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile called in eager mode")

    monkeypatch.setattr(torch, "compile", refuse)
    create_model("srm_cifar_resnet20", 10)(torch.randn(2, 3, 32, 32)).sum().backward()


def test_auto_kernels_compile_only_long_fits() -> None:
    try:
        assert choose_kernels("auto", steps=50, device_type="cpu") == "eager" and not kernels_enabled()
        assert choose_kernels("eager", steps=10**6, device_type="cpu") == "eager"
        long_fit = choose_kernels("auto", steps=10**5, device_type="cpu")
        assert long_fit in ("compiled", "eager") and kernels_enabled() == (long_fit == "compiled")
    finally:
        set_kernels("eager")

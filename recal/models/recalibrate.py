"""Put a recalibration module into a network recal did not build: ``recalibrate(model, "srm")``.

Placement follows the papers, decided by each block's structure:

| block | where the gate goes |
|---|---|
| residual (torchvision ``BasicBlock``/``Bottleneck``, RegNet X's ``ResBottleneckBlock``; timm's ResNet blocks, its RegNet X ``Bottleneck``) | on the residual branch after its last BatchNorm, before stochastic depth and the addition (timm's ResNet ``se`` slot) |
| inverted residual without SE (torchvision MobileNetV2; timm's ``InvertedResidual``, ``DepthwiseSeparableConv``) | at the end of the branch, after the projection BN, before the addition where there is one |
| a block that already carries squeeze-excitation (MobileNetV3, EfficientNet, RegNet Y; timm's ``SqueezeExcite``/``SEModule``) | the existing SE module is swapped for the chosen gate, at the same place and width |
| ConvNeXt block | on the block's NCHW output, before layer scale, stochastic depth and the addition |
| plain stack (VGG-BN) | after each conv–BN–ReLU |

The network is changed in place: existing parameter and buffer names stay (gates only add
keys, a swapped SE's keys go), blocks keep their class's behaviour with a forward that
places the gate (a subclass of the block's own class, so ``isinstance`` still holds), and
no hook is left behind, so the result traces with ``torch.fx`` and ``torch.export``.

Each block applies its own BatchNorm before :func:`~recal.layers.block_end.block_end`, so no
fast path regroups the BN's arithmetic: a gate started as the identity (``identity_init``)
leaves the network's outputs unchanged bit for bit in float32, in training too. The fused
training path that absorbs the BN is recal's own ResNet's
(:func:`recal.models.convert.resnet_from_torchvision`). A swapped squeeze-excitation
module cannot preserve the outputs: the gate that takes its place is a new module.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from torchvision.models import convnext, mobilenetv2, regnet, resnet, vgg
from torchvision.ops import SqueezeExcitation

from recal.errors import InvalidOptionError
from recal.layers.block_context import BlockContext
from recal.layers.block_end import block_end
from recal.models.registry import GATES, gate_factory

SUPPORTED = ("torchvision ResNet / ResNeXt / Wide ResNet", "RegNet X/Y", "MobileNetV2", "MobileNetV3",
             "EfficientNet", "ConvNeXt", "VGG-BN", "timm ResNet / RegNet / EfficientNet / MobileNet and any timm "
             "network with SE modules")


# ------------------------------------------------------------------- gated block forwards

def _resnet_basic_forward(self, x: Tensor) -> Tensor:
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    return block_end(self.bn2(self.conv2(out)), gate=self.gate, shortcut=identity, relu=True, overwrite=True)


def _resnet_bottleneck_forward(self, x: Tensor) -> Tensor:
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    return block_end(self.bn3(self.conv3(out)), gate=self.gate, shortcut=identity, relu=True, overwrite=True)


def _regnet_forward(self, x: Tensor) -> Tensor:
    shortcut = x if self.proj is None else self.proj(x)
    return self.activation(block_end(self.f(x), gate=self.gate, shortcut=shortcut, relu=False, overwrite=True))


def _inverted_residual_forward(self, x: Tensor) -> Tensor:
    out = self.conv(x)
    if not self.use_res_connect:
        return self.gate(out)
    return block_end(out, gate=self.gate, shortcut=x, relu=False, overwrite=True)


def _residual_end(gate: nn.Module, x: Tensor, shortcut: Tensor, drop_path: nn.Module | None,
                  activation: nn.Module | None) -> Tensor:
    """``activation(drop_path(gate(x)) + shortcut)``: a timm block's end with a gate in it.

    Without stochastic depth it is :func:`block_end` (the ReLU inside when the block's
    activation is one), so the gate gets the same paths as in torchvision's blocks.
    """
    if drop_path is None or isinstance(drop_path, nn.Identity):
        relu = type(activation) is nn.ReLU
        y = block_end(x, gate=gate, shortcut=shortcut, relu=relu, overwrite=True)
        return y if relu or activation is None else activation(y)
    x = gate(x, shortcut) if gate.takes_shortcut else gate(x)
    y = drop_path(x) + shortcut
    return y if activation is None else activation(y)


def _timm_basic_forward(self, x: Tensor) -> Tensor:
    shortcut = x if self.downsample is None else self.downsample(x)
    out = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
    return _residual_end(self.gate, self.bn2(self.conv2(out)), shortcut, self.drop_path, self.act2)


def _timm_bottleneck_forward(self, x: Tensor) -> Tensor:
    shortcut = x if self.downsample is None else self.downsample(x)
    out = self.act1(self.bn1(self.conv1(x)))
    out = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(out)))))
    return _residual_end(self.gate, self.bn3(self.conv3(out)), shortcut, self.drop_path, self.act3)


def _timm_regnet_forward(self, x: Tensor) -> Tensor:
    out = self.conv3(self.se(self.conv2(self.conv1(x))))  # conv3 holds its BN
    if self.downsample is None:
        return self.act3(self.gate(out))
    return _residual_end(self.gate, out, self.downsample(x), self.drop_path, self.act3)


def _space_to_depth(block: nn.Module, x: Tensor) -> Tensor:
    return x if block.conv_s2d is None else block.bn_s2d(block.conv_s2d(x))


def _timm_inverted_residual_forward(self, x: Tensor) -> Tensor:
    out = self.bn2(self.conv_dw(self.bn1(self.conv_pw(_space_to_depth(self, x)))))
    out = self.conv_pwl(self.se(self.aa(out)))
    if not self.has_skip:
        return self.gate(self.bn3(out))
    return _residual_end(self.gate, self.bn3(out), x, self.drop_path, None)


def _timm_depthwise_separable_forward(self, x: Tensor) -> Tensor:
    out = self.conv_pw(self.se(self.aa(self.bn1(self.conv_dw(_space_to_depth(self, x))))))
    if not self.has_skip:
        return self.gate(self.bn2(out))
    return _residual_end(self.gate, self.bn2(out), x, self.drop_path, None)


def _convnext_forward(self, input: Tensor) -> Tensor:
    result = self.layer_scale * self.gate(self.block(input))
    result = self.stochastic_depth(result)
    result += input
    return result


class GatedActivation(nn.Module):
    """An activation followed by a gate: how a plain conv–BN–ReLU stack gets its gates (SE-VGG)."""

    def __init__(self, activation: nn.Module, gate: nn.Module) -> None:
        super().__init__()
        self.activation, self.gate = activation, gate

    def forward(self, x: Tensor) -> Tensor:
        return self.gate(self.activation(x))


@functools.cache
def _gated_class(block_class: type, forward: Callable) -> type:
    """A subclass of ``block_class`` whose forward places the gate (one per block class, reused)."""
    return type(f"Gated{block_class.__name__}", (block_class,), {"forward": forward, "__module__": __name__})


# ------------------------------------------------------------------- where the gates go

class Site:
    """One place for a gate: what it is built from, and how it is put there."""

    def __init__(self, module: nn.Module, channels: int, inner_channels: int, probe: nn.Module,
                 install: Callable[[nn.Module], None], takes_shortcut: bool) -> None:
        self.module, self.channels, self.inner_channels = module, channels, inner_channels
        self.probe, self.install, self.takes_shortcut = probe, install, takes_shortcut


def _as_gated(block: nn.Module, forward: Callable) -> Callable[[nn.Module], None]:
    def install(gate: nn.Module) -> None:
        block.gate = gate
        block.__class__ = _gated_class(type(block), forward)
    return install


def _replace(parent: nn.Module, name: str, make: Callable[[nn.Module], nn.Module]) -> Callable[[nn.Module], None]:
    def install(gate: nn.Module) -> None:
        setattr(parent, name, make(gate))
    return install


def _from_timm(model: nn.Module) -> bool:
    return type(model).__module__.startswith("timm.")


def _squeeze_excitation_modules(model: nn.Module) -> dict[type, Callable[[nn.Module], int]]:
    """SE module class → its width, for the libraries ``model`` comes from (timm only imported for its models)."""
    modules: dict[type, Callable[[nn.Module], int]] = {SqueezeExcitation: lambda se: se.fc1.in_channels}
    if _from_timm(model):
        from timm.layers.squeeze_excite import SEModule
        from timm.models._efficientnet_blocks import SqueezeExcite

        modules[SEModule] = lambda se: se.fc1.in_channels
        modules[SqueezeExcite] = lambda se: se.conv_reduce.in_channels
    return modules


def _squeeze_excitation_sites(model: nn.Module) -> Iterator[Site]:
    widths = _squeeze_excitation_modules(model)
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) in widths:
                channels = widths[type(child)](child)
                yield Site(child, channels, channels, child, _replace(parent, name, lambda gate: gate), False)


def _timm_block_sites(model: nn.Module) -> Iterator[Site]:
    from timm.models import _efficientnet_blocks as efficientnet
    from timm.models import regnet as timm_regnet
    from timm.models import resnet as timm_resnet

    for module in model.modules():
        if isinstance(module, timm_resnet.BasicBlock):
            yield Site(module, module.bn2.num_features, module.conv1.out_channels, module.bn2,
                       _as_gated(module, _timm_basic_forward), True)
        elif isinstance(module, timm_resnet.Bottleneck):
            yield Site(module, module.bn3.num_features, module.conv2.out_channels, module.bn3,
                       _as_gated(module, _timm_bottleneck_forward), True)
        elif isinstance(module, timm_regnet.Bottleneck):
            yield Site(module, module.conv3.conv.out_channels, module.conv2.conv.out_channels, module.conv3,
                       _as_gated(module, _timm_regnet_forward), module.downsample is not None)
        elif isinstance(module, efficientnet.InvertedResidual):
            yield Site(module, module.bn3.num_features, module.conv_dw.out_channels, module.bn3,
                       _as_gated(module, _timm_inverted_residual_forward), False)
        elif isinstance(module, efficientnet.DepthwiseSeparableConv):
            yield Site(module, module.bn2.num_features, module.conv_dw.out_channels, module.bn2,
                       _as_gated(module, _timm_depthwise_separable_forward), False)


def _block_sites(model: nn.Module) -> Iterator[Site]:
    for module in model.modules():
        if isinstance(module, resnet.BasicBlock):
            yield Site(module, module.bn2.num_features, module.conv1.out_channels, module.bn2,
                       _as_gated(module, _resnet_basic_forward), True)
        elif isinstance(module, resnet.Bottleneck):
            yield Site(module, module.bn3.num_features, module.conv2.out_channels, module.bn3,
                       _as_gated(module, _resnet_bottleneck_forward), True)
        elif isinstance(module, regnet.ResBottleneckBlock):
            yield Site(module, module.f.c[1].num_features, module.f.b[0].out_channels, module.f,
                       _as_gated(module, _regnet_forward), True)
        elif isinstance(module, mobilenetv2.InvertedResidual):
            yield Site(module, module.out_channels, module.conv[-1].num_features, module.conv,
                       _as_gated(module, _inverted_residual_forward), False)
        elif isinstance(module, convnext.CNBlock):
            channels = module.block[0].in_channels
            yield Site(module, channels, channels, module.block, _as_gated(module, _convnext_forward), False)
    if isinstance(model, vgg.VGG):
        layers = list(model.features)
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.ReLU) and i and isinstance(layers[i - 1], nn.BatchNorm2d):
                yield Site(layer, layers[i - 1].num_features, layers[i - 1].num_features, layer,
                           _replace(model.features, str(i), lambda gate, relu=layer: GatedActivation(relu, gate)),
                           False)


def gate_sites(model: nn.Module) -> list[Site]:
    """Every place ``recalibrate`` puts a gate in ``model``: its SE modules if it has any, else its blocks."""
    blocks = _timm_block_sites if _from_timm(model) else _block_sites
    return list(_squeeze_excitation_sites(model)) or list(blocks(model))


# ------------------------------------------------------------------- the call

def _map_sizes(model: nn.Module, sites: list[Site], input_size: int) -> list[int]:
    """Each site's map side, from one dry forward at ``input_size`` (GE's global gather is sized by it)."""
    sides: dict[int, int] = {}

    def recorder(i: int):
        def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:  # None: a hook's result would replace out
            sides.setdefault(i, out.shape[-1])
        return record
    handles = [site.probe.register_forward_hook(recorder(i)) for i, site in enumerate(sites)]
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, input_size, input_size))
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return [sides[i] for i in range(len(sites))]


def recalibrate(model: nn.Module, recalibration: str, input_size: int | None = None, **options: Any) -> nn.Module:
    """Put gate module ``recalibration`` (srm, se, ge, eca, cmpe_se) into ``model``, in place; return it.

    ``options`` are the module's user options (``pooling``, ``integration``, ``reduction`` …).
    GE with its global extent needs ``input_size``: each gate's kernel is its map at that
    input, read from one dry forward. CMPE-SE reads a block's shortcut, so it goes only into
    residual blocks (ResNet, RegNet). A network with no block recal knows is refused, naming
    its class and the supported families.
    """
    if recalibration not in GATES:
        raise InvalidOptionError(f"recalibrate places gate modules; unknown recalibration {recalibration!r}; "
                                 f"valid choices: {sorted(GATES)}")
    sites = gate_sites(model)
    if not sites:
        raise InvalidOptionError(f"recalibrate does not know where gates go in {type(model).__name__}; "
                                 f"supported families: {', '.join(SUPPORTED)}")
    if recalibration == "cmpe_se" and isinstance(sites[0].module, tuple(_squeeze_excitation_modules(model))):
        raise InvalidOptionError(f"cmpe_se reads each block's shortcut, and {type(model).__name__}'s gates would take "
                                 "the place of its squeeze-excitation modules, which do not see one; use it with "
                                 "residual networks without SE (ResNet, RegNet X)")
    if recalibration == "cmpe_se" and not all(site.takes_shortcut for site in sites):
        raise InvalidOptionError(f"cmpe_se reads each block's shortcut, and {type(model).__name__}'s gate sites "
                                 "do not all have one; use it with residual networks (ResNet, RegNet X)")
    make_gate = gate_factory(recalibration, **options)
    global_ge = recalibration == "ge" and options.get("variant", "theta") != "theta_minus" \
        and options.get("extent", "global") == "global"
    if global_ge and input_size is None:
        raise InvalidOptionError("GE with the global extent sizes each gate's kernel by its feature map: "
                                 "pass input_size (model.backbone.input_size in a config), the image side the "
                                 "network is trained on")
    sides = _map_sizes(model, sites, input_size) if global_ge else [None] * len(sites)
    for site, side in zip(sites, sides):
        parameter = next(site.module.parameters(), None)
        parameter = parameter if parameter is not None else next(model.parameters())
        gate = make_gate(BlockContext(site.channels, site.inner_channels, side))
        site.install(gate.to(device=parameter.device, dtype=parameter.dtype))
    return model

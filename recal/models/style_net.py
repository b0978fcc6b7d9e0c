"""Feed-forward style transfer: the transformer network and the VGG-16 loss network.

Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution", ECCV 2016, in the layout of pytorch/examples fast_neural_style
(``transformer_net.py``, ``vgg.py``): a 9×9 stem, two stride-2 3×3 convs, five
residual blocks, two nearest-upsample + 3×3 convs and a 9×9 output conv, all with
reflection padding. Images are 0–255 in and (unclamped) 0–255 out.

The normalisation is a switch (Lee, Kim & Nam, "SRM", ICCV 2019, style transfer
experiment): ``in`` (the original InstanceNorm), ``bn`` (BatchNorm), and
``bn_se`` / ``bn_srm``, where a gate module from :func:`recal.models.create_recalibration`
follows *every* BatchNorm, as in the SRM paper. In a residual block the second
gate sits before the addition, as everywhere else in recal.

Differences from pytorch/examples: layer names say ``norm`` instead of ``in``;
``width`` and ``residual_blocks`` may shrink the network for tests (defaults are
the original's, 1,679,235 parameters with ``in``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers

from recal.errors import CheckpointMismatchError, DatasetNotFoundError
from recal.models.registry import create_recalibration

Norm = Literal["in", "bn", "bn_se", "bn_srm"]
NORMS: tuple[str, ...] = get_args(Norm)
# Column titles of the SRM paper's figure, in its order.
NORM_TITLES: dict[str, str] = {"bn": "BN", "bn_se": "BN+SE", "bn_srm": "BN+SRM", "in": "IN"}
PAPER_ORDER: tuple[str, ...] = ("bn", "bn_se", "bn_srm", "in")


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """The normalisation of ``norm``: InstanceNorm, BatchNorm, or BatchNorm followed by a gate."""
    if norm == "in":
        # affine and no running statistics: pytorch/examples' InstanceNorm2d(affine=True).
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm in ("bn_se", "bn_srm"):
        gate = create_recalibration(norm[3:], channels)
        return nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(channels), gate=gate))
    raise ValueError(f"unknown norm {norm!r}; valid choices: {list(NORMS)}")


class ConvLayer(nn.Module):
    """Reflection padding + convolution, optionally after nearest-neighbour upsampling.

    Upsample-then-convolve instead of a transposed convolution avoids checkerboard
    artefacts (pytorch/examples' ``UpsampleConvLayer``).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, upsample: int = 1) -> None:
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_ch, out_ch, kernel_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample > 1:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.pad(x))


class ResidualBlock(nn.Module):
    """conv → norm → ReLU → conv → norm, plus the identity (no ReLU after the sum, as Johnson et al.)."""

    def __init__(self, channels: int, norm: Norm) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.norm1 = norm_layer(norm, channels)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.norm2 = norm_layer(norm, channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return x + self.norm2(self.conv2(out))


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network with a switchable normalisation.

    Args:
        norm: ``in``, ``bn``, ``bn_se`` or ``bn_srm`` (see the module docstring).
        width: channels of the stem; the downsampling stages use 2× and 4× this (32 → 64 → 128).
        residual_blocks: number of residual blocks at 1/4 resolution (5).

    The network downsamples by 4, so ``forward`` keeps the size only when H and W
    are multiples of 4; :func:`stylize` pads and crops for any size.
    """

    def __init__(self, norm: Norm = "in", width: int = 32, residual_blocks: int = 5) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; valid choices: {list(NORMS)}")
        self.norm = norm
        w1, w2, w3 = width, 2 * width, 4 * width
        self.conv1, self.norm1 = ConvLayer(3, w1, 9), norm_layer(norm, w1)
        self.conv2, self.norm2 = ConvLayer(w1, w2, 3, stride=2), norm_layer(norm, w2)
        self.conv3, self.norm3 = ConvLayer(w2, w3, 3, stride=2), norm_layer(norm, w3)
        self.residuals = nn.Sequential(*(ResidualBlock(w3, norm) for _ in range(residual_blocks)))
        self.deconv1, self.norm4 = ConvLayer(w3, w2, 3, upsample=2), norm_layer(norm, w2)
        self.deconv2, self.norm5 = ConvLayer(w2, w1, 3, upsample=2), norm_layer(norm, w1)
        self.deconv3 = ConvLayer(w1, 3, 9)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        y = F.relu(self.norm3(self.conv3(y)))
        y = self.residuals(y)
        y = F.relu(self.norm4(self.deconv1(y)))
        y = F.relu(self.norm5(self.deconv2(y)))
        return self.deconv3(y)


def stylize(net: nn.Module, images: Tensor, multiple: int = 4) -> Tensor:
    """Stylise 0–255 ``images`` of any H×W; the output has the input's size, clamped to 0–255.

    The network downsamples ×4, so a 250×333 input would come out 252×336:
    reflect-pad bottom/right to a multiple of ``multiple``, run, crop back.
    Replicate padding stands in where an image is too small to reflect.
    """
    h, w = images.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    padded = F.pad(images, (0, pad_w, 0, pad_h), mode=mode) if pad_h or pad_w else images
    return net(padded)[..., :h, :w].clamp(0, 255)


# --------------------------------------------------------------------------- VGG-16 loss network

# torchvision vgg16().features indices of the ReLUs the perceptual loss reads.
VGG_LAYERS: dict[str, int] = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
STYLE_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
CONTENT_LAYER = "relu2_2"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


def vgg16_features_layers() -> nn.Sequential:
    """torchvision's ``vgg16().features`` up to relu4_3 (indices 0–22), randomly initialised.

    Built with torchvision's own ``make_layers(cfgs["D"])`` and VGG's initialisation
    (Kaiming-normal fan-out convs, zero biases), so module indices and state-dict
    keys are those of ``vgg16(weights=None).features``; skipping the 120M-parameter
    classifier saves ~0.5 GB and a second per construction. Nothing past relu4_3 is
    needed by the loss.
    """
    features = make_layers(cfgs["D"], batch_norm=False)[: VGG_LAYERS["relu4_3"] + 1]
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return features


class VGG16Features(nn.Module):
    """Frozen VGG-16 activations at relu1_2, relu2_2, relu3_3, relu4_3 of a 0–255 image batch.

    The input is divided by 255 and ImageNet-normalised here (pytorch/examples'
    ``normalize_batch``), which is what torchvision's VGG-16 weights expect and
    what the 1e5 / 1e10 content / style weights are balanced for.
    """

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)
        # Frozen; train/eval mode makes no difference (no dropout or BatchNorm before relu4_3).
        self.requires_grad_(False)

    def forward(self, images: Tensor, until: str = "relu4_3") -> dict[str, Tensor]:
        """Activations of the layers up to ``until``, keyed by name (e.g. ``"relu2_2"``)."""
        x = (images - self.mean) / self.std
        taps = {index: name for name, index in VGG_LAYERS.items() if index <= VGG_LAYERS[until]}
        out: dict[str, Tensor] = {}
        for index, layer in enumerate(self.features[: VGG_LAYERS[until] + 1]):
            x = layer(x)
            if index in taps:
                out[taps[index]] = x
        return out


def load_vgg16_features(path: str | Path) -> VGG16Features:
    """The VGG-16 loss network with weights from a torchvision state-dict file at ``path``.

    Accepts torchvision's full ``vgg16`` state dict (``vgg16-397923af.pth``: keys
    ``features.N.weight``, ``classifier.*``, which is ignored) or a ``features``-only
    dict (``N.weight``). A missing file raises :class:`DatasetNotFoundError`; a file
    that is not such a state dict, or whose conv shapes differ (another VGG, VGG-16-BN),
    raises :class:`CheckpointMismatchError` — both name ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"VGG-16 weights file {path} does not exist; download torchvision's {VGG16_URL} "
            f"and set model.init_args.vgg_weights to its path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a state dict
        raise CheckpointMismatchError(f"cannot read VGG-16 weights file {path} as a torch state dict: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointMismatchError(f"VGG-16 weights file {path} is not a state dict of tensors "
                                      f"(expected torchvision's vgg16 state dict, e.g. {VGG16_URL})")
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    features = vgg16_features_layers()
    expected = features.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointMismatchError(
                f"VGG-16 weights file {path} has no tensor features.{key}; expected torchvision's "
                f"vgg16 state dict (not vgg16_bn or another model), e.g. {VGG16_URL}")
        if state[key].shape != tensor.shape:
            raise CheckpointMismatchError(
                f"VGG-16 weights file {path}: features.{key} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(tensor.shape)}; expected torchvision's vgg16 state dict, e.g. {VGG16_URL}")
    features.load_state_dict({key: state[key] for key in expected})
    return VGG16Features(features)


def random_vgg16_features(seed: int = 0) -> VGG16Features:
    """A randomly initialised VGG-16 loss network, seeded (tests and demos only).

    The seed makes the same random network come back in a later process (e.g.
    ``python -m recal.commands.style_compare`` scoring a demo run) without touching the
    global RNG.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VGG16Features(vgg16_features_layers())


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrices (N, C, C) of (N, C, H, W) features, divided by C·H·W (pytorch/examples).

    Computed in float32 also under autocast: a bf16 sum over H·W products loses the
    small differences between Gram matrices that the style loss is made of.
    """
    n, c, h, w = features.shape
    f = features.float().reshape(n, c, h * w)
    return f.bmm(f.transpose(1, 2)) / (c * h * w)

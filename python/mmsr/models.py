"""SRGAN networks for mmsr: the SRResNet generator, the SRGAN discriminator and "X-Y" configs.

The MMSR paper names a model pair "X-Y": X residual blocks in the generator and Y conv layers in
the discriminator (2-2, 4-2, 4-6, 8-6, 16-8; plain SRGAN is 16-8). :class:`ModelConfig` holds one
such pair plus the generator width, which ClassSR varies instead of depth, and whether the
generator learns a residual on top of the bicubic upsample of its input (suffix "r").

Example:
    >>> config = ModelConfig.parse("4-2")
    >>> g = Generator.from_config(config, scale=4).eval()
    >>> g(torch.rand(1, 3, 16, 16)).shape
    torch.Size([1, 3, 64, 64])
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "PAPER_CONFIGS",
    "Discriminator",
    "Generator",
    "ModelConfig",
    "count_parameters",
]

PAPER_CONFIGS = ("2-2", "4-2", "4-6", "8-6", "16-8")

_DEFAULT_CHANNELS = 64
_CONFIG_RE = re.compile(r"([0-9]+)-([0-9]+)(?:w([0-9]+))?(r)?")

# The SRGAN discriminator sees 96x96 crops; its four stride-2 convs leave 6x6 maps. Pooling to
# 6x6 makes the pool the identity in that case (the paper's network exactly) while letting the
# dense head take any crop size and any number of layers.
_DISC_POOL = 6
_DISC_HIDDEN = 1024
_DISC_MAX_WIDTH_FACTOR = 8  # 64 -> 512 in SRGAN
_LEAKY_SLOPE = 0.2
_PRELU_INIT = 0.25  # nn.PReLU's default; kaiming init uses it as the negative slope
# The last BN of each residual branch starts at gamma=0.1 so that a fresh deep generator is
# close to its shallow skip path, which keeps early training stable (as ESRGAN's 0.1 scaling).
_RESIDUAL_GAMMA = 0.1


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


# Far beyond any SR model (EDSR has 32 blocks, RCAN ~200 convs), and small enough that a bundle
# header naming a config cannot make load_bundle build millions of layers before it checks tensors.
MAX_BLOCKS, MAX_DISC_LAYERS, MAX_CHANNELS = 256, 64, 1024


@dataclass(frozen=True)
class ModelConfig:
    """One "X-Y" model pair: generator depth, discriminator depth and generator width.

    Attributes:
        blocks: X, the number of residual blocks in the generator (>= 1).
        disc_layers: Y, the number of conv layers in the discriminator (>= 1).
        channels: generator width (>= 1); the paper's "X-Y" always means 64.
        input_skip: the generator adds the bicubic upsample of its input to its output, so it
            learns only the residual (as VDSR and BasicSR's MSRResNet do); its tail starts at zero,
            so an untrained generator is exactly bicubic. Suffix "r"; the paper's SRResNet has none.

    Example:
        >>> ModelConfig.parse("4-2w32")
        ModelConfig(blocks=4, disc_layers=2, channels=32, input_skip=False)
        >>> ModelConfig(8, 6).name, ModelConfig(16, 8, input_skip=True).name
        ('8-6', '16-8r')
    """

    blocks: int
    disc_layers: int
    channels: int = _DEFAULT_CHANNELS
    input_skip: bool = False

    def __post_init__(self) -> None:
        _check_int("blocks", self.blocks, 1, MAX_BLOCKS)
        _check_int("disc_layers", self.disc_layers, 1, MAX_DISC_LAYERS)
        _check_int("channels", self.channels, 1, MAX_CHANNELS)
        if not isinstance(self.input_skip, bool):
            raise ValueError(f"input_skip must be a bool, got {type(self.input_skip).__name__} {self.input_skip!r}")

    @classmethod
    def parse(cls, text: str) -> ModelConfig:
        """Parse "X-Y" (width 64) or "X-YwC" (width C), each optionally with "r", e.g. "8-6", "4-2w32", "16-8r".

        Raises:
            ValueError: when ``text`` is not of that form or a number is out of range.
        """
        if not isinstance(text, str):
            raise ValueError(f"model config must be a str like '8-6', got {type(text).__name__}")
        match = _CONFIG_RE.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"invalid model config {text!r}: expected 'X-Y' or 'X-YwC', optionally followed by 'r' "
                "(X generator blocks, Y discriminator layers, C generator width, r: residual on the bicubic "
                "upsample), e.g. '8-6', '4-2w32' or '16-8r'"
            )
        blocks, layers, channels, residual = match.groups()
        try:
            width = _DEFAULT_CHANNELS if channels is None else int(channels)
            return cls(int(blocks), int(layers), width, input_skip=residual is not None)
        except ValueError as err:
            raise ValueError(f"invalid model config {text!r}: {err}") from None

    @property
    def name(self) -> str:
        """The config as text: "8-6", "4-2w32" when the width is not 64, "16-8r" with the input skip;
        ``parse`` reads it back."""
        suffix = "" if self.channels == _DEFAULT_CHANNELS else f"w{self.channels}"
        return f"{self.blocks}-{self.disc_layers}{suffix}{'r' if self.input_skip else ''}"


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    # Zero 'same' padding keeps tile and whole-image outputs equal away from the borders.
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)


def _init_conv(layer: nn.Conv2d | nn.Linear, slope: float) -> None:
    nn.init.kaiming_normal_(layer.weight, a=slope, nonlinearity="leaky_relu")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _init_icnr(conv: nn.Conv2d, factor: int) -> None:
    # ICNR (Aitken et al. 2017): every sub-pixel of a shuffled output channel starts with the same
    # kernel, so a fresh pixel-shuffle stage is a nearest-neighbour upsample with no checkerboard.
    out_channels, in_channels, kh, kw = conv.weight.shape
    base = torch.empty(out_channels // factor**2, in_channels, kh, kw)
    nn.init.kaiming_normal_(base, a=_PRELU_INIT, nonlinearity="leaky_relu")
    with torch.no_grad():
        conv.weight.copy_(base.repeat_interleave(factor**2, dim=0))
        nn.init.zeros_(conv.bias)


class _ResidualBlock(nn.Module):
    """conv3-BN-PReLU-conv3-BN plus identity skip; x: Tensor[B, C, h, w] -> same shape."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels, 3)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act = nn.PReLU(channels, init=_PRELU_INIT)
        self.conv2 = _conv(channels, channels, 3)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class Generator(nn.Module):
    """SRResNet, the SRGAN generator.

    Layout: 9x9 conv + PReLU; ``blocks`` residual blocks (conv3-BN-PReLU-conv3-BN + skip);
    conv3-BN plus a long skip from the head; upsampling stages (conv3 -> PixelShuffle -> PReLU),
    two x2 stages for scale 4, one x2 for scale 2, one x3 for scale 3; a 9x9 tail conv. With
    ``input_skip`` the output is the tail's plus the bicubic upsample of the input, and the tail
    starts at zero: the network learns only what bicubic misses. From scratch this trained a
    4-block generator to bicubic's Set14 PSNR in under 50 steps instead of thousands (benchmarks/README.md).
    Every conv uses zero 'same' padding, so in eval mode (BN on running statistics) an output pixel
    depends only on a fixed window of input pixels: tiled and whole-image inference agree wherever
    a tile's border is more than ``2 * blocks + 8`` LR pixels away (the receptive radius).

    Args:
        scale: upscaling factor, 2, 3 or 4.
        blocks: number of residual blocks (>= 1); the "X" of an "X-Y" pair.
        channels: feature width (>= 1).
        in_channels: image channels in and out (>= 1).
        input_skip: add the bicubic upsample of the input to the output (see above).

    forward(x: Tensor[B, in_channels, h, w], float in [0, 1])
        -> Tensor[B, in_channels, h * scale, w * scale], same dtype, not clamped.

    Example:
        >>> g = Generator(scale=2, blocks=2, channels=16).eval()
        >>> g(torch.rand(2, 3, 7, 9)).shape
        torch.Size([2, 3, 14, 18])
    """

    def __init__(
        self, scale: int = 4, blocks: int = 16, channels: int = 64, in_channels: int = 3, input_skip: bool = False
    ) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale!r}")
        self.scale = scale
        self.blocks = _check_int("blocks", blocks, 1)
        self.channels = _check_int("channels", channels, 1)
        self.in_channels = _check_int("in_channels", in_channels, 1)
        if not isinstance(input_skip, bool):
            raise ValueError(f"input_skip must be a bool, got {type(input_skip).__name__} {input_skip!r}")
        self.input_skip = input_skip

        self.head = nn.Sequential(_conv(in_channels, channels, 9), nn.PReLU(channels, init=_PRELU_INIT))
        self.body = nn.Sequential(*(_ResidualBlock(channels) for _ in range(blocks)))
        self.trunk = nn.Sequential(_conv(channels, channels, 3), nn.BatchNorm2d(channels))
        factors = (3,) if scale == 3 else (2,) * (scale // 2)
        self.upsample = nn.Sequential(
            *(
                nn.Sequential(
                    _conv(channels, channels * f * f, 3), nn.PixelShuffle(f), nn.PReLU(channels, init=_PRELU_INIT)
                )
                for f in factors
            )
        )
        self.tail = _conv(channels, in_channels, 9)
        self._init_weights(factors)

    def _init_weights(self, factors: tuple[int, ...]) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                _init_conv(module, _PRELU_INIT)
        for stage, factor in zip(self.upsample, factors):
            _init_icnr(stage[0], factor)
        for block in self.body:
            nn.init.constant_(block.bn2.weight, _RESIDUAL_GAMMA)
        if self.input_skip:
            # A fresh residual generator is exactly bicubic; training can only start from there.
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    @classmethod
    def from_config(cls, config: ModelConfig, scale: int) -> Generator:
        """The generator of an "X-Y" config: X blocks at the config's width.

        Example:
            >>> Generator.from_config(ModelConfig.parse("2-2w16"), scale=4).blocks
            2
        """
        return cls(scale=scale, blocks=config.blocks, channels=config.channels, input_skip=config.input_skip)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x should be a [B, {self.in_channels}, h, w] tensor, got shape {tuple(x.shape)}")
        features = self.head(x)
        features = features + self.trunk(self.body(features))
        out = self.tail(self.upsample(features))
        return out + self.bicubic(x) if self.input_skip else out

    def bicubic(self, x: Tensor) -> Tensor:
        """The bicubic upsample that an ``input_skip`` generator adds to its output."""
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


class Discriminator(nn.Module):
    """The SRGAN discriminator with a configurable number of conv layers.

    Layout: ``layers`` conv3-BN-LeakyReLU(0.2) layers (the first without BN), strides 1, 2, 1, 2, ...,
    widths ``base_channels`` doubling every two layers up to ``8 * base_channels`` (64 -> 512);
    then AdaptiveAvgPool2d to 6x6, flatten, Linear -> 1024, LeakyReLU(0.2), Linear -> 1.

    The adaptive pool lets the dense head take any HR crop size: SRGAN's own 96x96 crops with 8
    layers give 6x6 maps, where the pool is the identity and the network is the paper's.

    Args:
        layers: number of conv layers (>= 1); the "Y" of an "X-Y" pair.
        in_channels: image channels (>= 1).
        base_channels: width of the first layer (>= 1).

    forward(x: Tensor[B, in_channels, H, W], float) -> Tensor[B] of raw logits (no sigmoid; use
        ``binary_cross_entropy_with_logits``).

    Example:
        >>> d = Discriminator(layers=4, base_channels=16)
        >>> d(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2])
    """

    def __init__(self, layers: int = 8, in_channels: int = 3, base_channels: int = 64) -> None:
        super().__init__()
        self.layers = _check_int("layers", layers, 1)
        self.in_channels = _check_int("in_channels", in_channels, 1)
        self.base_channels = _check_int("base_channels", base_channels, 1)

        convs: list[nn.Module] = []
        width_in = in_channels
        for i in range(layers):
            width = base_channels * min(2 ** (i // 2), _DISC_MAX_WIDTH_FACTOR)
            convs.append(_conv(width_in, width, 3, stride=1 + i % 2))
            if i > 0:
                convs.append(nn.BatchNorm2d(width))
            convs.append(nn.LeakyReLU(_LEAKY_SLOPE, inplace=True))
            width_in = width
        self.features = nn.Sequential(*convs)
        self.pool = nn.AdaptiveAvgPool2d(_DISC_POOL)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width_in * _DISC_POOL * _DISC_POOL, _DISC_HIDDEN),
            nn.LeakyReLU(_LEAKY_SLOPE, inplace=True),
            nn.Linear(_DISC_HIDDEN, 1),
        )
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                _init_conv(module, _LEAKY_SLOPE)

    @classmethod
    def from_config(cls, config: ModelConfig) -> Discriminator:
        """The discriminator of an "X-Y" config: Y layers at SRGAN's width 64.

        Example:
            >>> Discriminator.from_config(ModelConfig.parse("4-6")).layers
            6
        """
        return cls(layers=config.disc_layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x should be a [B, {self.in_channels}, H, W] tensor, got shape {tuple(x.shape)}")
        return self.classifier(self.pool(self.features(x))).squeeze(1)


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements in ``module``, trainable or frozen (buffers excluded).

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in module.parameters())

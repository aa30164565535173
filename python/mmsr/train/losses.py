"""Training losses: pixel (L1 or MSE), adversarial (SRGAN's BCE), and a VGG19 perceptual loss.

The perceptual loss compares VGG19 features after the ReLU of conv5_4 (SRGAN's "VGG54"). mmsr
never downloads weights: the features come from a torchvision VGG19 weights file that the user
gives, or that already sits in torch's hub cache (``torch.hub.get_dir()/checkpoints/vgg19-*.pth``).
torchvision itself is not needed; :class:`VGG19Features` has torchvision's layer layout, so the
file's ``features.*`` tensors load into it directly.

Example:
    >>> loss = pixel_loss("l1")
    >>> float(loss(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)))
    1.0
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "PIXEL_LOSSES",
    "PerceptualLoss",
    "VGG19Features",
    "VGG19_MIN_CROP",
    "discriminator_loss",
    "find_vgg19_weights",
    "generator_adversarial_loss",
    "pixel_loss",
]

PIXEL_LOSSES = ("l1", "mse")

# torchvision's VGG19 ("E") feature layers: conv widths, "M" = 2x2 max-pool. Each conv is followed
# by a ReLU, so layer indices match torchvision's ``features.<i>`` keys.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
# The 4 max-pools before conv5_4 halve a crop 4 times: smaller HR crops leave it no pixel.
VGG19_MIN_CROP = 2 ** _VGG19_LAYOUT.count("M")
# ImageNet statistics the torchvision weights were trained with.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_EXPECTED = "torchvision's vgg19 state_dict (vgg19-dcbb9e9d.pth: features.0.weight ... features.34.bias)"


def pixel_loss(kind: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The pixel loss ``kind`` ("l1" or "mse") as ``loss(sr, hr) -> 0-d Tensor`` (mean over elements).

    Example:
        >>> float(pixel_loss("mse")(torch.zeros(2), torch.full((2,), 2.0)))
        4.0
    """
    if kind == "l1":
        return F.l1_loss
    if kind == "mse":
        return F.mse_loss
    raise ValueError(f"pixel loss must be one of {PIXEL_LOSSES}, got {kind!r}")


def discriminator_loss(logits: Tensor, real: bool) -> Tensor:
    """SRGAN's discriminator loss on one pass: BCE of the logits against 1 (real) or 0 (fake); 0-d Tensor.

    The discriminator's loss is the real pass's plus the fake pass's.

    Example:
        >>> float(discriminator_loss(torch.full((4,), 20.0), real=True)) < 1e-6
        True
    """
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def generator_adversarial_loss(fake_logits: Tensor) -> Tensor:
    """The generator's adversarial loss: BCE pushing the discriminator's fake logits to 1 (0-d Tensor).

    Example:
        >>> round(float(generator_adversarial_loss(torch.zeros(3))), 4)
        0.6931
    """
    return discriminator_loss(fake_logits, real=True)


class VGG19Features(nn.Module):
    """VGG19 conv layers up to the ReLU after conv5_4, in torchvision's layout, frozen and in eval mode.

    forward(x: float Tensor[B, 3, H, W] in [0, 1]) -> Tensor[B, 512, H/16, W/16]; x is normalised
    with ImageNet statistics first.

    Example:
        >>> VGG19Features()(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 512, 2, 2])
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in = 3
        for item in _VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(width_in, item, 3, padding=1), nn.ReLU(inplace=True)]
                width_in = item
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> VGG19Features:
        # A frozen feature extractor stays in eval mode whatever its parent does.
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.features((x - self.mean) / self.std)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> VGG19Features:
        """Load torchvision VGG19 weights (``vgg19-dcbb9e9d.pth`` or a state_dict with ``features.*``).

        The file is read with ``torch.load(weights_only=True)``: it cannot run code.

        Raises:
            ValueError: the file is unreadable or lacks VGG19's conv tensors (the message names it).
        """
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch.load raises many types for a bad file; all mean the same here.
            # torch's own text suggests weights_only=False, which would run code from the file: not passed on.
            raise ValueError(
                f"cannot read VGG19 weights file {str(path)!r}: it is not a file of tensors saved with torch.save "
                f"({type(err).__name__}); expected {_EXPECTED}"
            ) from None
        if not isinstance(state, dict):
            raise ValueError(f"VGG19 weights file {str(path)!r} does not hold a state_dict; expected {_EXPECTED}")
        model = cls()
        wanted = model.features.state_dict()
        prefixed = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        source = prefixed or state
        missing = [k for k in wanted if k not in source]
        if missing:
            raise ValueError(
                f"VGG19 weights file {str(path)!r} lacks {len(missing)} of VGG19's conv tensors "
                f"(e.g. features.{missing[0]}); expected {_EXPECTED}"
            )
        try:
            model.features.load_state_dict({k: source[k] for k in wanted})
        except RuntimeError as err:
            raise ValueError(f"VGG19 weights file {str(path)!r} does not fit VGG19: {err}") from None
        return model


def find_vgg19_weights(explicit: Optional[str] = None) -> Optional[Path]:
    """The VGG19 weights file to use: ``explicit`` if given, else one in torch's hub cache, else None.

    Raises:
        FileNotFoundError: ``explicit`` was given but does not exist.

    Example:
        >>> find_vgg19_weights(None)  # None unless a torchvision vgg19 file is cached  # doctest: +SKIP
    """
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"--vgg19 file {explicit!r} does not exist")
        return path
    cached = sorted((Path(torch.hub.get_dir()) / "checkpoints").glob("vgg19-*.pth"))
    return cached[0] if cached else None


class PerceptualLoss(nn.Module):
    """L1 distance between VGG19 conv5_4 features of SR and HR images (0-d Tensor).

    forward(sr: Tensor[B, 3, H, W], hr: Tensor[B, 3, H, W]), both in [0, 1]; gradients flow into sr.

    Example:
        >>> loss = PerceptualLoss(VGG19Features())
        >>> float(loss(torch.ones(1, 3, 32, 32), torch.ones(1, 3, 32, 32)))
        0.0
    """

    def __init__(self, features: VGG19Features) -> None:
        super().__init__()
        self.features = features

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.features(hr)
        return F.l1_loss(self.features(sr), target)

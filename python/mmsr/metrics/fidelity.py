"""Full-reference fidelity metrics, PSNR and SSIM, measured the way SR papers measure them.

The conventions are those of the MATLAB evaluation scripts of the SR literature, as ported by BasicSR
(``calculate_psnr`` / ``calculate_ssim`` with ``test_y_channel=True``):

- images are measured on the 0..255 scale whatever their dtype (uint8 as is, floating point times 255);
- ``y_channel=True`` compares the luma of MATLAB's ``rgb2ycbcr`` (BT.601, Y in [16, 235]), unrounded;
- ``crop_border`` pixels are dropped from every side first (the SR convention is crop = scale);
- SSIM is Wang et al. 2004: 11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, 'valid'
  filtering, the mean of the SSIM map, averaged over channels.

Everything is computed in float64 so that results do not depend on the input dtype.
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np
import torch

_PEAK = 255.0
# The Y row of MATLAB's rgb2ycbcr for R, G, B in [0, 1]; the offset puts Y in [16, 235].
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * _PEAK) ** 2
_SSIM_C2 = (0.03 * _PEAK) ** 2


def _as_batch(img: torch.Tensor | np.ndarray, name: str, fn: str) -> tuple[torch.Tensor, bool]:
    """Check one image argument of ``fn``.

    Returns it as float64 ``[B, C, H, W]`` on the 0..255 scale, and whether it came in batched.
    """
    if isinstance(img, np.ndarray):
        is_uint8 = img.dtype == np.uint8
        is_float = bool(np.issubdtype(img.dtype, np.floating))
    elif isinstance(img, torch.Tensor):
        is_uint8 = img.dtype == torch.uint8
        is_float = img.dtype.is_floating_point
    else:
        raise TypeError(f"{fn}: {name} must be a torch.Tensor or a numpy.ndarray, got {type(img).__name__}")
    if not (is_uint8 or is_float):
        raise TypeError(f"{fn}: {name} must be uint8 (0..255) or floating point (0..1), got dtype {img.dtype}")
    if img.ndim not in (3, 4):
        raise ValueError(
            f"{fn}: {name} must be [C, H, W] or [B, C, H, W], got a {img.ndim}-D array of shape {tuple(img.shape)}"
        )
    if img.shape[-3] not in (1, 3):
        raise ValueError(
            f"{fn}: {name} must have 1 or 3 channels (dimension -3), got {img.shape[-3]} in shape {tuple(img.shape)}"
        )
    # astype copies, which also makes non-writeable or negatively strided arrays safe for torch.
    out = torch.from_numpy(img.astype(np.float64)) if isinstance(img, np.ndarray) else img.to(torch.float64)
    if is_float:
        out = out * _PEAK
    batched = img.ndim == 4
    return (out if batched else out.unsqueeze(0)), batched


def _crop(x: torch.Tensor, crop_border: int, fn: str) -> torch.Tensor:
    """Drop ``crop_border`` pixels from each side of ``x: [B, C, H, W]``."""
    if isinstance(crop_border, bool) or not isinstance(crop_border, numbers.Integral):
        raise TypeError(f"{fn}: crop_border must be an int, got {type(crop_border).__name__}")
    if crop_border < 0:
        raise ValueError(f"{fn}: crop_border must be >= 0, got {crop_border}")
    crop_border = int(crop_border)
    h, w = x.shape[-2:]
    if 2 * crop_border >= min(h, w):
        raise ValueError(f"{fn}: crop_border={crop_border} leaves no pixels of a {h}×{w} image")
    if crop_border == 0:
        return x
    return x[..., crop_border : h - crop_border, crop_border : w - crop_border]


def _y_255(x: torch.Tensor) -> torch.Tensor:
    """MATLAB-style BT.601 luma of ``x: [B, 3, H, W]`` on the 0..255 scale, as ``[B, 1, H, W]`` in [16, 235]."""
    wr, wg, wb = (c / _PEAK for c in _Y_WEIGHTS)
    return _Y_OFFSET + wr * x[:, 0:1] + wg * x[:, 1:2] + wb * x[:, 2:3]


def rgb_to_y(img: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Luma (Y of YCbCr, ITU-R BT.601) exactly as MATLAB's ``rgb2ycbcr`` computes it, unrounded.

    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B in [0, 1], so Y lies in [16, 235].

    Args:
        img: RGB image, ``[3, H, W]`` or ``[B, 3, H, W]``; uint8 (0..255) or floating point (0..1);
            a torch tensor or a numpy array.

    Returns:
        float64 tensor ``[1, H, W]`` or ``[B, 1, H, W]`` holding Y on the 0..255 scale.

    Example:
        >>> rgb_to_y(torch.full((3, 2, 2), 255, dtype=torch.uint8))[0, 0, 0].item()
        235.0
    """
    x, batched = _as_batch(img, "img", "rgb_to_y")
    if x.shape[1] != 3:
        raise ValueError(f"rgb_to_y: img must have 3 channels, got {x.shape[1]} in shape {tuple(img.shape)}")
    y = _y_255(x)
    return y if batched else y[0]


def _prepare_pair(a, b, crop_border: int, y_channel: bool, fn: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate ``a`` and ``b`` and bring both to the float64 ``[B, C', H', W']`` that ``fn`` measures."""
    x, batched = _as_batch(a, "a", fn)
    y, _ = _as_batch(b, "b", fn)
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{fn}: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if x.device != y.device:
        raise ValueError(f"{fn}: a and b must be on the same device, got {x.device} and {y.device}")
    x = _crop(x, crop_border, fn)
    y = _crop(y, crop_border, fn)
    if y_channel and x.shape[1] == 3:
        x, y = _y_255(x), _y_255(y)
    return x, y, batched


def _result(values: torch.Tensor, batched: bool) -> float | torch.Tensor:
    """Per-image float64 ``values: [B]`` as the public functions return them."""
    return values.to(torch.float32) if batched else float(values[0])


def psnr(
    a: torch.Tensor | np.ndarray,
    b: torch.Tensor | np.ndarray,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
) -> float | torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(255² / MSE)``, as SR papers report it.

    Args:
        a, b: images of the same shape, ``[C, H, W]`` or ``[B, C, H, W]`` with C = 3 (RGB) or 1;
            uint8 (0..255) or floating point (0..1, not clipped); torch tensors or numpy arrays.
        crop_border: pixels removed from each side before measuring (usually the SR scale).
        y_channel: measure the MATLAB-style BT.601 luma of RGB input (the SR convention) instead of
            all three channels. 1-channel input is measured as is.

    Returns:
        a python float for 3-D input, a float32 tensor ``[B]`` on the input's device for 4-D input.
            Identical images give ``inf``.

    Example:
        >>> a = torch.zeros(3, 8, 8, dtype=torch.uint8)
        >>> round(psnr(a, a + 1, y_channel=False), 2)
        48.13
    """
    x, y, batched = _prepare_pair(a, b, crop_border, y_channel, "psnr")
    mse = (x - y).square().mean(dim=(1, 2, 3))
    # mse == 0 divides to inf, and log10(inf) is the inf that identical images should give.
    return _result(10.0 * torch.log10(_PEAK**2 / mse), batched)


def _correlate_valid(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """'Valid' correlation of ``x: [..., H, W]`` with ``kernel: [kh, kw]``, giving ``[..., H-kh+1, W-kw+1]``.

    A sum of weighted shifted views. For small kernels in float64 this is an order of magnitude faster
    on CPU than conv2d, which has no fast float64 path.
    """
    kh, kw = kernel.shape
    h, w = x.shape[-2] - kh + 1, x.shape[-1] - kw + 1
    out = x.new_zeros(*x.shape[:-2], h, w)
    for (i, j), weight in zip(itertools.product(range(kh), range(kw)), kernel.flatten().tolist()):
        out.add_(x[..., i : i + h, j : j + w], alpha=weight)
    return out


def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    """Normalised Gaussian taps ``[size]`` (float64); their outer product is MATLAB's ``fspecial('gaussian')``."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t * t) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(
    a: torch.Tensor | np.ndarray,
    b: torch.Tensor | np.ndarray,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
) -> float | torch.Tensor:
    """Structural similarity (Wang et al. 2004) as SR papers report it.

    11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03 and data range 255, 'valid' filtering
    (no padding), the mean of the SSIM map; RGB channels are measured separately and averaged.

    Args:
        a, b: images of the same shape, ``[C, H, W]`` or ``[B, C, H, W]`` with C = 3 (RGB) or 1;
            uint8 (0..255) or floating point (0..1, not clipped); torch tensors or numpy arrays.
            At least 11×11 after cropping.
        crop_border: pixels removed from each side before measuring (usually the SR scale).
        y_channel: measure the MATLAB-style BT.601 luma of RGB input (the SR convention) instead of
            all three channels. 1-channel input is measured as is.

    Returns:
        a python float for 3-D input, a float32 tensor ``[B]`` on the input's device for 4-D input.
            Identical images give 1.

    Example:
        >>> a = torch.rand(2, 3, 32, 32)
        >>> ssim(a, a).tolist()
        [1.0, 1.0]
    """
    x, y, batched = _prepare_pair(a, b, crop_border, y_channel, "ssim")
    h, w = x.shape[-2:]
    if min(h, w) < _SSIM_WINDOW:
        raise ValueError(
            f"ssim: images must be at least {_SSIM_WINDOW}×{_SSIM_WINDOW} after crop_border={crop_border}, "
            f"got {h}×{w}"
        )
    # One filtering pass over all five moment images; the window is separable, so two 1-D passes.
    g = _gaussian_1d(_SSIM_WINDOW, _SSIM_SIGMA)
    moments = torch.stack([x, y, x * x, y * y, x * y], dim=1)
    mu_x, mu_y, e_xx, e_yy, e_xy = _correlate_valid(_correlate_valid(moments, g.view(-1, 1)), g.view(1, -1)).unbind(1)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + _SSIM_C1) * (2 * cov_xy + _SSIM_C2)) / (
        (mu_x * mu_x + mu_y * mu_y + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    )
    # Every channel's map has the same size, so the mean over all of them is the mean of channel means.
    return _result(ssim_map.mean(dim=(1, 2, 3)), batched)

"""NIQE, the no-reference Natural Image Quality Evaluator (Mittal, Soundararajan and Bovik, 2013).

This follows the authors' MATLAB release (``computequality.m`` and ``computefeature.m``) step for
step, because NIQE values are only comparable between papers when computed the same way:

1. the image becomes one grey channel: MATLAB ``rgb2ycbcr`` luma on the 0..255 scale, rounded to
   integers as MATLAB's uint8 images are;
2. it is cropped to whole 96×96 blocks (from the top-left corner);
3. at two scales (full size, then MATLAB ``imresize(im, 0.5)``: bicubic with antialiasing) the MSCN
   coefficients are computed with the authors' 7×7 Gaussian window and replicated borders, and each
   block (96×96, then 48×48) gives 18 features: an asymmetric generalised Gaussian (AGGD) fit of the
   coefficients and of their products with the horizontal, vertical and two diagonal neighbours
   (with wrap-around inside the block, as MATLAB's ``circshift``);
4. a Gaussian fitted to the blocks' 36 features is compared with the authors' model of pristine
   images: ``sqrt((mu_p - mu_d) pinv((cov_p + cov_d) / 2) (mu_p - mu_d)^T)``.

The pristine model and the window are the authors' own numbers, shipped next to this file in
``niqe_pristine_params.npz`` (see ``NIQE_NOTICE.md``). All blocks of a batch are processed together.
"""

from __future__ import annotations

import functools
import importlib.resources
import math

import numpy as np
import torch
import torch.nn.functional as F

from .fidelity import _as_batch, _correlate_valid, _crop, _y_255

_BLOCK = 96
# The authors' pristine model and MSCN window, shipped next to this file.
_PARAMS_FILE = "niqe_pristine_params.npz"
# Below this, a mean-subtracted value on the 0..255 scale is float64 rounding noise (see _mscn).
_ROUNDING_NOISE = 1e-9
# The reference fits the AGGD shape by a grid search over this grid; a finer fit would not match it.
_ALPHA_GRID = np.arange(0.2, 10.001, 0.001)
# Neighbour offsets (rows, columns) of the paired-product features.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _params_resource():
    return importlib.resources.files(__package__).joinpath(_PARAMS_FILE)


@functools.lru_cache(maxsize=None)
def _pristine() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The authors' pristine model: mean ``[36]``, covariance ``[36, 36]``, MSCN window ``[7, 7]`` (float64)."""
    with _params_resource().open("rb") as f, np.load(f) as params:
        mu = torch.from_numpy(params["mu_pris_param"].astype(np.float64)).reshape(-1)
        cov = torch.from_numpy(params["cov_pris_param"].astype(np.float64))
        window = torch.from_numpy(params["gaussian_window"].astype(np.float64))
    return mu, cov, window


def check_niqe_model() -> None:
    """Load NIQE's pristine model now, so that a missing or broken file is one clear error up front.

    Callers that measure many images call this first instead of failing on every image.

    Raises:
        OSError: the parameters file cannot be read; the message names it and how to go without NIQE.

    Example:
        >>> check_niqe_model()
    """
    try:
        _pristine()
    except (OSError, KeyError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise OSError(
            f"NIQE's parameters file {str(_params_resource())!r} cannot be read ({reason}); this mmsr install is "
            "incomplete: reinstall mmsr, or skip NIQE (mmsr eval --no-niqe)"
        ) from None


@functools.lru_cache(maxsize=None)
def _aggd_tables() -> tuple[torch.Tensor, ...]:
    """Per grid shape α: α, the ratio the fit matches, the β scale and the mean scale (each ``[9801]``, float64).

    With ``G(s) = Γ(s / α)``: ratio ``G(2)² / (G(1) G(3))``, β scale ``sqrt(G(1) / G(3))``, mean scale
    ``G(2) / G(1)``. lgamma keeps the large Γ values of small α finite and exact enough.
    """
    alpha = torch.from_numpy(_ALPHA_GRID)
    lg1, lg2, lg3 = (torch.lgamma(s / alpha) for s in (1.0, 2.0, 3.0))
    ratio = torch.exp(2 * lg2 - lg1 - lg3)
    return alpha, ratio, torch.exp((lg1 - lg3) / 2), torch.exp(lg2 - lg1)


def _grid_index(target: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Index of the grid entry nearest to each ``target``, ties to the lower one, as MATLAB's ``min``.

    ``ratio`` grows strictly with α, so the nearest entry is one of the two around the insertion point;
    this avoids a ``[n, 9801]`` distance matrix. An undefined target (NaN) gives index 0, as ``min``
    over an all-NaN vector does in the reference.
    """
    hi = torch.searchsorted(ratio, target.contiguous()).clamp(1, ratio.numel() - 1)
    lo = hi - 1
    idx = torch.where((ratio[lo] - target).square() <= (ratio[hi] - target).square(), lo, hi)
    return torch.where(torch.isnan(target), torch.zeros_like(idx), idx)


def _fit_aggd(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Moment-matching AGGD fit of each row of ``x: [..., n]``.

    Returns shape α, left and right scales β_l, β_r and the distribution mean, each ``[...]``. A row with
    no negative (or no positive) values has an undefined scale on that side: NaN, as in the reference.
    """
    alpha_grid, ratio, beta_scale, mean_scale = (t.to(x.device) for t in _aggd_tables())
    sq = x * x
    neg, pos = x < 0, x > 0
    left_std = torch.sqrt((sq * neg).sum(-1) / neg.sum(-1))
    right_std = torch.sqrt((sq * pos).sum(-1) / pos.sum(-1))
    g = left_std / right_std
    r_hat = x.abs().mean(-1).square() / sq.mean(-1)
    r_hat_norm = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1).square()
    idx = _grid_index(r_hat_norm, ratio)
    beta_l = left_std * beta_scale[idx]
    beta_r = right_std * beta_scale[idx]
    return alpha_grid[idx], beta_l, beta_r, (beta_r - beta_l) * mean_scale[idx]


def _mscn(img: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients of ``img: [B, 1, H, W]`` (0..255 scale)."""
    pad = window.shape[-1] // 2
    padded = F.pad(img, (pad, pad, pad, pad), mode="replicate")
    # The window is a Gaussian, the outer product of its marginals (to 3e-17), so two 1-D passes suffice.
    taps = window.sum(dim=1)
    moments = torch.cat([padded, padded * padded], dim=1)
    moments = _correlate_valid(_correlate_valid(moments, taps.view(-1, 1)), taps.view(1, -1))
    mu, second_moment = moments[:, :1], moments[:, 1:]
    # abs() because rounding can make the variance of a flat patch a tiny negative number.
    sigma = torch.sqrt((second_moment - mu * mu).abs())
    centred = img - mu
    # In flat (or exactly linear) neighbourhoods the centred value is exactly zero, but float64 leaves
    # ~1e-13 of rounding noise whose sign is arbitrary. The AGGD fit counts negative and positive values,
    # so that noise would change the features of images with flat areas; make it the exact zero the
    # reference ports get. Genuine values are far larger than the threshold.
    centred = torch.where(centred.abs() < _ROUNDING_NOISE, torch.zeros_like(centred), centred)
    return centred / (sigma + 1)


def _block_features(mscn: torch.Tensor, size: int) -> torch.Tensor:
    """The 18 NIQE features of every ``size``×``size`` block of ``mscn: [B, 1, H, W]``, as ``[B, nblocks, 18]``."""
    b, _, h, w = mscn.shape
    rows, cols = h // size, w // size
    blocks = mscn.reshape(b, rows, size, cols, size).transpose(2, 3).reshape(b, rows * cols, size, size)
    pairs = [blocks * torch.roll(blocks, shifts=shift, dims=(-2, -1)) for shift in _SHIFTS]
    # One fit over the coefficients and the four kinds of neighbour products: [B, nblocks, 5] each.
    alpha, beta_l, beta_r, mean = _fit_aggd(torch.stack([blocks, *pairs], dim=2).flatten(-2))
    coefficients = torch.stack([alpha[..., 0], (beta_l[..., 0] + beta_r[..., 0]) / 2], dim=-1)
    products = torch.stack([alpha, mean, beta_l, beta_r], dim=-1)[..., 1:, :].flatten(-2)
    return torch.cat([coefficients, products], dim=-1)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, the kernel of MATLAB's 'bicubic'."""
    ax = np.abs(x)
    near = 1.5 * ax**3 - 2.5 * ax**2 + 1
    far = -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return np.where(ax <= 1, near, np.where(ax <= 2, far, 0.0))


def _downscale_taps(in_len: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights, each ``[ceil(in_len * scale), taps]``, of MATLAB ``imresize`` for scale < 1.

    Antialiasing stretches the kernel by 1 / scale. Indices beyond the edges are mirrored with the edge
    pixel repeated, as MATLAB does; MATLAB also drops all-zero tap columns, which changes nothing here.
    """
    out_len = math.ceil(in_len * scale)
    width = 4.0 / scale
    u = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)
    taps = np.floor(u - width / 2)[:, None] + np.arange(math.ceil(width) + 2)
    weights = _cubic((u[:, None] - taps) * scale)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    index = mirror[(taps.astype(np.int64) - 1) % (2 * in_len)]
    return torch.from_numpy(index), torch.from_numpy(weights)


def _imresize_half(img: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imresize(img, 0.5)`` (bicubic, antialiased) of ``img: [B, 1, H, W]``, rows first."""
    out = img
    for dim in (-2, -1):
        index, weights = (t.to(img.device) for t in _downscale_taps(out.shape[dim], 0.5))
        shape = [-1, 1] if dim == -2 else [-1]
        # One pass per tap keeps memory at one output-sized temporary.
        taps = (out.index_select(dim, index[:, k]) * weights[:, k].view(shape) for k in range(index.shape[1]))
        out = functools.reduce(torch.add, taps)
    return out


def _distance(features: torch.Tensor, mu_p: torch.Tensor, cov_p: torch.Tensor) -> float:
    """NIQE of one image from its block features ``[nblocks, 36]``.

    Like the reference (``nanmean``/``nancov``), the mean skips undefined features and the covariance
    uses only the blocks whose features are all defined; with fewer than two such blocks there is no
    sample covariance and it is taken as zero.
    """
    mu_d = torch.nanmean(features, dim=0)
    complete = features[~torch.isnan(features).any(dim=1)]
    cov_d = torch.cov(complete.T) if complete.shape[0] >= 2 else torch.zeros_like(cov_p)
    diff = mu_p - mu_d
    return math.sqrt(float(diff @ torch.linalg.pinv((cov_p + cov_d) / 2) @ diff))


def niqe(img: torch.Tensor | np.ndarray, *, crop_border: int = 0) -> float | torch.Tensor:
    """NIQE of an image, computed as the authors' MATLAB release does (lower is better).

    Args:
        img: ``[C, H, W]`` or ``[B, C, H, W]`` with C = 3 (RGB, measured on its BT.601 luma) or 1 (grey);
            uint8 (0..255) or floating point (0..1); a torch tensor or a numpy array. At least 96×96
            after cropping; only whole 96×96 blocks from the top-left corner are measured.
        crop_border: pixels removed from each side first (the SR convention is crop = scale).

    Returns:
        a python float for 3-D input, a float32 tensor ``[B]`` on the input's device for 4-D input.
        NaN when NIQE is undefined, e.g. for a constant image, which has no contrast to fit.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> img = (rng.random((3, 192, 192)) * 255).astype(np.uint8)
        >>> niqe(img) > 10  # white noise is far from natural
        True
    """
    x, batched = _as_batch(img, "img", "niqe")
    x = _crop(x, crop_border, "niqe")
    h, w = x.shape[-2:]
    if min(h, w) < _BLOCK:
        raise ValueError(
            f"niqe: img must be at least {_BLOCK}×{_BLOCK} after crop_border={crop_border} "
            f"(one NIQE block), got {h}×{w}"
        )
    grey = _y_255(x) if x.shape[1] == 3 else x
    # The reference measures uint8 images; rounding makes float input measure the same.
    grey = grey.round()[..., : h - h % _BLOCK, : w - w % _BLOCK]
    check_niqe_model()
    mu_p, cov_p, window = _pristine()
    features = torch.cat(
        [
            _block_features(_mscn(grey, window), _BLOCK),
            _block_features(_mscn(_imresize_half(grey), window), _BLOCK // 2),
        ],
        dim=-1,
    ).cpu()
    values = [_distance(f, mu_p, cov_p) for f in features]
    return torch.tensor(values, dtype=torch.float32, device=x.device) if batched else values[0]

"""PSNR-Y per TVAT bin: how well an SR image reconstructs the pixels of smooth, medium and complex tiles.

The paper's Table 1 asks whether the best generator depth depends on texture. To answer it on whole
validation images, each SR pixel is given the texture bin of one LR tile, exactly as mmsr's
Upscaler sees the image:

1. the uint8 LR image is cut by :func:`mmsr.tile` with the Upscaler's ``tile_size`` and ``overlap``;
2. each tile is scored by :func:`mmsr.tvat` (the bundle's threshold) and binned by
   :func:`mmsr.classify` with the bin edges;
3. tiles overlap, so each LR pixel is **owned** by the one tile whose centre is nearest along each
   axis (overlaps are split down the middle, the rule `mmsr classify --map` draws with). Every LR
   pixel therefore has exactly one owner, and the ``scale x scale`` SR/HR pixels above it take
   its owner's bin;
4. the ``crop_border`` SR pixels along every image side are dropped (bin -1), as `mmsr eval` drops
   them before its PSNR;
5. per bin, the squared error of BT.601 luma (:func:`mmsr.metrics.rgb_to_y`, 0..255) between SR and
   the mod-cropped HR is summed with its pixel count. Totals add over images, so a set's PSNR per
   bin is ``10 log10(255^2 / (sum of squared errors / pixels))`` over all its images' pixels in
   the bin (pooled, not a mean of per-image PSNRs: a bin may hold a handful of pixels in one image).

Summed over all bins, the totals are exactly the whole-image PSNR-Y of `mmsr eval` (same luma, same
border crop), which is how the tests check that every pixel is counted once.

Example:
    >>> lr = torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8)
    >>> hr = torch.randint(0, 256, (3, 160, 192), dtype=torch.uint8)
    >>> totals = measure_bins(hr, hr, lr, [0.05], threshold=0.0, tile_size=32, overlap=8, scale=4, crop_border=4)
    >>> totals.psnr()
    [None, inf]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

import mmsr
from mmsr.grid import TileGrid
from mmsr.metrics import rgb_to_y

__all__ = ["BinTotals", "binned_squared_error", "measure_bins", "pixel_bins", "tile_bins"]

_PEAK = 255.0
_NOT_COUNTED = -1  # pixel-bin value of the border pixels that no PSNR counts


@dataclass(frozen=True)
class BinTotals:
    """Squared luma error, pixel count and tile count per bin; add them up over images with ``+``.

    Attributes:
        squared_error: per bin, the sum over its pixels of (Y_sr - Y_hr)^2, Y on the 0..255 scale.
        pixels: per bin, the SR pixels counted.
        tiles: per bin, the LR tiles binned there (each tile once, whatever it owns).
    """

    squared_error: Tuple[float, ...]
    pixels: Tuple[int, ...]
    tiles: Tuple[int, ...]

    @classmethod
    def empty(cls, num_bins: int) -> BinTotals:
        """All-zero totals for ``num_bins`` bins, the start of a sum over images."""
        return cls((0.0,) * num_bins, (0,) * num_bins, (0,) * num_bins)

    @property
    def num_bins(self) -> int:
        return len(self.pixels)

    def __add__(self, other: BinTotals) -> BinTotals:
        if other.num_bins != self.num_bins:
            raise ValueError(f"cannot add totals of {self.num_bins} and {other.num_bins} bins")
        return BinTotals(
            tuple(a + b for a, b in zip(self.squared_error, other.squared_error)),
            tuple(a + b for a, b in zip(self.pixels, other.pixels)),
            tuple(a + b for a, b in zip(self.tiles, other.tiles)),
        )

    def psnr(self) -> List[Optional[float]]:
        """PSNR-Y in dB per bin: ``inf`` for a perfect reconstruction, None for a bin with no pixels."""
        values: List[Optional[float]] = []
        for error, count in zip(self.squared_error, self.pixels):
            if count == 0:
                values.append(None)
            elif error == 0:
                values.append(math.inf)
            else:
                values.append(10.0 * math.log10(_PEAK**2 * count / error))
        return values

    def to_dict(self) -> dict:
        """JSON-ready totals (PSNR is recomputed from them, so it is not stored)."""
        return {"squared_error": list(self.squared_error), "pixels": list(self.pixels), "tiles": list(self.tiles)}

    @classmethod
    def from_dict(cls, data: dict) -> BinTotals:
        return cls(tuple(float(v) for v in data["squared_error"]), tuple(int(v) for v in data["pixels"]),
                   tuple(int(v) for v in data["tiles"]))


def tile_bins(
    lr: Tensor, edges: Sequence[float], *, threshold: float, tile_size: int, overlap: int
) -> Tuple[Tensor, Tensor, TileGrid]:
    """The bin and TVAT score of every LR tile, as the Upscaler would route it.

    Args:
        lr: uint8 or float Tensor[3, h, w], the LR image.
        edges: ascending TVAT bin edges, K - 1 of them for K bins (a bundle's ``boundaries``).
        threshold: the TVAT threshold (a bundle's ``threshold``).
        tile_size, overlap: the Upscaler's tiling.

    Returns:
        ``(bins, scores, grid)``: int64 Tensor[N] and float32 Tensor[N] in row-major tile order,
        and the tile grid.

    Example:
        >>> bins, scores, grid = tile_bins(torch.zeros(3, 40, 40), [0.1], threshold=0.0, tile_size=32, overlap=8)
        >>> bins.tolist(), grid.num_tiles
        ([0, 0, 0, 0], 4)
    """
    if lr.dim() != 3 or lr.shape[0] != 3:
        raise ValueError(f"lr should be a [3, h, w] RGB tensor, got shape {tuple(lr.shape)}")
    tiles, grid = mmsr.tile(lr, tile_size, overlap)
    scores = mmsr.tvat(tiles, threshold)
    return mmsr.classify(scores, list(edges)), scores, grid


def _axis_owners(origins: Sequence[int], tile_len: int, length: int) -> Tensor:
    """int64 Tensor[length]: per LR pixel along one axis, the index of the tile whose centre is nearest."""
    centres = torch.tensor([o + tile_len / 2 for o in origins], dtype=torch.float64)
    cuts = (centres[1:] + centres[:-1]) / 2
    return torch.searchsorted(cuts, torch.arange(length, dtype=torch.float64) + 0.5)


def pixel_bins(grid: TileGrid, bins: Tensor, *, scale: int, crop_border: int) -> Tensor:
    """Per SR pixel, the bin of the LR tile that owns it; -1 for the dropped border.

    Args:
        grid: the LR tile grid.
        bins: int64 Tensor[N], one bin per tile in row-major order (from :func:`tile_bins`).
        scale: the SR factor.
        crop_border: SR pixels dropped along every side (not counted in any bin).

    Returns:
        int64 Tensor[h * scale, w * scale].

    Example:
        >>> grid = mmsr.make_grid(40, 40, 32, 8)
        >>> pixel_bins(grid, torch.tensor([0, 1, 2, 3]), scale=1, crop_border=0)[[0, 0, 39, 39], [0, 39, 0, 39]].tolist()
        [0, 1, 2, 3]
    """
    if bins.shape != (grid.num_tiles,):
        raise ValueError(f"bins should hold one entry per tile, shape ({grid.num_tiles},), got {tuple(bins.shape)}")
    height, width = grid.height * scale, grid.width * scale
    if 2 * crop_border >= min(height, width):
        raise ValueError(f"crop_border={crop_border} leaves no pixels of a {height}x{width} SR image")
    rows = _axis_owners(grid.ys, grid.tile_h, grid.height).repeat_interleave(scale)
    cols = _axis_owners(grid.xs, grid.tile_w, grid.width).repeat_interleave(scale)
    owner = rows[:, None] * grid.cols + cols[None, :]  # [H, W]: row-major tile index
    per_pixel = bins.cpu()[owner]
    if crop_border:
        per_pixel[:crop_border] = _NOT_COUNTED
        per_pixel[-crop_border:] = _NOT_COUNTED
        per_pixel[:, :crop_border] = _NOT_COUNTED
        per_pixel[:, -crop_border:] = _NOT_COUNTED
    return per_pixel


def binned_squared_error(sr: Tensor, hr: Tensor, per_pixel: Tensor, num_bins: int) -> Tuple[Tensor, Tensor]:
    """Sum of squared BT.601 luma error and pixel count per bin.

    Args:
        sr, hr: uint8 (or float in [0, 1]) Tensor[3, H, W] of the same shape.
        per_pixel: int64 Tensor[H, W] of bins from :func:`pixel_bins`; -1 is not counted.
        num_bins: K.

    Returns:
        ``(squared_error, pixels)``: float64 Tensor[K] and int64 Tensor[K].

    Example:
        >>> img = torch.zeros(3, 4, 4, dtype=torch.uint8)
        >>> binned_squared_error(img, img, torch.zeros(4, 4, dtype=torch.int64), 2)[1].tolist()
        [16, 0]
    """
    if sr.shape != hr.shape or sr.dim() != 3 or sr.shape[0] != 3:
        raise ValueError(f"sr and hr should be [3, H, W] tensors of one shape, got {tuple(sr.shape)} and {tuple(hr.shape)}")
    if per_pixel.shape != sr.shape[1:]:
        raise ValueError(f"per_pixel should be {tuple(sr.shape[1:])} like the images, got {tuple(per_pixel.shape)}")
    error = (rgb_to_y(sr.cpu()) - rgb_to_y(hr.cpu()))[0].square()  # float64 [H, W]
    counted = per_pixel >= 0
    index = per_pixel[counted]
    squared_error = torch.zeros(num_bins, dtype=torch.float64).index_add_(0, index, error[counted])
    pixels = torch.bincount(index, minlength=num_bins)[:num_bins]
    return squared_error, pixels


def measure_bins(
    sr: Tensor,
    hr: Tensor,
    lr: Tensor,
    edges: Sequence[float],
    *,
    threshold: float,
    tile_size: int,
    overlap: int,
    scale: int,
    crop_border: int,
) -> BinTotals:
    """One image's :class:`BinTotals`: its LR tiles binned by TVAT, its SR pixels measured per bin.

    Args:
        sr: Tensor[3, h * scale, w * scale], the SR image (uint8, or float in [0, 1]).
        hr: the mod-cropped HR image, same shape and scale as ``sr``.
        lr: Tensor[3, h, w], the LR image that ``sr`` was made from.
        edges: ascending TVAT bin edges (K - 1 for K bins).
        threshold, tile_size, overlap: the TVAT threshold and the Upscaler's tiling.
        scale: the SR factor.
        crop_border: SR pixels dropped along every side.

    Example:
        >>> lr = torch.zeros(3, 10, 10, dtype=torch.uint8)
        >>> hr = torch.zeros(3, 40, 40, dtype=torch.uint8)
        >>> measure_bins(hr, hr, lr, [], threshold=0.0, tile_size=8, overlap=2, scale=4, crop_border=4).pixels
        (1024,)
    """
    expected = (3, lr.shape[-2] * scale, lr.shape[-1] * scale)
    if tuple(sr.shape) != expected:
        raise ValueError(f"sr should be {expected}: the {tuple(lr.shape)} LR times {scale}, got {tuple(sr.shape)}")
    bins, _, grid = tile_bins(lr, edges, threshold=threshold, tile_size=tile_size, overlap=overlap)
    num_bins = len(edges) + 1
    per_pixel = pixel_bins(grid, bins, scale=scale, crop_border=crop_border)
    squared_error, pixels = binned_squared_error(sr, hr, per_pixel, num_bins)
    tiles = torch.bincount(bins.cpu(), minlength=num_bins)[:num_bins]
    return BinTotals(tuple(squared_error.tolist()), tuple(pixels.tolist()), tuple(tiles.tolist()))

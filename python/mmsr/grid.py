"""The tile grid: where the segmentation layer cuts tiles, in plain integer arithmetic.

This is the one place that decides tile origins in Python. ``csrc/include/mmsr/common.h``
(``make_axis_grid``) does the same for the kernels; the fake kernels and the real ones compute
output shapes from it, so the two can never disagree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch


def axis_grid(length: int, tile_size: int, overlap: int) -> Tuple[int, int, int]:
    """(tile, stride, count) along one axis of ``length`` pixels.

    The tile is clamped to the axis length; origins are 0, stride, 2*stride, ... while a tile
    fits, then one tile flush with the far edge, so every pixel is covered and none is dropped.
    """
    tile = min(tile_size, length)
    stride = tile - min(overlap, tile - 1)
    count = 1 if length <= tile else (length - tile + stride - 1) // stride + 1
    return tile, stride, count


def axis_origins(length: int, tile_size: int, overlap: int) -> Tuple[int, ...]:
    """Tile origins along one axis (see :func:`axis_grid`)."""
    tile, stride, count = axis_grid(length, tile_size, overlap)
    return tuple(min(k * stride, length - tile) for k in range(count))


@dataclass(frozen=True)
class TileGrid:
    """How an image of ``height`` x ``width`` LR pixels is cut into tiles.

    Tiles are ``tile_h`` x ``tile_w`` (the requested size clamped to the image) and numbered in
    row-major order: tile ``i * len(xs) + j`` has its top-left corner at ``(ys[i], xs[j])``.
    """

    height: int
    width: int
    tile_size: int  # as requested; tile_h / tile_w are clamped to the image
    overlap: int

    def __post_init__(self) -> None:
        # Checked here, not only in make_grid, because TileGrid is public: a hand-made grid with a
        # bad field would otherwise surface as a confusing count or a kernel's refusal in stitch.
        for name in ("height", "width", "tile_size"):
            _check_size(getattr(self, name), name, 1)
        _check_size(self.overlap, "overlap", 0)
        if self.overlap >= self.tile_size:
            raise ValueError(
                f"overlap must be smaller than tile_size, got overlap={self.overlap} >= tile_size={self.tile_size}"
            )

    @property
    def tile_h(self) -> int:
        return axis_grid(self.height, self.tile_size, self.overlap)[0]

    @property
    def tile_w(self) -> int:
        return axis_grid(self.width, self.tile_size, self.overlap)[0]

    @property
    def stride_h(self) -> int:
        return axis_grid(self.height, self.tile_size, self.overlap)[1]

    @property
    def stride_w(self) -> int:
        return axis_grid(self.width, self.tile_size, self.overlap)[1]

    @property
    def overlap_h(self) -> int:
        return self.tile_h - self.stride_h

    @property
    def overlap_w(self) -> int:
        return self.tile_w - self.stride_w

    @property
    def ys(self) -> Tuple[int, ...]:
        return axis_origins(self.height, self.tile_size, self.overlap)

    @property
    def xs(self) -> Tuple[int, ...]:
        return axis_origins(self.width, self.tile_size, self.overlap)

    @property
    def rows(self) -> int:
        return axis_grid(self.height, self.tile_size, self.overlap)[2]

    @property
    def cols(self) -> int:
        return axis_grid(self.width, self.tile_size, self.overlap)[2]

    @property
    def num_tiles(self) -> int:
        """Tiles per image."""
        return self.rows * self.cols

    def origins(self) -> Tuple[Tuple[int, int], ...]:
        """(y, x) of every tile in row-major order."""
        return tuple((y, x) for y in self.ys for x in self.xs)


def make_grid(height: int, width: int, tile_size: int, overlap: int) -> TileGrid:
    """The grid for an image of ``height`` x ``width``, with arguments checked.

    Example:
        >>> g = make_grid(100, 70, 32, 8)  # stride 24; last tiles flush with the far edges
        >>> g.ys, g.xs, g.num_tiles
        ((0, 24, 48, 68), (0, 24, 38), 12)
    """
    return TileGrid(height, width, tile_size, overlap)


def _check_size(value, name: str, minimum: int) -> None:
    if isinstance(value, torch.SymInt) and not isinstance(value, int):
        # torch.export with a dynamic height or width: the grid (how many tiles, where) is plain
        # Python arithmetic, so it needs the sizes themselves.
        raise ValueError(
            f"{name} is symbolic ({value}): mmsr.tile needs concrete image sizes; export or compile "
            "with a static height and width"
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")

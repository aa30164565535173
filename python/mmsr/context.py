"""Context windows: each LR tile goes through its generator with real image pixels around it.

Every conv of a generator zero-pads its input, so near a tile edge that lies inside the image the
tile's SR output differs from whole-image inference, where real pixels sit beyond that edge. The
Upscaler therefore cuts each tile's *window*: the tile plus ``context`` LR pixels on every side,
shifted to stay inside the image. A tile side on the image border then stays on the window border,
zero-padded exactly as whole-image inference pads it, and an inner side gets real neighbours. The
window's SR output is cropped back to the tile before blending, so tiling, TVAT classes and
stitching are unchanged; only the generator sees more.

Neighbouring windows overlap by ``overlap + 2 * context`` pixels, all computed twice. A *run* of
tiles, up to ``max_run`` neighbours in one tile row that go to the same class, therefore shares
one window, from the first tile's window start to the last one's end (:func:`tile_runs`): every
tile still gets at least its own window's pixels around it, and the work of a run of n 32-pixel
tiles (overlap 8, context 4) is ``(24 n + 16) / (40 n)`` of n separate windows (0.68 at n = 8).

Example:
    >>> w = axis_windows((0, 24, 38), tile_len=32, image_len=70, context=4)
    >>> w.length, w.starts, w.offsets
    (40, (0, 20, 30), (0, 4, 8))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["AxisWindows", "TileRun", "WindowIndex", "axis_windows", "crop_tiles", "gather_windows", "tile_runs"]


@dataclass(frozen=True)
class AxisWindows:
    """The windows of the tiles along one axis.

    Attributes:
        length: window edge (tile + 2 * context, at most the image's length).
        starts: each window's first pixel, in image coordinates.
        offsets: each tile's origin minus its window's start: where the tile sits in the window.
    """

    length: int
    starts: Tuple[int, ...]
    offsets: Tuple[int, ...]

    def index(self, device: torch.device | str, shift: int = 0) -> WindowIndex:
        """The windows as index tensors on ``device``, starts counted from pixel ``shift``."""
        starts = torch.tensor(self.starts, device=device) - shift
        return WindowIndex(self.length, starts, torch.tensor(self.offsets, device=device))


@dataclass(frozen=True)
class WindowIndex:
    """:class:`AxisWindows` as index tensors, made once and indexed per batch of tiles."""

    length: int
    starts: Tensor
    offsets: Tensor


def axis_windows(origins: Sequence[int], tile_len: int, image_len: int, context: int) -> AxisWindows:
    """Windows of ``context`` pixels around tiles at ``origins``, each kept inside ``[0, image_len)``."""
    length = min(tile_len + 2 * context, image_len)
    starts = tuple(min(max(origin - context, 0), image_len - length) for origin in origins)
    return AxisWindows(length, starts, tuple(origin - start for origin, start in zip(origins, starts)))


def gather_windows(source: Tensor, images: Tensor, row_starts: Tensor, col_starts: Tensor, height: int, width: int) -> Tensor:
    """Windows ``source[images[n], :, row_starts[n] : +height, col_starts[n] : +width]`` as Tensor[n, C, height, width].

    One indexing operation for the whole batch (no Python loop over tiles).

    Example:
        >>> x = torch.arange(2 * 1 * 4 * 5).view(2, 1, 4, 5)
        >>> gather_windows(x, torch.tensor([1]), torch.tensor([1]), torch.tensor([2]), 2, 3)[0, 0]
        tensor([[27, 28, 29],
                [32, 33, 34]])
    """
    rows = row_starts.view(-1, 1) + torch.arange(height, device=source.device)  # [n, height]
    cols = col_starts.view(-1, 1) + torch.arange(width, device=source.device)  # [n, width]
    # Advanced indices split by the channel slice come first: the result is [n, height, width, C].
    picked = source[images.view(-1, 1, 1), :, rows.view(-1, height, 1), cols.view(-1, 1, width)]
    return picked.permute(0, 3, 1, 2)


def crop_tiles(windows: Tensor, row_offsets: Tensor, col_offsets: Tensor, height: int, width: int) -> Tensor:
    """``windows[n, :, row_offsets[n] : +height, col_offsets[n] : +width]`` as a contiguous Tensor[n, C, height, width]."""
    n = windows.shape[0]
    return gather_windows(windows, torch.arange(n, device=windows.device), row_offsets, col_offsets, height, width).contiguous()


@dataclass(frozen=True)
class TileRun:
    """Tiles ``first .. first + length - 1`` (flat, image-major, row-major): neighbours in one tile row, one class."""

    first: int
    length: int
    cls: int


def tile_runs(classes: Sequence[int], cols: int, max_run: int) -> list[TileRun]:
    """Split a grid's tiles into runs of horizontal neighbours of one class, at most ``max_run`` long.

    Args:
        classes: each tile's class, flat over ``[images, rows, cols]`` in row-major order.
        cols: tiles per grid row; a run never wraps into the next row.
        max_run: the longest run (>= 1); longer stretches are split into runs of this length.

    Example:
        >>> [(r.first, r.length, r.cls) for r in tile_runs([0, 0, 1, 1, 1, 1], cols=3, max_run=2)]
        [(0, 2, 0), (2, 1, 1), (3, 2, 1), (5, 1, 1)]
    """
    runs: list[TileRun] = []
    first = 0
    for index in range(1, len(classes) + 1):
        if (
            index == len(classes)
            or index % cols == 0
            or classes[index] != classes[first]
            or index - first == max_run
        ):
            runs.append(TileRun(first, index - first, classes[first]))
            first = index
    return runs

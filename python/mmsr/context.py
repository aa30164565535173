"""Context windows: each LR tile goes through its generator with real image pixels around it.

Every conv of a generator zero-pads its input, so near a tile edge that lies inside the image the
tile's SR output differs from whole-image inference, where real pixels sit beyond that edge. The
Upscaler therefore cuts each tile's *window*: the tile plus ``context`` LR pixels on every side,
shifted to stay inside the image. A tile side on the image border then stays on the window border,
zero-padded exactly as whole-image inference pads it, and an inner side gets real neighbours. The
window's SR output is cropped back to the tile before blending, so tiling, TVAT classes and
stitching are unchanged; only the generator sees more.

Neighbouring windows overlap by ``overlap + 2 * context`` pixels, all computed twice. A *block*
of neighbouring tiles that go to the same class therefore shares one window, from its first
tile's window start to its last tile's window end on each axis (:func:`tile_blocks`): every tile
still gets at least its own window's pixels around it, and a block of n x m 32-pixel tiles
(overlap 8, context 4) costs ``(24 n + 16) (24 m + 16) / (1600 n m)`` of n m separate windows
(0.65 for a row of 8, 0.46 for 4 x 8).

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

__all__ = ["AxisWindows", "TileBlock", "WindowIndex", "axis_windows", "crop_tiles", "gather_windows", "promote_blocks", "tile_blocks"]


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
class TileBlock:
    """Tiles ``rows x cols`` of one image from grid position (``row``, ``col``), all of class ``cls``."""

    image: int
    row: int
    col: int
    rows: int
    cols: int
    cls: int


def tile_blocks(
    classes: Sequence[int], rows: int, cols: int, fits, row_group: int = 1, first_row: int = 0
) -> list[TileBlock]:
    """Cover a grid's tiles with rectangles of one class, greedily in row-major order.

    From each tile not yet covered, a block grows right while the next tile has its class (and is
    free), then down while the whole next row of the block does, as long as ``fits(rows, cols)``
    allows the block and it does not cross a multiple of ``row_group`` rows (counting the grid's
    rows from ``first_row``): so a grid cut into bands of a multiple of ``row_group`` rows gets the
    same blocks as the whole grid.

    Args:
        classes: each tile's class, flat over ``[images, rows, cols]`` in row-major order.
        rows, cols: the grid's shape per image.
        fits: ``fits(block_rows, block_cols) -> bool``, e.g. a bound on the block's window area.
        row_group: blocks stay within aligned groups of this many rows.
        first_row: the grid's first row in the whole image's rows (a band's first row).

    Example:
        >>> blocks = tile_blocks([0, 0, 1, 0, 0, 1], rows=2, cols=3, fits=lambda r, c: True, row_group=2)
        >>> [(b.row, b.col, b.rows, b.cols, b.cls) for b in blocks]
        [(0, 0, 2, 2, 0), (0, 2, 2, 1, 1)]
    """
    per_image = rows * cols
    taken = [False] * len(classes)
    blocks: list[TileBlock] = []

    def free(index: int, cls: int) -> bool:
        return not taken[index] and classes[index] == cls

    for index in range(len(classes)):
        if taken[index]:
            continue
        image, rest = divmod(index, per_image)
        r, c = divmod(rest, cols)
        cls = classes[index]
        width = 1
        while c + width < cols and free(index + width, cls) and fits(1, width + 1):
            width += 1
        height = 1
        while (
            r + height < rows
            and (first_row + r + height) % row_group != 0
            and fits(height + 1, width)
            and all(free(index + height * cols + j, cls) for j in range(width))
        ):
            height += 1
        for i in range(height):
            for j in range(width):
                taken[index + i * cols + j] = True
        blocks.append(TileBlock(image, r, c, height, width, cls))
    return blocks


def promote_blocks(
    classes: Sequence[int],
    rows: int,
    cols: int,
    fits,
    window_area,
    costs: Sequence[float],
    target: int,
    row_group: int = 1,
    first_row: int = 0,
) -> list[TileBlock]:
    """Blocks as :func:`tile_blocks` makes them, except that where sending a whole block of the
    ``target`` model's plan to ``target`` is estimated cheaper, its tiles all go there.

    Routing cuts blocks wherever the class changes, and a small block pays for its context on
    every side: a lone shallow tile inside a region of deep ones can cost more than it saves.
    This plans the grid as if every tile went to ``target`` (the *cells*: the blocks that plan
    would run), then, cell by cell, keeps the cheaper of two plans by estimated cost (``costs[k]``
    per window pixel of class ``k``'s model, e.g. its multiply-adds per LR pixel): the cell as one
    ``target`` block, or the cell's tiles in blocks of their own classes. Then, per image and
    aligned group of ``row_group`` rows, if plain :func:`tile_blocks` (whose blocks may cross
    cells) is estimated cheaper there, its blocks are used instead. Deciding per group, not for
    the whole grid, makes a band of whole groups plan exactly as the whole image does. So in every
    group the estimated cost never exceeds pure routing's, nor the all-``target`` plan's where no
    tile's class costs more than ``target`` (a cell holding a tile of a costlier class is not
    promoted); tiles only ever move to ``target``, and only from classes whose models cost less.

    Args:
        classes, rows, cols, fits, row_group, first_row: as for :func:`tile_blocks`.
        window_area: ``window_area(block) -> int``, the LR pixels of a block's window.
        costs: per class, the estimated cost of one window pixel through its model.
        target: the class tiles may be promoted to (the Upscaler's deepest class).

    Example:
        >>> area = lambda b: (24 * b.rows + 16) * (24 * b.cols + 16)  # 32-pixel tiles, overlap 8, context 4
        >>> blocks = promote_blocks([1, 0, 1, 1], 1, 4, lambda r, c: True, area, costs=[2.0, 5.0], target=1)
        >>> [(b.col, b.cols, b.cls) for b in blocks]  # the lone shallow tile would split the deep block
        [(0, 4, 1)]
        >>> blocks = promote_blocks([0, 0, 1, 1], 1, 4, lambda r, c: True, area, costs=[2.0, 5.0], target=1)
        >>> [(b.col, b.cols, b.cls) for b in blocks]
        [(0, 2, 0), (2, 2, 1)]
    """
    def cost(plan) -> float:
        return sum(costs[b.cls] * window_area(b) for b in plan)

    per_image = rows * cols
    blocks: list[TileBlock] = []
    layout = dict(rows=rows, cols=cols, fits=fits, row_group=row_group, first_row=first_row)
    cells = tile_blocks([target] * len(classes), **layout)
    for cell in cells:
        base = cell.image * per_image + cell.row * cols + cell.col
        own = [classes[base + i * cols + j] for i in range(cell.rows) for j in range(cell.cols)]
        if all(k == target for k in own):
            blocks.append(cell)
            continue
        # The cell is one aligned group of rows at most, so its own blocks need no row_group cut.
        inside = [
            TileBlock(cell.image, cell.row + b.row, cell.col + b.col, b.rows, b.cols, b.cls)
            for b in tile_blocks(own, cell.rows, cell.cols, fits, row_group=cell.rows + 1)
        ]
        promotable = all(costs[k] < costs[target] for k in own if k != target)
        blocks.extend([cell] if promotable and cost([cell]) < cost(inside) else inside)
    routed = tile_blocks(classes, **layout)
    # Chosen per image and aligned group of rows, never for the whole grid at once: a band of whole
    # groups then plans exactly as the whole image does (both plans' blocks stay within groups).
    def group(block: TileBlock) -> tuple[int, int]:
        return block.image, (first_row + block.row) // row_group

    promoted_in: dict[tuple[int, int], list[TileBlock]] = {}
    routed_in: dict[tuple[int, int], list[TileBlock]] = {}
    for plan, by_group in ((blocks, promoted_in), (routed, routed_in)):
        for block in plan:
            by_group.setdefault(group(block), []).append(block)
    chosen: list[TileBlock] = []
    for key in sorted(routed_in):
        mine, theirs = promoted_in.get(key, []), routed_in[key]
        chosen.extend(theirs if cost(theirs) <= cost(mine) else mine)
    return chosen

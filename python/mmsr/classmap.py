"""Class maps: which texture class each LR tile falls in, as numbers, a histogram or a tinted picture.

:func:`tile_classes` runs the routing half of the pipeline (tile -> TVAT -> classify) without any
model. :func:`render_class_map` paints it over the image so a person can see what the router did,
and :func:`class_map_record` turns it into plain JSON-ready data.

Example:
    >>> image = torch.rand(3, 80, 100)
    >>> classes, scores, grid = tile_classes(image, [0.05, 0.2], tile_size=32, overlap=8)
    >>> classes.shape, render_class_map(image, classes, grid, num_classes=3).dtype
    (torch.Size([3, 4]), torch.uint8)
"""
from __future__ import annotations

import json
from typing import List, Optional, Sequence, Tuple

import torch

from .grid import TileGrid
from .ops import DEFAULT_TVAT_THRESHOLD, classify, tile, tvat

__all__ = [
    "class_colors",
    "class_histogram",
    "class_map_record",
    "record_to_json",
    "render_class_map",
    "tile_classes",
]

# Smooth -> complex runs blue -> pale yellow -> red (ColorBrewer RdYlBu, reversed): ordered classes
# get ordered colours, and the two ends stay apart for viewers with red-green colour blindness.
_ANCHORS = torch.tensor(
    [[44, 123, 182], [171, 217, 233], [255, 255, 191], [253, 174, 97], [215, 25, 28]], dtype=torch.float32
)
_TINT = 0.45  # share of the class colour in a tinted pixel: strong enough to read, weak enough to see through
_BORDER_SHADE = 0.6  # tile borders are drawn in the tint darkened to this fraction


def tile_classes(
    image: torch.Tensor,
    boundaries: Sequence[float],
    *,
    threshold: float = DEFAULT_TVAT_THRESHOLD,
    tile_size: int = 32,
    overlap: int = 8,
) -> Tuple[torch.Tensor, torch.Tensor, TileGrid]:
    """Texture class and TVAT score of every tile, as the Upscaler routes them.

    Args:
        image: Tensor[C, H, W] or Tensor[B, C, H, W], uint8 or float in [0, 1], any device.
        boundaries: ascending TVAT class edges (``K - 1`` of them for K classes).
        threshold: the TVAT threshold (a bundle's ``threshold``).
        tile_size, overlap: the tiling, as for :func:`mmsr.tile`.

    Returns:
        ``(classes, scores, grid)``: int64 classes and float32 scores, each [rows, cols] for a
        3-D image or [B, rows, cols] for a 4-D one, on the image's device; and the tile grid.

    Example:
        >>> classes, _, grid = tile_classes(torch.zeros(2, 3, 64, 64), [0.1])
        >>> classes.shape, int(classes.max())
        (torch.Size([2, 3, 3]), 0)
    """
    tiles, grid = tile(image, tile_size, overlap)
    scores = tvat(tiles, threshold)
    classes = classify(scores, boundaries)
    shape = (grid.rows, grid.cols) if image.dim() == 3 else (-1, grid.rows, grid.cols)
    return classes.view(shape), scores.view(shape), grid


def class_histogram(classes: torch.Tensor, num_classes: int) -> List[int]:
    """Number of tiles in each class.

    Args:
        classes: int64 Tensor of class indices, any shape.
        num_classes: K; the result has K entries even when some classes are empty.

    Example:
        >>> class_histogram(torch.tensor([[0, 2], [2, 2]]), 4)
        [1, 0, 3, 0]
    """
    return torch.bincount(classes.flatten().cpu(), minlength=num_classes).tolist()[:num_classes]


def class_colors(num_classes: int) -> torch.Tensor:
    """One RGB colour per class, smooth (blue) to complex (red).

    Returns:
        float32 Tensor[num_classes, 3] with values in [0, 255].

    Example:
        >>> class_colors(2).round().tolist()
        [[44.0, 123.0, 182.0], [215.0, 25.0, 28.0]]
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if num_classes == 1:
        return _ANCHORS[2:3].clone()
    position = torch.linspace(0, len(_ANCHORS) - 1, num_classes)
    low = position.floor().long().clamp(max=len(_ANCHORS) - 2)
    frac = (position - low).unsqueeze(1)
    return _ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac


def _owners(origins: Sequence[int], tile_len: int, length: int) -> torch.Tensor:
    # Each pixel belongs to the tile whose centre is nearest: tiles overlap, but a map must show
    # one class per pixel, and "nearest centre" splits every overlap down its middle.
    centres = torch.tensor([o + tile_len / 2 for o in origins], dtype=torch.float64)
    cuts = (centres[1:] + centres[:-1]) / 2
    return torch.searchsorted(cuts, torch.arange(length, dtype=torch.float64) + 0.5)


def render_class_map(
    image: torch.Tensor, classes: torch.Tensor, grid: TileGrid, num_classes: int
) -> torch.Tensor:
    """The image with each tile tinted by its class colour and tile borders drawn.

    Overlaps are split down the middle: a pixel takes the class of the tile whose centre is
    nearest. Colours come from :func:`class_colors`.

    Args:
        image: Tensor[C, H, W] (C = 1 or 3), uint8 or float in [0, 1], the image that was classified.
        classes: int64 Tensor[rows, cols] from :func:`tile_classes`.
        grid: the grid returned with it.
        num_classes: K, which fixes the colour scale.

    Returns:
        uint8 Tensor[3, H, W] on the CPU.

    Example:
        >>> image = torch.zeros(3, 40, 40, dtype=torch.uint8)
        >>> classes, _, grid = tile_classes(image, [0.1])
        >>> render_class_map(image, classes, grid, 2).shape
        torch.Size([3, 40, 40])
    """
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image should be a [C, H, W] tensor with C = 1 or 3, got shape {tuple(image.shape)}")
    if tuple(image.shape[1:]) != (grid.height, grid.width):
        raise ValueError(f"image is {image.shape[1]}x{image.shape[2]} but the grid is {grid.height}x{grid.width}")
    if tuple(classes.shape) != (grid.rows, grid.cols):
        raise ValueError(f"classes should be [{grid.rows}, {grid.cols}] for this grid, got {tuple(classes.shape)}")
    base = image.detach().cpu().float()
    base = base / 255 if image.dtype == torch.uint8 else base.clamp(0, 1)
    base = base.expand(3, -1, -1) * 255
    rows = _owners(grid.ys, grid.tile_h, grid.height)
    cols = _owners(grid.xs, grid.tile_w, grid.width)
    per_pixel = classes.cpu()[rows[:, None], cols[None, :]]  # [H, W]
    tint = class_colors(num_classes)[per_pixel].permute(2, 0, 1)  # [3, H, W]
    border = torch.zeros(grid.height, grid.width, dtype=torch.bool)
    border[1:] |= rows[1:, None] != rows[:-1, None]
    border[:, 1:] |= cols[None, 1:] != cols[None, :-1]
    out = torch.where(border, tint * _BORDER_SHADE, base * (1 - _TINT) + tint * _TINT)
    return out.round().clamp(0, 255).to(torch.uint8)


def class_map_record(
    classes: torch.Tensor,
    grid: TileGrid,
    num_classes: int,
    *,
    configs: Optional[Sequence[str]] = None,
    scores: Optional[torch.Tensor] = None,
) -> dict:
    """A JSON-ready description of one image's class map.

    Args:
        classes: int64 Tensor[rows, cols].
        grid: its tile grid.
        num_classes: K, the length of the histogram.
        configs: the class models' "X-Y" names, if a bundle routed the tiles.
        scores: float32 Tensor[rows, cols] of TVAT scores, included when given.

    Returns:
        dict with ``height``, ``width``, ``tile_size``, ``overlap``, ``rows``, ``cols``, ``ys``,
        ``xs`` (tile origins), ``classes`` (nested lists), ``histogram``, and ``configs`` /
        ``scores`` when given.

    Example:
        >>> classes, _, grid = tile_classes(torch.zeros(3, 40, 40), [0.1])
        >>> class_map_record(classes, grid, 2)["histogram"]
        [4, 0]
    """
    record = {
        "height": grid.height,
        "width": grid.width,
        "tile_size": grid.tile_size,
        "overlap": grid.overlap,
        "rows": grid.rows,
        "cols": grid.cols,
        "ys": list(grid.ys),
        "xs": list(grid.xs),
        "classes": classes.cpu().tolist(),
        "histogram": class_histogram(classes, num_classes),
    }
    if configs is not None:
        record["configs"] = list(configs)
    if scores is not None:
        record["scores"] = [[round(float(v), 6) for v in row] for row in scores.cpu().tolist()]
    return record


def record_to_json(record: dict) -> str:
    """``record`` as JSON text, one top-level key per line and each value on one line.

    Example:
        >>> print(record_to_json({"rows": 1, "classes": [[0, 1]]}), end="")
        {
         "rows": 1,
         "classes": [[0, 1]]
        }
    """
    items = ",\n".join(f" {json.dumps(key)}: {json.dumps(value, allow_nan=False)}" for key, value in record.items())
    return "{\n" + items + "\n}\n"

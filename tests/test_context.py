"""mmsr.context: tile windows along an axis, gathering / cropping them in one indexing op, and
planning blocks of tiles that share a window (with and without promotion to the deepest model)."""
from __future__ import annotations

import pytest
import torch

from mmsr.context import TileBlock, axis_windows, crop_tiles, gather_windows, promote_blocks, tile_blocks
from mmsr.grid import axis_origins


@pytest.mark.parametrize("length", [1, 5, 32, 33, 70, 161])
@pytest.mark.parametrize("context", [0, 1, 4, 40])
def test_windows_hold_their_tile_and_stay_inside_the_image(length, context):
    tile, overlap = 32, 8
    tile_len = min(tile, length)
    origins = axis_origins(length, tile, overlap)
    w = axis_windows(origins, tile_len, length, context)
    assert w.length == min(tile_len + 2 * context, length)
    for origin, start, offset in zip(origins, w.starts, w.offsets):
        assert 0 <= start and start + w.length <= length  # inside the image
        assert start <= origin and origin + tile_len <= start + w.length  # holds its tile
        assert offset == origin - start
        # As much context as the image allows on each side, up to `context`.
        assert offset == min(context, origin) or start + w.length == length
        assert start + w.length - (origin + tile_len) == min(context, length - origin - tile_len) or start == 0


def test_gather_and_crop_match_slicing():
    g = torch.Generator().manual_seed(0)
    source = torch.rand(3, 2, 20, 30, generator=g)
    images = torch.tensor([2, 0, 2])
    rows, cols = torch.tensor([0, 7, 12]), torch.tensor([3, 0, 21])
    windows = gather_windows(source, images, rows, cols, 8, 9)
    for n in range(3):
        r, c = rows[n].item(), cols[n].item()
        assert torch.equal(windows[n], source[images[n], :, r : r + 8, c : c + 9])
    cropped = crop_tiles(windows, torch.tensor([1, 0, 4]), torch.tensor([0, 5, 2]), 4, 3)
    assert cropped.is_contiguous() and cropped.shape == (3, 2, 4, 3)
    for n, (r, c) in enumerate([(1, 0), (0, 5), (4, 2)]):
        assert torch.equal(cropped[n], windows[n, :, r : r + 4, c : c + 3])


def _area(block: TileBlock) -> int:
    """Window pixels of a block of 32-pixel tiles at overlap 8 with context 4 (no image edges)."""
    return (24 * block.rows + 16) * (24 * block.cols + 16)


def _cost(blocks, costs) -> float:
    return sum(costs[b.cls] * _area(b) for b in blocks)


def _tiles_of(blocks, rows: int, cols: int) -> dict:
    """Flat tile index -> the class of the block that covers it; fails if a tile is covered twice."""
    covered = {}
    for b in blocks:
        for r in range(b.row, b.row + b.rows):
            for c in range(b.col, b.col + b.cols):
                index = b.image * rows * cols + r * cols + c
                assert index not in covered, f"tile {index} in two blocks"
                covered[index] = b.cls
    return covered


@pytest.mark.parametrize("seed", range(40))
def test_promoted_plans_cover_every_tile_once_and_never_cost_more(seed):
    g = torch.Generator().manual_seed(seed)
    images, rows, cols = 2, int(torch.randint(1, 9, (1,), generator=g)), int(torch.randint(1, 14, (1,), generator=g))
    # Runs of equal classes, as real class maps have, plus scattered single tiles.
    classes = torch.randint(0, 3, (images * rows * cols,), generator=g)
    classes = torch.where(torch.rand(classes.shape, generator=g) < 0.6, classes.roll(1), classes).tolist()
    costs = [0.2, 0.5, 1.0] if seed % 2 else [0.6, 0.8, 1.0]
    max_run = int(torch.randint(1, 9, (1,), generator=g))
    fits = lambda r, c: c <= max_run  # noqa: E731
    layout = dict(rows=rows, cols=cols, fits=fits, row_group=4)
    plan = promote_blocks(classes, window_area=_area, costs=costs, target=2, **layout)
    covered = _tiles_of(plan, rows, cols)
    assert sorted(covered) == list(range(len(classes)))
    # A tile keeps its class or goes to the target, and blocks obey the caps and row groups.
    assert all(k in (classes[i], 2) for i, k in covered.items())
    assert all(b.cols <= max_run and b.row // 4 == (b.row + b.rows - 1) // 4 for b in plan)
    routed = tile_blocks(classes, **layout)
    deepest = tile_blocks([2] * len(classes), **layout)
    assert _cost(plan, costs) <= min(_cost(routed, costs), _cost(deepest, costs)) + 1e-9
    # Bands of whole row groups plan exactly as the whole grid (the Upscaler works in bands).
    per_image = rows * cols
    for first in range(0, rows, 4):
        band_rows = min(4, rows - first)
        band = [classes[i * per_image + r * cols + c] for i in range(images)
                for r in range(first, first + band_rows) for c in range(cols)]
        band_plan = promote_blocks(band, window_area=_area, costs=costs, target=2, rows=band_rows, cols=cols,
                                   fits=fits, row_group=4, first_row=first)
        whole = sorted((b.image, b.row - first, b.col, b.rows, b.cols, b.cls) for b in plan if first <= b.row < first + 4)
        assert sorted((b.image, b.row, b.col, b.rows, b.cols, b.cls) for b in band_plan) == whole


def test_promotion_is_decided_per_row_group():
    # The audit's case: the whole grid used to choose routing or promotion once for all rows, so a
    # band alone could choose differently. Row 0 alone must plan as row 0 of the whole grid.
    area = lambda b: (24 * b.rows + 16) * (24 * b.cols + 16)  # noqa: E731
    kw = dict(cols=3, fits=lambda r, c: c <= 2, window_area=area, costs=[4.0, 5.0], target=1, row_group=1)
    whole = promote_blocks([1, 0, 1, 0, 1, 1], rows=2, **kw)
    row0 = promote_blocks([1, 0, 1], rows=1, first_row=0, **kw)
    assert [(b.col, b.cols, b.cls) for b in whole if b.row == 0] == [(b.col, b.cols, b.cls) for b in row0]


def test_promotion_by_hand():
    # One row of 8 deep tiles with a shallow tile at column 3: routing cuts the deep block in two
    # and adds a one-tile block: 40*88 + 40*40 + 40*112 window pixels, 1.15x the 40*208 of one block.
    classes = [1, 1, 1, 0, 1, 1, 1, 1]
    fits = lambda r, c: True  # noqa: E731
    plan = promote_blocks(classes, 1, 8, fits, _area, costs=[0.7, 1.0], target=1)
    assert [(b.col, b.cols, b.cls) for b in plan] == [(0, 8, 1)]
    # A cheap enough shallow model pays for its own window: 40*88 + 0.1*40*40 + 40*112 < 40*208.
    plan = promote_blocks(classes, 1, 8, fits, _area, costs=[0.1, 1.0], target=1)
    assert [(b.col, b.cols, b.cls) for b in plan] == [(0, 3, 1), (3, 1, 0), (4, 4, 1)]
    # A class costlier than the target is never moved to it.
    plan = promote_blocks([1, 1, 1, 0, 1, 1, 1, 1], 1, 8, fits, _area, costs=[2.0, 1.0], target=1)
    assert [b.cls for b in plan] == [1, 0, 1]
    # With every tile its own window (cells of one tile) promotion never pays.
    one = lambda r, c: r == 1 and c == 1  # noqa: E731
    plan = promote_blocks(classes, 1, 8, one, _area, costs=[0.9, 1.0], target=1)
    assert [b.cls for b in plan] == classes

"""mmsr.context: tile windows along an axis, and gathering / cropping them in one indexing op."""
from __future__ import annotations

import pytest
import torch

from mmsr.context import axis_windows, crop_tiles, gather_windows
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

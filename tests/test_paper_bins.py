"""PSNR per TVAT bin (benchmarks/paper/bins.py), on small synthetic images made here.

bins.py lives with the paper-experiment harness, outside the package, so it is loaded from its file.
It needs only torch and mmsr (no matplotlib, no data folder).
"""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

import mmsr
from mmsr.metrics import psnr

_BINS_FILE = Path(__file__).resolve().parents[1] / "benchmarks" / "paper" / "bins.py"
_spec = importlib.util.spec_from_file_location("paper_bins", _BINS_FILE)
bins = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bins  # dataclasses look their module up while the file runs
_spec.loader.exec_module(bins)

THRESHOLD = mmsr.DEFAULT_TVAT_THRESHOLD
# (LR height, width, tile, overlap, scale): square, odd sizes, smaller than a tile, scale 2 and 3
CASES = [
    pytest.param(40, 56, 16, 4, 4, id="40x56-t16o4-x4"),
    pytest.param(37, 45, 12, 5, 3, id="37x45-t12o5-x3"),
    pytest.param(10, 23, 16, 8, 2, id="10x23-smaller-than-tile-x2"),
]
EDGES = [0.02, 0.2]


def _half_textured(height: int, width: int, seed: int) -> torch.Tensor:
    """uint8 [3, h, w]: flat grey on the left, noise on the right, so tiles fall in different bins."""
    g = torch.Generator().manual_seed(seed)
    image = torch.full((3, height, width), 128, dtype=torch.uint8)
    image[:, :, width // 2 :] = torch.randint(0, 256, (3, height, width - width // 2), generator=g, dtype=torch.uint8)
    return image


def _images(height: int, width: int, scale: int, seed: int):
    lr = _half_textured(height, width, seed)
    hr = torch.nn.functional.interpolate(lr[None].float(), scale_factor=scale, mode="nearest")[0].to(torch.uint8)
    return lr, hr


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("height,width,tile,overlap,scale", CASES)
def test_perfect_sr_is_infinite_in_every_nonempty_bin(height, width, tile, overlap, scale, seed):
    lr, hr = _images(height, width, scale, seed)
    totals = bins.measure_bins(hr, hr, lr, EDGES, threshold=THRESHOLD, tile_size=tile, overlap=overlap, scale=scale,
                               crop_border=scale)
    for value, count in zip(totals.psnr(), totals.pixels):
        assert value == (math.inf if count else None)
    assert sum(count > 0 for count in totals.pixels) >= 1


@pytest.mark.parametrize("height,width,tile,overlap,scale", CASES)
def test_tile_bins_match_classify_of_tvat_of_the_upscalers_tiles(height, width, tile, overlap, scale):
    lr, _ = _images(height, width, scale, seed=0)
    got, scores, grid = bins.tile_bins(lr, EDGES, threshold=THRESHOLD, tile_size=tile, overlap=overlap)
    tiles, expected_grid = mmsr.tile(lr, tile, overlap)
    assert grid == expected_grid
    torch.testing.assert_close(scores, mmsr.tvat(tiles, THRESHOLD))
    assert torch.equal(got, mmsr.classify(mmsr.tvat(tiles, THRESHOLD), EDGES))


@pytest.mark.parametrize("height,width,tile,overlap,scale", CASES)
def test_every_pixel_takes_the_bin_of_a_tile_that_covers_it(height, width, tile, overlap, scale):
    lr, _ = _images(height, width, scale, seed=0)
    tile_bin, _, grid = bins.tile_bins(lr, EDGES, threshold=THRESHOLD, tile_size=tile, overlap=overlap)
    # Give every tile its own "bin" (its index) to see which tile owns each SR pixel.
    owner = bins.pixel_bins(grid, torch.arange(grid.num_tiles), scale=scale, crop_border=0)
    for y in range(owner.shape[0]):
        for x in range(owner.shape[1]):
            k = int(owner[y, x])
            ty, tx = grid.ys[k // grid.cols], grid.xs[k % grid.cols]
            assert ty <= y // scale < ty + grid.tile_h and tx <= x // scale < tx + grid.tile_w
    # Each tile's centre pixel is its own, so its bin there is the tile's bin.
    per_pixel = bins.pixel_bins(grid, tile_bin, scale=scale, crop_border=0)
    for k in range(grid.num_tiles):
        cy = (grid.ys[k // grid.cols] + grid.tile_h // 2) * scale
        cx = (grid.xs[k % grid.cols] + grid.tile_w // 2) * scale
        assert per_pixel[cy, cx] == tile_bin[k]


@pytest.mark.parametrize("crop_border", [0, 1, 4])
@pytest.mark.parametrize("height,width,tile,overlap,scale", CASES)
def test_pixels_are_counted_once(height, width, tile, overlap, scale, crop_border):
    lr, hr = _images(height, width, scale, seed=2)
    g = torch.Generator().manual_seed(3)
    sr = (hr.int() + torch.randint(-9, 10, hr.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    totals = bins.measure_bins(sr, hr, lr, EDGES, threshold=THRESHOLD, tile_size=tile, overlap=overlap, scale=scale,
                               crop_border=crop_border)
    assert sum(totals.pixels) == (height * scale - 2 * crop_border) * (width * scale - 2 * crop_border)
    assert sum(totals.tiles) == mmsr.make_grid(height, width, tile, overlap).num_tiles
    # All bins together are the whole image's PSNR-Y as `mmsr eval` measures it.
    pooled = bins.BinTotals((sum(totals.squared_error),), (sum(totals.pixels),), (sum(totals.tiles),))
    assert pooled.psnr()[0] == pytest.approx(psnr(sr, hr, crop_border=crop_border), abs=1e-9)


def test_an_error_counts_only_in_the_bin_that_owns_its_pixels():
    lr, hr = _images(40, 64, 4, seed=0)
    tile_bin, _, grid = bins.tile_bins(lr, EDGES, threshold=THRESHOLD, tile_size=16, overlap=4)
    per_pixel = bins.pixel_bins(grid, tile_bin, scale=4, crop_border=4)
    assert tile_bin.unique().numel() >= 2, "the test image should fill at least two bins"
    target = int(tile_bin.max())
    sr = hr.clone()
    sr[:, per_pixel == target] ^= 8  # damage exactly the pixels of one bin
    totals = bins.measure_bins(sr, hr, lr, EDGES, threshold=THRESHOLD, tile_size=16, overlap=4, scale=4, crop_border=4)
    for k, value in enumerate(totals.psnr()):
        if k == target:
            assert 20 < value < math.inf
        elif totals.pixels[k]:
            assert value == math.inf


def test_totals_add_over_images_and_survive_json():
    lr, hr = _images(24, 24, 2, seed=0)
    one = bins.measure_bins(hr ^ 1, hr, lr, EDGES, threshold=THRESHOLD, tile_size=16, overlap=4, scale=2, crop_border=2)
    two = one + one
    assert two.pixels == tuple(2 * p for p in one.pixels) and two.tiles == tuple(2 * t for t in one.tiles)
    assert two.psnr() == one.psnr()  # the same error per pixel
    assert bins.BinTotals.from_dict(two.to_dict()) == two
    assert (bins.BinTotals.empty(3) + one) == one
    with pytest.raises(ValueError, match="3 and 2 bins"):
        one + bins.BinTotals.empty(2)


def test_bad_inputs_are_named():
    lr, hr = _images(16, 16, 2, seed=0)
    with pytest.raises(ValueError, match=r"sr should be \(3, 32, 32\)"):
        bins.measure_bins(hr[:, :30], hr, lr, EDGES, threshold=THRESHOLD, tile_size=8, overlap=2, scale=2, crop_border=2)
    with pytest.raises(ValueError, match="lr should be a \\[3, h, w\\]"):
        bins.tile_bins(lr[None], EDGES, threshold=THRESHOLD, tile_size=8, overlap=2)
    grid = mmsr.make_grid(16, 16, 8, 2)
    with pytest.raises(ValueError, match="one entry per tile"):
        bins.pixel_bins(grid, torch.zeros(3, dtype=torch.int64), scale=2, crop_border=0)
    with pytest.raises(ValueError, match="crop_border=16 leaves no pixels"):
        bins.pixel_bins(grid, torch.zeros(grid.num_tiles, dtype=torch.int64), scale=2, crop_border=16)

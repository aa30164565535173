"""mmsr.tile and the tile grid: origins, coverage, and agreement with the reference."""
from __future__ import annotations

import pytest
import torch
from conftest import DTYPES, SEEDS, random_image

import mmsr
from mmsr import reference
from mmsr.grid import axis_origins

# (B, C, H, W, tile, overlap): exact fits, flush last tiles, images smaller than a tile, 1x1 and
# 2x2 images, overlap 0 and tile - 1, B = 0.
CASES = [
    (1, 3, 64, 64, 32, 8), (2, 3, 100, 70, 32, 8), (1, 3, 20, 50, 32, 8), (1, 3, 1, 1, 32, 8),
    (2, 3, 2, 2, 1, 0), (1, 1, 37, 41, 16, 0), (1, 3, 37, 41, 16, 15), (3, 4, 9, 13, 4, 3),
    (0, 3, 16, 16, 8, 2), (1, 3, 33, 7, 32, 31),
]


def test_axis_origins_follow_the_definition():
    assert axis_origins(100, 32, 8) == (0, 24, 48, 68)  # 0, s, 2s while the tile fits, then flush
    assert axis_origins(80, 32, 8) == (0, 24, 48)  # 48 + 32 = 80 fits exactly: no extra tile
    assert axis_origins(20, 32, 8) == (0,)  # tile clamped to the image
    assert axis_origins(5, 1, 0) == (0, 1, 2, 3, 4)
    assert axis_origins(10, 4, 3) == tuple(range(7))


@pytest.mark.parametrize("length, tile_size, overlap", [(L, t, o) for L in (1, 2, 7, 31, 32, 33, 100, 257)
                                                         for t, o in ((1, 0), (8, 0), (8, 7), (32, 8), (64, 63))])
def test_every_pixel_is_covered_and_steps_respect_the_stride(length, tile_size, overlap):
    origins = axis_origins(length, tile_size, overlap)
    tile = min(tile_size, length)
    covered = set()
    for o in origins:
        assert 0 <= o and o + tile <= length
        covered.update(range(o, o + tile))
    assert covered == set(range(length))
    steps = [b - a for a, b in zip(origins, origins[1:])]
    assert all(0 < s <= tile_size - overlap for s in steps)
    assert origins[-1] == length - tile


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seed", SEEDS[:2], ids=lambda s: f"seed{s}")
def test_matches_reference(device, case, dtype, seed):
    B, C, H, W, t, o = case
    x = random_image((B, C, H, W), dtype, device, seed)
    tiles, grid = mmsr.tile(x, t, o)
    assert tiles.shape == (B * grid.num_tiles, C, grid.tile_h, grid.tile_w)
    assert tiles.dtype == x.dtype and tiles.device == x.device
    assert torch.equal(tiles, reference.tile(x, grid))


def test_tiles_are_image_major_then_row_major(device):
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32, device=device).reshape(2, 1, 6, 6)
    tiles, grid = mmsr.tile(x, 4, 2)  # origins (0, 2) on both axes: 4 tiles per image
    assert grid.origins() == ((0, 0), (0, 2), (2, 0), (2, 2))
    for image in range(2):
        for k, (y, xo) in enumerate(grid.origins()):
            assert torch.equal(tiles[image * 4 + k, 0], x[image, 0, y : y + 4, xo : xo + 4])


def test_three_dim_input_and_layouts(device):
    x = random_image((3, 40, 52), device=device, seed=4)
    tiles, grid = mmsr.tile(x, 16, 4)
    assert torch.equal(tiles, reference.tile(x[None], grid))
    cl = random_image((2, 3, 40, 52), device=device, seed=5).to(memory_format=torch.channels_last)
    assert torch.equal(mmsr.tile(cl, 16, 4)[0], reference.tile(cl, grid))
    view = random_image((2, 3, 80, 104), device=device, seed=6)[:, :, ::2, 1::2]
    assert torch.equal(mmsr.tile(view, 16, 4)[0], reference.tile(view, grid))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(tile_size=8, overlap=8), ValueError, "overlap must be smaller than tile_size, got overlap=8 >= tile_size=8"),
        (dict(tile_size=0, overlap=0), ValueError, "tile_size must be >= 1, got 0"),
        (dict(tile_size=8, overlap=-1), ValueError, "overlap must be >= 0, got -1"),
        (dict(tile_size=8.0, overlap=2), TypeError, "tile_size must be an int, got float"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        mmsr.tile(torch.rand(3, 16, 16), **kwargs)


def test_bad_image():
    with pytest.raises(ValueError, match="x is an empty image"):
        mmsr.tile(torch.rand(3, 0, 16), 8, 2)
    with pytest.raises(TypeError, match="got torch.int64"):
        mmsr.tile(torch.zeros(3, 8, 8, dtype=torch.int64), 8, 2)


@pytest.mark.parametrize(
    "fields, match",
    [
        ((20, 20, 8, 8), "overlap must be smaller than tile_size"),
        ((-20, 20, 8, 2), "height must be >= 1"),
        ((20, 20.0, 8, 2), "width must be an int, got float"),
        ((20, 20, "8", 2), "tile_size must be an int, got str"),
        ((20, 20, 8, True), "overlap must be an int, got bool"),
    ],
)
def test_tile_grid_checks_its_fields(fields, match):
    # TileGrid is public: a hand-made one is checked where it is made, not deep inside stitch.
    with pytest.raises(ValueError, match=match):
        mmsr.TileGrid(*fields)

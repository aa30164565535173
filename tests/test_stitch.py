"""mmsr.stitch: the identity stitch(tile(x)) == x for every blend, and the reference on SR tiles."""
from __future__ import annotations

import pytest
import torch
from conftest import DTYPES, SEEDS, random_image, structured_images

import mmsr
from mmsr import reference

CASES = [  # (B, C, H, W, tile, overlap)
    (1, 3, 64, 64, 32, 8), (2, 3, 100, 70, 32, 8), (1, 3, 20, 50, 32, 8), (1, 3, 1, 1, 32, 8),
    (2, 3, 2, 2, 1, 0), (1, 1, 37, 41, 16, 0), (1, 3, 37, 41, 16, 15), (3, 4, 9, 13, 4, 3), (0, 3, 16, 16, 8, 2),
]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("blend", mmsr.BLENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_stitch_of_tile_is_identity(device, case, blend, dtype):
    B, C, H, W, t, o = case
    x = random_image((B, C, H, W), dtype, device, seed=H * W)
    tiles, grid = mmsr.tile(x, t, o)
    out = mmsr.stitch(tiles, grid, blend=blend)
    assert out.shape == x.shape and out.dtype == x.dtype
    if dtype in (torch.uint8, torch.float16, torch.bfloat16):
        assert torch.equal(out, x)  # the float32 average rounds back to the stored value
    else:
        # float32 sums of equal values round once per covering tile.
        covering = (-(-t // (t - o))) ** 2
        torch.testing.assert_close(out, x, rtol=2e-7 * covering, atol=2e-7 * covering)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("blend", mmsr.BLENDS)
@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("seed", SEEDS[:2], ids=lambda s: f"seed{s}")
def test_matches_reference_on_independent_tiles(device, case, blend, scale, seed):
    # Tiles that disagree where they overlap, as SR tiles from different models do.
    B, C, H, W, t, o = case
    grid = mmsr.make_grid(H, W, t, o)
    tiles = random_image((B * grid.num_tiles, C, grid.tile_h * scale, grid.tile_w * scale), device=device, seed=seed)
    out = mmsr.stitch(tiles, grid, scale=scale, blend=blend)
    assert out.shape == (B, C, H * scale, W * scale)
    torch.testing.assert_close(out, reference.stitch(tiles, grid, scale, blend), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float16, torch.bfloat16])
def test_low_precision_tiles_match_reference(device, dtype):
    grid = mmsr.make_grid(50, 45, 16, 6)
    tiles = random_image((2 * grid.num_tiles, 3, 32, 32), dtype, device, seed=11)
    out = mmsr.stitch(tiles, grid, scale=2, blend="linear")
    expected = reference.stitch(tiles, grid, 2, "linear")
    # One rounding step of the output type apart at most.
    step = 1 if dtype == torch.uint8 else (1e-3 if dtype == torch.float16 else 8e-3)
    assert (out.float() - expected.float()).abs().max().item() <= step


def test_mean_blend_matches_fold_reference(device):
    # On a grid with a regular stride (no flush tile) the mean blend is exactly F.fold's average.
    grid = mmsr.make_grid(16 + 12 * 4, 16 + 12 * 3, 16, 4)
    tiles = random_image((2 * grid.num_tiles, 3, 32, 32), device=device, seed=3)
    torch.testing.assert_close(mmsr.stitch(tiles, grid, scale=2), reference.stitch_fold(tiles, grid, 2))


def test_feathered_blend_hides_a_seam(device):
    # Left and right tiles carry constants 0 and 1: "mean" makes a two-level step inside the
    # overlap, feathered blends ramp monotonically across it.
    grid = mmsr.make_grid(8, 24, 16, 8)  # two tiles along x at 0 and 8, overlapping on 8..15
    tiles = torch.stack([torch.zeros(1, 8, 16), torch.ones(1, 8, 16)]).to(device)
    mean_row = mmsr.stitch(tiles, grid, blend="mean")[0, 0, 0].cpu()
    assert set(mean_row[8:16].tolist()) == {0.5}
    for blend in ("linear", "cosine"):
        row = mmsr.stitch(tiles, grid, blend=blend)[0, 0, 0].cpu()
        assert torch.all(row[:8] == 0) and torch.all(row[16:] == 1)
        steps = row[8:17] - row[7:16]
        assert torch.all(steps > 0) and steps.max() < 0.25  # no jump larger than a quarter


@pytest.mark.parametrize("name", ["constant", "checkerboard", "ramp_x", "ramp_y"])
def test_structured_images_round_trip(device, name):
    x = structured_images(3, 45, 38)[name].to(device)
    tiles, grid = mmsr.tile(x, 16, 5)
    for blend in mmsr.BLENDS:
        torch.testing.assert_close(mmsr.stitch(tiles, grid, blend=blend), x, rtol=3e-7, atol=3e-7)


def test_layouts_and_views(device):
    grid = mmsr.make_grid(30, 30, 16, 4)
    base = random_image((2 * grid.num_tiles, 3, 32, 64), device=device, seed=2)
    view = base[..., ::2]
    expected = reference.stitch(view, grid, 2, "cosine")
    torch.testing.assert_close(mmsr.stitch(view, grid, 2, "cosine"), expected)
    cl = view.contiguous().to(memory_format=torch.channels_last)
    torch.testing.assert_close(mmsr.stitch(cl, grid, 2, "cosine"), expected)


@pytest.mark.parametrize(
    "tiles, kwargs, error, match",
    [
        (torch.rand(4, 3, 16, 16), dict(blend="gauss"), ValueError, "blend must be one of mean, linear, cosine, got 'gauss'"),
        (torch.rand(4, 3, 16, 16), dict(scale=0), ValueError, "scale must be >= 1, got 0"),
        (torch.rand(4, 3, 16, 16), dict(scale=2), ValueError, "tiles are 16x16 but the grid's 16x16 tiles at scale 2 should be 32x32"),
        (torch.rand(5, 3, 16, 16), {}, ValueError, "tiles has 5 tiles, which is not a multiple of the grid's 4 tiles per image"),
        (torch.rand(3, 16, 16), {}, ValueError, "tiles should be a 4D"),
        (torch.zeros(4, 3, 16, 16, dtype=torch.float64), {}, TypeError, "tiles must be one of"),
    ],
)
def test_bad_arguments(tiles, kwargs, error, match):
    grid = mmsr.make_grid(24, 24, 16, 8)  # 2 x 2 tiles
    with pytest.raises(error, match=match):
        mmsr.stitch(tiles, grid, **kwargs)


def test_grid_must_be_a_tile_grid():
    with pytest.raises(TypeError, match="grid must be the TileGrid returned by mmsr.tile"):
        mmsr.stitch(torch.rand(4, 3, 16, 16), (24, 24, 16, 8))

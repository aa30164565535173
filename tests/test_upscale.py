"""mmsr.Upscaler: shapes and dtypes, routing, banding, seams against whole-image inference, errors."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import CUDA, random_image

import mmsr
from mmsr.bundle import Bundle, BundleError
from mmsr.classmap import tile_classes
from mmsr.models import Generator
from mmsr.inference import fold_batchnorm, fuse_subpixel_tail
from mmsr.upscale import BLOCK_ROWS, UpscaleResult, Upscaler

TINY = ("1-2w8", "2-2w8", "1-2w12")


pytestmark = pytest.mark.usefixtures("one_thread")


def _bundle(configs=TINY, boundaries=(0.02, 0.2), scale=2, **kwargs) -> Bundle:
    return Bundle.random(configs, threshold=0.0, boundaries=boundaries, scale=scale, tile_size=16, overlap=4, **kwargs)


def _constant_bundle(values, boundaries, scale=2, configs=TINY) -> Bundle:
    """A bundle whose class k generator outputs the constant values[k] everywhere."""
    bundle = _bundle(configs[: len(values)], boundaries, scale)
    for state_dict, value in zip(bundle.state_dicts, values):
        state_dict["tail.weight"].zero_()
        state_dict["tail.bias"].fill_(value)
    return bundle


def _textured_image(tile: int, layout, seed: int = 0) -> torch.Tensor:
    """float32 [3, rows*tile, cols*tile]: tile (i, j) is flat (0), mild noise (1) or strong noise (2)."""
    g = torch.Generator().manual_seed(seed)
    rows, cols = len(layout), len(layout[0])
    x = torch.full((3, rows * tile, cols * tile), 0.5)
    amplitude = {0: 0.0, 1: 0.03, 2: 0.4}
    for i, row in enumerate(layout):
        for j, kind in enumerate(row):
            noise = torch.rand(3, tile, tile, generator=g) - 0.5
            x[:, i * tile : (i + 1) * tile, j * tile : (j + 1) * tile] += amplitude[kind] * noise
    return x.clamp(0, 1)


LAYOUT = [[0, 1, 2, 0], [2, 2, 1, 0], [1, 0, 0, 2]]


# ---- shapes, dtypes, devices -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("batched", [False, True], ids=["3d", "4d"])
def test_output_shape_dtype_and_range(dtype, batched):
    up = Upscaler(_bundle(), tile_size=16, overlap=4)
    shape = (2, 3, 37, 29) if batched else (3, 37, 29)
    x = random_image(shape, dtype, seed=1)
    result = up.upscale(x)
    assert isinstance(result, UpscaleResult)
    assert result.image.shape == (*shape[:-2], 74, 58)
    assert result.image.dtype == dtype and result.image.device == x.device
    grid = up.grid(37, 29)
    assert result.classes.shape == ((2,) if batched else ()) + (grid.rows, grid.cols)
    assert result.classes.dtype == torch.int64
    if dtype != torch.uint8:
        assert 0 <= result.image.min() and result.image.max() <= 1
    assert sum(result.histogram()) == result.classes.numel()


def test_uint8_and_float_inputs_agree():
    up = Upscaler(_bundle(), tile_size=16, overlap=4)
    x8 = random_image((3, 40, 40), torch.uint8, seed=2)
    from_uint8 = up.upscale(x8)
    from_float = up.upscale(x8.float() / 255)
    assert torch.equal(from_uint8.classes, from_float.classes)
    expected = (from_float.image * 255).round()
    assert (from_uint8.image.float() - expected).abs().max() <= 1


def test_empty_batch():
    result = Upscaler(_bundle()).upscale(torch.zeros(0, 3, 20, 20))
    assert result.image.shape == (0, 3, 40, 40) and result.classes.shape[0] == 0


def test_progress_counts_every_tile():
    up = Upscaler(_bundle(), tile_size=16, overlap=4, batch_size=3, band_rows=1)
    seen = []
    up.upscale(random_image((2, 3, 40, 33), seed=3), progress=seen.append)
    assert sum(seen) == 2 * up.grid(40, 33).num_tiles
    assert max(seen) <= 3


def test_batch_size_does_not_change_the_result():
    x = random_image((3, 40, 40), seed=4)
    one = Upscaler(_bundle(), batch_size=1).upscale(x)
    many = Upscaler(_bundle(), batch_size=64).upscale(x)
    torch.testing.assert_close(one.image, many.image, rtol=1e-5, atol=1e-5)


# ---- routing -----------------------------------------------------------------------------------


def test_each_class_goes_to_its_own_model():
    # Class k's generator outputs the constant VALUES[k]; with overlap 0 every SR tile is one
    # class's constant, so the SR image is the class map painted in those constants.
    values = (0.1, 0.5, 0.9)
    x = _textured_image(16, LAYOUT)
    classes, scores, _ = tile_classes(x, [0.001, 0.1], threshold=0.0, tile_size=16, overlap=0)
    assert classes.tolist() == LAYOUT  # the image really splits across the three classes
    bundle = _constant_bundle(values, [0.001, 0.1])
    result = Upscaler(bundle, tile_size=16, overlap=0, blend="mean", promote=False).upscale(x)
    assert result.classes.tolist() == LAYOUT and torch.equal(result.models, result.classes)
    assert result.histogram() == [sum(row.count(k) for row in LAYOUT) for k in range(3)]
    painted = torch.tensor(values)[result.classes]  # [rows, cols]
    expected = painted.repeat_interleave(32, 0).repeat_interleave(32, 1).expand(3, -1, -1)
    torch.testing.assert_close(result.image, expected)


@pytest.mark.parametrize("blend", mmsr.BLENDS)
def test_routing_with_overlap_keeps_tile_interiors(blend):
    values = (0.1, 0.5, 0.9)
    x = _textured_image(16, LAYOUT)
    up = Upscaler(_constant_bundle(values, [0.001, 0.1]), tile_size=16, overlap=4, blend=blend, promote=False)
    result = up.upscale(x)
    grid = result.grid
    expected = tile_classes(x, [0.001, 0.1], threshold=0.0, tile_size=16, overlap=4)[0]
    assert torch.equal(result.classes, expected)
    for i, y in enumerate(grid.ys):
        for j, xo in enumerate(grid.xs):
            # Pixels of this tile that no other tile covers carry its class's constant exactly.
            y_lo = grid.ys[i - 1] + grid.tile_h if i > 0 else y
            y_hi = grid.ys[i + 1] if i + 1 < grid.rows else y + grid.tile_h
            x_lo = grid.xs[j - 1] + grid.tile_w if j > 0 else xo
            x_hi = grid.xs[j + 1] if j + 1 < grid.cols else xo + grid.tile_w
            if y_lo >= y_hi or x_lo >= x_hi:
                continue
            patch = result.image[:, 2 * y_lo : 2 * y_hi, 2 * x_lo : 2 * x_hi]
            torch.testing.assert_close(patch, torch.full_like(patch, values[int(result.classes[i, j])]))


def test_force_class_sends_every_tile_to_one_model():
    values = (0.1, 0.5, 0.9)
    up = Upscaler(_constant_bundle(values, [0.001, 0.1]), tile_size=16, overlap=4)
    x = _textured_image(16, LAYOUT)
    routed = up.upscale(x)
    for k in range(3):
        result = up.upscale(x, force_class=k)
        assert result.model_histogram() == [result.classes.numel() if c == k else 0 for c in range(3)]
        assert torch.equal(result.classes, routed.classes)  # still TVAT's classes
        assert result.forced == k and result.promoted() == 0
        torch.testing.assert_close(result.image, torch.full_like(result.image, values[k]))
    assert up.deepest_class == 1  # 2 blocks beats 1 block, whatever the width


def test_one_class_bundle_is_the_plain_model():
    bundle = Bundle.random(["2-2w8"], threshold=0.0, boundaries=[], scale=2, seed=5)
    generator = bundle.generators()[0]
    x = random_image((1, 3, 40, 36), seed=6)
    # Tiling by hand with the same ops gives the same result as the pipeline (without context).
    up = Upscaler(bundle, tile_size=16, overlap=6, margin=0, context=0, fold_bn=False)
    tiles, grid = mmsr.tile(x, 16, 6)
    with torch.no_grad():
        by_hand = mmsr.stitch(generator(tiles).clamp(0, 1), grid, 2, "linear")
    torch.testing.assert_close(up.upscale(x).image, by_hand)
    # One tile over the whole image is the plain model.
    whole = Upscaler(bundle, tile_size=64, overlap=0, fold_bn=False)
    with torch.no_grad():
        plain = generator(x).clamp(0, 1)
    torch.testing.assert_close(whole.upscale(x).image, plain)
    torch.testing.assert_close(whole.upscale_whole(x), plain)


def test_upscale_whole_picks_a_class():
    up = Upscaler(_constant_bundle((0.2, 0.7), [0.05]))
    x = random_image((3, 12, 10), torch.uint8, seed=7)
    assert up.upscale_whole(x).shape == (3, 24, 20)
    assert up.upscale_whole(x).unique().tolist() == [round(0.7 * 255)]  # default: the deepest class
    assert up.upscale_whole(x, class_index=0).unique().tolist() == [round(0.2 * 255)]


def test_results_are_ordinary_tensors():
    # Not inference tensors: callers may update them in place or use them in autograd.
    up = Upscaler(_bundle())
    x = random_image((3, 20, 20), seed=1)
    for out in (up.upscale(x).image, up.upscale_whole(x)):
        assert not out.is_inference()
        out.mul_(0.5)


# ---- bands -------------------------------------------------------------------------------------


@pytest.mark.parametrize("blend", mmsr.BLENDS)
@pytest.mark.parametrize(
    "tile_overlap_margin", [(16, 4, 0), (16, 4, 2), (16, 8, 3), (16, 12, 6), (12, 0, 0)], ids=str
)
@pytest.mark.parametrize("band_rows", [1, 2, 3, 4])
@pytest.mark.parametrize("context", [0, 4, 9])
def test_banded_equals_one_shot(blend, tile_overlap_margin, band_rows, context):
    tile, overlap, margin = tile_overlap_margin
    # Blocks stay within aligned groups of BLOCK_ROWS tile rows, so bands of whole groups give the
    # same result; narrower bands cut blocks short (as they must), so they are compared per tile.
    max_run = None if band_rows % BLOCK_ROWS == 0 else 1
    options = dict(tile_size=tile, overlap=overlap, blend=blend, margin=margin, context=context, max_run=max_run)
    x = random_image((2, 3, 61, 45), seed=8)  # 61 rows: the last tile row is a flush one
    one_shot = Upscaler(_bundle(), **options).upscale(x)
    banded = Upscaler(_bundle(), band_rows=band_rows, **options).upscale(x)
    assert one_shot.grid.rows > band_rows  # more than one band
    assert torch.equal(banded.classes, one_shot.classes)
    torch.testing.assert_close(banded.image, one_shot.image, rtol=0, atol=1e-6)


@pytest.mark.parametrize("band_rows", [5, 7, 9])
def test_band_rows_are_whole_groups_of_block_rows(band_rows):
    # A band of 5 rows would cut the blocks of rows 4-7 at row 5; it is rounded down to 4 (8 for 9).
    options = dict(tile_size=12, overlap=4, context=4)
    x = random_image((1, 3, 130, 50), seed=3)
    one_shot = Upscaler(_bundle(), **options).upscale(x)
    banded = Upscaler(_bundle(), band_rows=band_rows, **options)
    assert banded._band_rows(1, one_shot.grid) == band_rows - band_rows % BLOCK_ROWS
    torch.testing.assert_close(banded.upscale(x).image, one_shot.image, rtol=0, atol=1e-6)


@pytest.mark.parametrize("blend", mmsr.BLENDS)
@pytest.mark.parametrize("margin", [1, 4])
def test_margin_keeps_stitch_an_average(blend, margin):
    # Tiles of one constant must stitch back to that constant: the margin changes the weights,
    # never their normalisation. 50 x 37 has flush tiles on both axes.
    up = Upscaler(_constant_bundle((0.25,), []), tile_size=16, overlap=8, blend=blend, margin=margin, band_rows=2)
    result = up.upscale(random_image((3, 50, 37), seed=12))
    torch.testing.assert_close(result.image, torch.full_like(result.image, 0.25))


@pytest.mark.parametrize("size", [(1, 1), (1, 100), (100, 1), (5, 3), (33, 33), (40, 17)], ids=str)
def test_edge_sizes(size):
    # Images smaller than a tile, one pixel wide, and with flush tiles, margin included.
    x = random_image((3, *size), seed=14)
    # Bands of one row cut blocks short, so they compare with a window per tile; bands of a whole
    # row group keep the blocks.
    for band_rows, max_run in ((1, 1), (BLOCK_ROWS, None)):
        options = dict(tile_size=16, overlap=8, margin=4, max_run=max_run)
        one_shot = Upscaler(_bundle(scale=3), **options).upscale(x)
        banded = Upscaler(_bundle(scale=3), band_rows=band_rows, **options).upscale(x)
        assert one_shot.image.shape == (3, 3 * size[0], 3 * size[1])
        assert torch.isfinite(one_shot.image).all()
        torch.testing.assert_close(banded.image, one_shot.image, rtol=0, atol=1e-6)


def test_context_windows_are_cut_from_the_image_and_cropped_back():
    # By hand: each tile's window (tile + 5 pixels a side, shifted inside the image) through the
    # generator, its output cropped back to the tile, then the usual stitch.
    bundle = Bundle.random(["2-2w8"], threshold=0.0, boundaries=[], scale=2, seed=5)
    generator = bundle.generators()[0]
    x = random_image((2, 3, 40, 37), seed=6)
    up = Upscaler(bundle, tile_size=16, overlap=6, context=5, max_run=1, band_rows=1, fold_bn=False, fuse_tail=False)
    grid = up.grid(40, 37)
    tiles = []
    with torch.no_grad():
        for b in range(2):
            for y in grid.ys:
                for x0 in grid.xs:
                    wy, wx = min(max(y - 5, 0), 40 - 26), min(max(x0 - 5, 0), 37 - 26)
                    sr = generator(x[b : b + 1, :, wy : wy + 26, wx : wx + 26]).clamp(0, 1)
                    tiles.append(sr[:, :, 2 * (y - wy) : 2 * (y - wy) + 32, 2 * (x0 - wx) : 2 * (x0 - wx) + 32])
    by_hand = mmsr.stitch(torch.cat(tiles), grid, 2, "linear")
    torch.testing.assert_close(up.upscale(x).image, by_hand, rtol=0, atol=1e-5)


@pytest.mark.parametrize("max_run, band_rows", [(2, 1), (3, 4), (8, 4), (8, 2)])
def test_blocks_of_one_class_share_a_window(max_run, band_rows):
    # By hand: 40 x 61 with 16-pixel tiles at stride 10 is a 4 x 6 grid. One class, so the blocks
    # are max_run columns wide and as tall as a band allows (4 rows, a whole row group); a block's
    # window spans from its first tile's window start to its last tile's window end on each axis,
    # and each tile is cropped where it sits in it.
    bundle = Bundle.random(["2-2w8"], threshold=0.0, boundaries=[], scale=2, seed=5)
    generator = bundle.generators()[0]
    x = random_image((2, 3, 40, 61), seed=6)
    up = Upscaler(bundle, tile_size=16, overlap=6, context=5, max_run=max_run, band_rows=band_rows, fold_bn=False,
                  fuse_tail=False)
    grid = up.grid(40, 61)
    assert (grid.rows, grid.cols) == (4, 6)
    col_start = [min(max(x0 - 5, 0), 61 - 26) for x0 in grid.xs]
    row_start = [min(max(y0 - 5, 0), 40 - 26) for y0 in grid.ys]
    sr_tiles = {}
    with torch.no_grad():
        for b in range(2):
            for r0 in range(0, grid.rows, band_rows):
                r1 = min(r0 + band_rows, grid.rows) - 1
                for c0 in range(0, grid.cols, max_run):
                    c1 = min(c0 + max_run, grid.cols) - 1
                    window = x[b : b + 1, :, row_start[r0] : row_start[r1] + 26, col_start[c0] : col_start[c1] + 26]
                    sr = generator(window).clamp(0, 1)
                    for r in range(r0, r1 + 1):
                        for c in range(c0, c1 + 1):
                            top, left = 2 * (grid.ys[r] - row_start[r0]), 2 * (grid.xs[c] - col_start[c0])
                            sr_tiles[b, r, c] = sr[:, :, top : top + 32, left : left + 32]
    tiles = [sr_tiles[b, r, c] for b in range(2) for r in range(grid.rows) for c in range(grid.cols)]
    by_hand = mmsr.stitch(torch.cat(tiles), grid, 2, "linear")
    torch.testing.assert_close(up.upscale(x).image, by_hand, rtol=0, atol=1e-5)


def test_blocks_are_capped_to_a_batch(monkeypatch):
    # A block's window may hold 32768 LR pixels, whatever max_run allows, unless batch_size single
    # windows hold more.
    up = Upscaler(_bundle(), tile_size=64, overlap=8, batch_size=1, max_run=16)
    shapes = []
    run_generator = up._run_generator
    monkeypatch.setattr(up, "_run_generator", lambda k, lr: shapes.append(tuple(lr.shape[-2:])) or run_generator(k, lr))
    # 64-pixel tiles (stride 56, windows 72 wide) in a 64-high image: at most 512 wide (8 tiles).
    x = random_image((3, 64, 1000), seed=3)
    up.upscale(x, force_class=0)
    assert 32768 - 56 * 64 < max(h * w for h, w in shapes) <= 32768
    up.batch_size = 16  # 16 windows of 64 x 72 = 73728 pixels: blocks grow to max_run's 16 tiles
    shapes.clear()
    up.upscale(x, force_class=0)
    # The first block: from the image edge to the 16th tile's window end (15 strides + 64 + 4).
    assert max(h * w for h, w in shapes) == 64 * (15 * 56 + 64 + 4)
    # 32-pixel tiles (stride 24, windows 40): 16 wide is ~400 pixels, so 2 rows (~64 x 400) fit and
    # 3 (88 x 400) do not; narrower blocks (a row's remainder) may take all 4 rows of a group.
    up = Upscaler(_bundle(), tile_size=32, overlap=8, batch_size=1, max_run=16)
    monkeypatch.setattr(up, "_run_generator", lambda k, lr: shapes.append(tuple(lr.shape[-2:])) or run_generator(k, lr))
    shapes.clear()
    up.upscale(random_image((3, 200, 1000), seed=3), force_class=0)
    assert max(h * w for h, w in shapes) <= 32768
    assert max(h for h, w in shapes if w >= 396) == 64 and max(h for h, _ in shapes) == 3 * 24 + 40 - 4


@pytest.mark.parametrize("max_run", [1, 2, 8])
def test_blocks_follow_the_classes(max_run):
    # Class k's generator outputs a constant: a block that took in another class's tile would paint
    # it with the wrong one. LAYOUT changes class every tile or two, along rows and down columns.
    bundle = _constant_bundle((0.1, 0.5, 0.9), [0.001, 0.1])
    x = _textured_image(16, LAYOUT)
    result = Upscaler(bundle, tile_size=16, overlap=4, max_run=max_run, promote=False).upscale(x)
    per_tile = Upscaler(bundle, tile_size=16, overlap=4, context=0, margin=0).upscale(x)
    assert torch.equal(result.classes, per_tile.classes) and result.promoted() == 0
    torch.testing.assert_close(result.image, per_tile.image, rtol=0, atol=1e-6)


# Class costs rise with the class index here (unlike TINY's), so the deepest class is the costliest.
RISING = ("1-2w8", "1-2w16", "3-2w16")
# Two blocks of the deepest model's plan (8 tiles wide, then 4): busy tiles with a lone smooth
# one, a mildly textured pair and a smooth pair, which routing would cut into six blocks; then
# flat tiles only, which stay on their own cheap model.
PROMOTION_LAYOUT = [
    [2, 2, 0, 2, 2, 2, 2, 2, 0, 0, 0, 0],
    [2, 2, 2, 1, 1, 2, 2, 2, 0, 0, 0, 0],
    [0, 0, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0],
]


def _rising_constant_bundle(values=(0.1, 0.5, 0.9)) -> Bundle:
    return _constant_bundle(values, [0.001, 0.1], configs=RISING)


def test_promotion_sends_tiles_to_the_deepest_model_where_a_block_is_cheaper():
    # Each class's model outputs its own constant, so the SR image shows which model ran each tile.
    values = (0.1, 0.5, 0.9)
    x = _textured_image(16, PROMOTION_LAYOUT)
    up = Upscaler(_rising_constant_bundle(values), tile_size=16, overlap=0, blend="mean")
    assert up.deepest_class == 2 and up.costs[0] < up.costs[1] < up.costs[2]
    result = up.upscale(x)
    assert result.classes.tolist() == PROMOTION_LAYOUT  # texture classes are TVAT's, promoted or not
    moved = result.models != result.classes
    assert result.promoted() == int(moved.sum()) > 0
    assert (result.models[moved] == 2).all()  # only ever to the deepest model
    assert (result.models[:, :8] == 2).all() and (result.models[:, 8:] == 0).all()
    assert result.model_histogram()[2] == result.histogram()[2] + result.promoted()
    painted = torch.tensor(values)[result.models]
    expected = painted.repeat_interleave(32, 0).repeat_interleave(32, 1).expand(3, -1, -1)
    torch.testing.assert_close(result.image, expected)
    # Without promotion every tile goes to its own class's model.
    plain = Upscaler(_rising_constant_bundle(values), tile_size=16, overlap=0, blend="mean", promote=False).upscale(x)
    assert torch.equal(plain.models, plain.classes) and plain.promoted() == 0


def test_promotion_never_with_force_class_or_a_window_per_tile():
    x = _textured_image(16, PROMOTION_LAYOUT)
    bundle = _rising_constant_bundle()
    up = Upscaler(bundle, tile_size=16, overlap=4)
    for k in range(3):
        result = up.upscale(x, force_class=k)
        assert (result.models == k).all() and result.promoted() == 0
    assert Upscaler(bundle, tile_size=16, overlap=4, max_run=1).upscale(x).promoted() == 0
    assert Upscaler(bundle, tile_size=16, overlap=4, context=0).upscale(x).promoted() == 0


@pytest.mark.parametrize("band_rows", [1, 4, None])
def test_promotion_is_the_same_in_bands(band_rows):
    # Blocks and their promotion are planned per group of 4 tile rows, so bands of whole groups
    # (the default) give the one-shot result; a band of 1 row plans rows alone.
    x = _textured_image(16, PROMOTION_LAYOUT * 3)
    bundle = _rising_constant_bundle()
    one_shot = Upscaler(bundle, tile_size=16, overlap=4, band_rows=100).upscale(x)
    banded = Upscaler(bundle, tile_size=16, overlap=4, band_rows=band_rows).upscale(x)
    assert one_shot.promoted() > 0
    if band_rows != 1:
        assert torch.equal(banded.models, one_shot.models)
        torch.testing.assert_close(banded.image, one_shot.image, rtol=0, atol=1e-6)
    assert torch.equal(banded.classes, one_shot.classes)


def test_promote_must_be_a_bool():
    with pytest.raises(TypeError, match="promote must be True or False"):
        Upscaler(_bundle(), promote="yes")


def test_context_wider_than_the_image_is_the_whole_image():
    # Every window is then the whole image: each tile's SR is whole-image SR, so the result is too.
    bundle = Bundle.random(["2-2w8"], threshold=0.0, boundaries=[], scale=2, seed=3)
    x = random_image((3, 20, 27), seed=4)
    up = Upscaler(bundle, tile_size=8, overlap=2, context=30)
    torch.testing.assert_close(up.upscale(x).image, up.upscale_whole(x), rtol=0, atol=1e-5)


def test_banded_uint8_within_one_level():
    x = random_image((3, 70, 50), torch.uint8, seed=9)
    one_shot = Upscaler(_bundle(), max_run=1).upscale(x).image  # one-row bands would cut blocks short
    banded = Upscaler(_bundle(), max_run=1, band_rows=1).upscale(x).image
    assert (one_shot.int() - banded.int()).abs().max() <= 1  # a value at .5 may round either way


def test_default_bands_bound_memory():
    up = Upscaler(_bundle(scale=4), tile_size=32, overlap=8)
    # A 4000x3000 image: tiles of 32 at stride 24 make 125 x 167 tiles.
    rows = up._band_rows(1, up.grid(3000, 4000))
    tile_bytes = 3 * 128 * 128 * 4
    assert 1 <= rows < 125 and rows % BLOCK_ROWS == 0  # whole row groups: blocks as one-shot would make them
    assert rows * 167 * tile_bytes <= 256 * 2**20


# ---- seams -------------------------------------------------------------------------------------


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return 10 * math.log10(1.0 / mse) if mse > 0 else math.inf


def _smooth_image(size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = F.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=g), size=(size, size), mode="bicubic")
    return (0.1 + 0.8 * low + 0.05 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1)[0]


def _image_like_generator(config: str, x: torch.Tensor, seed: int) -> Bundle:
    """A one-class x4 bundle of a random generator whose tail is rescaled so its outputs on ``x``
    sit around 0.5 with std 0.15, like an image's: then the pipeline's clamp to [0, 1] touches
    almost nothing, and PSNR against whole-image inference measures seams, not the clamp."""
    bundle = Bundle.random([config], threshold=0.0, boundaries=[], scale=4, seed=seed)
    tail_weight, tail_bias = bundle.state_dicts[0]["tail.weight"], bundle.state_dicts[0]["tail.bias"]
    if bundle.configs[0].input_skip:
        # A residual generator's tail starts at zero (it is bicubic); give it a random residual of
        # std 0.05 on top of the bicubic image, which already sits where an image does.
        tail_weight.copy_(torch.randn(tail_weight.shape, generator=torch.Generator().manual_seed(seed)))
        with torch.no_grad():
            residual = bundle.generators()[0](x[None]) - F.interpolate(x[None], scale_factor=4, mode="bicubic")
        tail_weight.mul_(0.05 / residual.std().item())
        return bundle
    with torch.no_grad():
        spread = bundle.generators()[0](x[None]).std().item()
    tail_weight.mul_(0.15 / spread)
    tail_bias.fill_(0.5)
    return bundle


@pytest.mark.parametrize("blend", ["linear", "cosine"])
@pytest.mark.parametrize("config", ["2-2", "2-2w16", "8-6", "2-2r", "8-6r"])
@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_tiled_matches_whole_image_inference_at_overlap_8(blend, config, seed):
    # The bar: overlap 8 LR pixels, >= 45 dB against whole-image inference of the same
    # random model. Default tiling (32-pixel tiles, overlap 8) with the default context of 4 LR
    # pixels on a 96 x 96 image, x4, random 2- and 8-block generators (receptive radius 12 and
    # 24 LR pixels; a random 16-block one's outputs are too heavy-tailed for the clamp check, and
    # measured 48-50 dB). PSNR is on the pipeline's own [0, 1] outputs with peak 1 (see
    # _image_like_generator). The default blocks cover this 4 x 4 grid with one window, i.e. the
    # whole image, so the bar is checked where windows meet: a window per tile (max_run 1, what a
    # tile between tiles of other classes gets) and blocks two tiles wide. Measured with context
    # 4: 48-69 dB per tile; 32-42 dB without context. Residual ("r") models, whose output is
    # bicubic plus a random residual of std 0.05: 54-73 dB per tile, 37-50 dB without context.
    x = _smooth_image(96, seed)
    if config.endswith("r"):
        x = 0.25 + 0.5 * x  # the residual rides on the image itself: keep it clear of the clamp
    bundle = _image_like_generator(config, x, seed)
    up = Upscaler(bundle, tile_size=32, overlap=8, blend=blend)
    assert up.context == 4 and up.margin == 0 and up.max_run == 8  # the defaults
    whole = up.upscale_whole(x)
    tiled = up.upscale(x)
    assert tiled.grid.num_tiles == 16
    assert ((whole == 0) | (whole == 1)).float().mean().item() < 0.01
    assert _psnr(tiled.image, whole) >= 100.0  # one block: whole-image inference up to rounding
    per_tile = _psnr(Upscaler(bundle, tile_size=32, overlap=8, blend=blend, max_run=1).upscale(x).image, whole)
    assert per_tile >= 45.0
    assert _psnr(Upscaler(bundle, tile_size=32, overlap=8, blend=blend, max_run=2).upscale(x).image, whole) >= 45.0
    # The context is what carries it: without it the same tiling stays below 45 dB (a residual
    # model's output is mostly bicubic, whose seams are faint: there it is at least 10 dB worse).
    without = _psnr(Upscaler(bundle, tile_size=32, overlap=8, blend=blend, context=0).upscale(x).image, whole)
    if config.endswith("r"):
        assert without < per_tile - 10
    else:
        assert without < 45.0


@pytest.mark.parametrize("blend", ["linear", "cosine"])
@pytest.mark.parametrize("config", ["2-2", "2-2w16"])
@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_without_context_a_wider_overlap_and_margin_hide_seams(blend, config, seed):
    # Random 2-block x4 generators (receptive radius 2 * 2 + 8 = 12 LR pixels) on a 96 x 96 image:
    # 48-pixel tiles with overlap 16 and margin 6 (ramps over the middle 4 pixels of each overlap).
    x = _smooth_image(96, seed)
    bundle = _image_like_generator(config, x, seed)
    up = Upscaler(bundle, tile_size=48, overlap=16, margin=6, blend=blend, context=0)
    whole = up.upscale_whole(x)
    tiled = up.upscale(x)
    assert tiled.grid.num_tiles == 9
    assert ((whole == 0) | (whole == 1)).float().mean().item() < 0.01
    assert _psnr(tiled.image, whole) >= 45.0
    # Without the margin the same tiling is worse: the margin is what carries it past 45 dB.
    assert _psnr(Upscaler(bundle, tile_size=48, overlap=16, margin=0, blend=blend, context=0).upscale(x).image, whole) < _psnr(
        tiled.image, whole
    )


# ---- BatchNorm folding -------------------------------------------------------------------------


def _random_tail(generator: Generator) -> Generator:
    # A residual generator starts with a zero tail, which would make any rewrite of it look right.
    torch.nn.init.normal_(generator.tail.weight, std=0.05)
    torch.nn.init.normal_(generator.tail.bias, std=0.05)
    return generator


@pytest.mark.parametrize("input_skip", [False, True], ids=["plain", "residual"])
def test_fold_batchnorm_keeps_the_function(input_skip):
    torch.manual_seed(0)
    generator = _random_tail(Generator(scale=2, blocks=2, channels=8, input_skip=input_skip))
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # statistics a trained model would have
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    generator.eval()
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        expected = generator(x)
        folded = fold_batchnorm(copy.deepcopy(generator))
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("input_skip", [False, True], ids=["plain", "residual"])
def test_fuse_subpixel_tail_keeps_the_function(scale, input_skip):
    torch.manual_seed(scale)
    generator = _random_tail(Generator(scale=scale, blocks=1, channels=8, input_skip=input_skip)).eval()
    x = torch.rand(2, 3, 11, 7)  # odd sizes: the image border is where a wrong padding would show
    with torch.no_grad():
        expected = generator(x)
        fused = fuse_subpixel_tail(copy.deepcopy(generator))
        factor = 3 if scale == 3 else 2  # the last pixel-shuffle stage
        assert fused.tail[0].kernel_size == (5, 5) and fused.tail[0].out_channels == 3 * factor**2
        torch.testing.assert_close(fused(x), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="unfused Generator"):
        fuse_subpixel_tail(fused)


def test_inference_rewrites_do_not_change_the_upscaler():
    x = random_image((3, 40, 36), seed=13)
    plain = Upscaler(_bundle(), fold_bn=False, fuse_tail=False, channels_last=False).upscale(x).image
    fast = Upscaler(_bundle()).upscale(x).image
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)


def test_fold_batchnorm_needs_eval_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(Generator(scale=2, blocks=1, channels=8))


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_cpu_refuses_half_precision(dtype):
    with pytest.raises(ValueError, match=r"only available on CUDA.*float32"):
        Upscaler(_bundle(), device="cpu", dtype=dtype)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(tile_size=8, overlap=8), ValueError, "overlap must be smaller than tile_size"),
        (dict(tile_size=0), ValueError, "tile_size must be >= 1"),
        (dict(overlap=-1), ValueError, "overlap must be >= 0"),
        (dict(tile_size=16.0), TypeError, "tile_size must be an int"),
        (dict(blend="gauss"), ValueError, "blend must be one of"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(band_rows=0), ValueError, "band_rows must be >= 1"),
        (dict(overlap=8, margin=5), ValueError, "margin must be at most overlap / 2"),
        (dict(margin=-1), ValueError, "margin must be >= 0"),
        (dict(context=-1), ValueError, "context must be >= 0"),
        (dict(context=2.5), TypeError, "context must be an int"),
        (dict(dtype=torch.float64), TypeError, "dtype must be"),
        (dict(device="tpu"), ValueError, "device must be 'cpu', 'cuda' or 'cuda:N'"),
        (dict(device="banana"), ValueError, "device must be"),
        (dict(tile_size=4), ValueError, r"overlap=4 \(the bundle's default\) >= tile_size=4; pass a smaller overlap"),
        (dict(fold_bn="no"), TypeError, "fold_bn must be True or False"),
        (dict(fuse_tail=0), TypeError, "fuse_tail must be True or False"),
        (dict(channels_last=None), TypeError, "channels_last must be True or False"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Upscaler(_bundle(), **kwargs)


@pytest.mark.skipif(CUDA, reason="checks the message where no GPU is present")
def test_cuda_without_gpu():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        Upscaler(_bundle(), device="cuda")


def test_bad_bundle_argument(tmp_path):
    with pytest.raises(TypeError, match="bundle must be an mmsr Bundle"):
        Upscaler({"scale": 4})
    with pytest.raises(BundleError, match="no such bundle file"):
        Upscaler(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(
    "image, error, match",
    [
        (torch.rand(4, 20, 20), ValueError, r"\[3, H, W\] or \[B, 3, H, W\]"),
        (torch.rand(20, 20), ValueError, "RGB tensor, got shape"),
        (torch.zeros(3, 20, 20, dtype=torch.int32), TypeError, "got torch.int32"),
        (torch.rand(3, 20, 20, dtype=torch.float64), TypeError, "got torch.float64"),
        (torch.rand(3, 0, 20), ValueError, "image is empty"),
        ([[0.5]], TypeError, "must be a torch.Tensor"),
        (torch.empty(3, 20, 20, device="meta"), ValueError, "image is on meta but this Upscaler runs on cpu"),
        (torch.rand(3, 20, 20).index_put_((torch.tensor([1]), torch.tensor([2]), torch.tensor([3])),
                                          torch.tensor(float("nan"))), ValueError, "image holds 1 NaN or inf values"),
        (torch.full((2, 3, 8, 8), float("inf"), dtype=torch.bfloat16), ValueError, "image holds 384 NaN or inf"),
    ],
    ids=["4-channels", "2d", "int32", "float64", "empty", "list", "other-device", "nan", "inf"],
)
def test_bad_images(image, error, match):
    with pytest.raises(error, match=match):
        Upscaler(_bundle()).upscale(image)


def test_bad_force_class():
    up = Upscaler(_bundle())
    with pytest.raises(ValueError, match=r"force_class must be in \[0, 2\]"):
        up.upscale(torch.rand(3, 8, 8), force_class=3)
    with pytest.raises(TypeError, match="force_class must be an int"):
        up.upscale(torch.rand(3, 8, 8), force_class="deepest")
    with pytest.raises(ValueError, match="class_index must be in"):
        up.upscale_whole(torch.rand(3, 8, 8), class_index=-1)


# ---- CUDA --------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="no CUDA GPU present")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_cuda_matches_cpu(dtype):
    bundle = _bundle()
    x = random_image((3, 48, 40), torch.uint8, seed=10)
    expected = Upscaler(bundle).upscale(x)
    on_gpu = Upscaler(bundle, device="cuda", dtype=dtype)
    from_cpu = on_gpu.upscale(x)  # a CPU image goes to the GPU band by band and comes back
    assert from_cpu.image.device.type == "cpu"
    from_gpu = on_gpu.upscale(x.cuda())
    assert from_gpu.image.device.type == "cuda"
    assert torch.equal(from_cpu.classes, expected.classes)
    assert (from_gpu.image.cpu().int() - from_cpu.image.int()).abs().max() <= 1
    diff = (from_cpu.image.int() - expected.image.int()).abs().float()
    # float32 convs run as TF32 on recent GPUs; bfloat16 keeps 8 significant bits.
    assert diff.mean() <= (0.5 if dtype == torch.float32 else 3.0)



@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="no CUDA GPU present")
@pytest.mark.parametrize("tile_size, batch", [(32, 64), (16, 256), (128, 4), (300, 1)])
def test_cuda_default_batch_keeps_the_lr_pixels_per_call(tile_size, batch):
    assert Upscaler(_bundle(), device="cuda", tile_size=tile_size, overlap=0).batch_size == batch
    assert Upscaler(_bundle(), device="cpu", tile_size=tile_size, overlap=0).batch_size == 2

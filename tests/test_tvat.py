"""mmsr.vsp / mmsr.tvat against the pure-PyTorch reference, on the definition's edge cases."""
from __future__ import annotations

import pytest
import torch
from conftest import DTYPES, SEEDS, random_image, structured_images

import mmsr
from mmsr import reference

THRESHOLD = mmsr.DEFAULT_TVAT_THRESHOLD
# (B, C, H, W): 1x1 and 2x2 images, odd sizes, a wide and a tall strip, one channel, four channels, B = 0.
SHAPES = [(1, 3, 1, 1), (2, 3, 2, 2), (3, 3, 7, 5), (2, 3, 33, 65), (1, 1, 17, 9), (2, 4, 9, 31), (1, 3, 1, 40),
          (1, 3, 40, 1), (0, 3, 8, 8), (4, 3, 64, 64)]


def _tolerance(dtype):
    # Low-precision inputs are converted exactly to float32 by both sides, so only the float32
    # accumulation order differs.
    return dict(rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_matches_reference(device, shape, dtype, seed):
    x = random_image(shape, dtype, device, seed)
    torch.testing.assert_close(mmsr.vsp(x), reference.vsp(x), **_tolerance(dtype))
    torch.testing.assert_close(mmsr.tvat(x, THRESHOLD), reference.tvat(x, THRESHOLD), **_tolerance(dtype))


@pytest.mark.parametrize("name", ["constant", "checkerboard", "ramp_x", "ramp_y"])
def test_structured_images(device, name):
    x = structured_images(3, 12, 10)[name].to(device)
    torch.testing.assert_close(mmsr.vsp(x), reference.vsp(x))
    torch.testing.assert_close(mmsr.tvat(x), reference.tvat(x, THRESHOLD))


def test_known_values(device):
    # A constant image has no texture at all.
    assert mmsr.tvat(torch.full((3, 8, 8), 0.5, device=device)).item() == 0.0
    # A one-channel checkerboard of 0/1: the 4 edge neighbours differ by 1, the diagonals by 0, so an
    # interior pixel has VSP 4; corners have 2 edge neighbours inside, border pixels 3.
    checker = structured_images(1, 4, 4)["checkerboard"].to(device)
    expected = torch.tensor([[2, 3, 3, 2], [3, 4, 4, 3], [3, 4, 4, 3], [2, 3, 3, 2]], dtype=torch.float32)
    torch.testing.assert_close(mmsr.vsp(checker)[0].cpu(), expected)
    assert mmsr.tvat(checker).item() == pytest.approx(expected.mean().item())
    # The threshold drops every pixel whose VSP is below it, and only those.
    assert mmsr.tvat(checker, threshold=3.5).item() == pytest.approx(4 * 4 / 16)


def test_shapes_and_dtype_of_results(device):
    assert mmsr.tvat(random_image((3, 5, 6), device=device)).shape == ()
    assert mmsr.tvat(random_image((2, 3, 5, 6), device=device)).shape == (2,)
    assert mmsr.vsp(random_image((3, 5, 6), device=device)).shape == (5, 6)
    assert mmsr.tvat(random_image((2, 3, 5, 6), torch.uint8, device)).dtype == torch.float32


def test_uint8_is_read_as_unit_interval(device):
    x8 = random_image((2, 3, 9, 11), torch.uint8, device)
    torch.testing.assert_close(mmsr.tvat(x8), mmsr.tvat(x8.float() / 255), rtol=1e-5, atol=1e-7)


def test_layouts_and_views(device):
    x = random_image((3, 3, 20, 24), device=device, seed=5)
    expected = reference.tvat(x, THRESHOLD)
    torch.testing.assert_close(mmsr.tvat(x.to(memory_format=torch.channels_last)), expected)
    wide = random_image((3, 3, 20, 48), device=device, seed=6)
    torch.testing.assert_close(mmsr.tvat(wide[..., ::2]), reference.tvat(wide[..., ::2], THRESHOLD))
    big = random_image((5, 3, 30, 30), device=device, seed=7)
    offset_view = big[1:4, :, 3:23, 2:26]
    torch.testing.assert_close(mmsr.tvat(offset_view), reference.tvat(offset_view, THRESHOLD))


def test_one_large_image_uses_row_chunks_consistently(device):
    # A single tall image is split into row chunks across threads; chunk seams must not show.
    x = random_image((1, 3, 257, 63), device=device, seed=3)
    torch.testing.assert_close(mmsr.vsp(x), reference.vsp(x))
    torch.testing.assert_close(mmsr.tvat(x), reference.tvat(x, THRESHOLD), rtol=1e-5, atol=1e-7)


def _exact_uint8_vsp_levels(x: torch.Tensor) -> torch.Tensor:
    """VSP of a uint8 [B, C, H, W] batch in grey levels^2, in int64: exact, independent of the kernels."""
    xi = x.cpu().long()
    B, C, H, W = xi.shape
    padded = torch.nn.functional.pad(xi, (1, 1, 1, 1))
    out = torch.zeros(B, H, W, dtype=torch.long)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if (dy, dx) == (0, 0):
                continue
            inside = torch.zeros(H + 2, W + 2, dtype=torch.bool)
            inside[1:-1, 1:-1] = True
            q = padded[:, :, 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]
            out += torch.where(inside[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W], ((xi - q) ** 2).sum(1), 0)
    return out


def test_uint8_vsp_on_the_threshold_counts_exactly(device):
    # A pixel 2 levels above its 8 neighbours in 3 channels has VSP 8 * 3 * 2^2 = 96 levels^2: the
    # default threshold exactly. It counts (VSP >= threshold), and its neighbours (12 each) do not.
    x = torch.full((3, 5, 5), 128, dtype=torch.uint8)
    x[:, 2, 2] = 130
    assert THRESHOLD * 255**2 == pytest.approx(96)
    x = x.to(device)
    assert mmsr.vsp(x)[2, 2].item() == pytest.approx(96 / 255**2, rel=1e-7)
    assert mmsr.tvat(x).item() == pytest.approx(96 / 255**2 / 25, rel=1e-6)
    assert mmsr.tvat(x, 97 / 255**2).item() == 0.0
    assert reference.tvat(x[None], THRESHOLD).item() == pytest.approx(96 / 255**2 / 25, rel=1e-6)


@pytest.mark.parametrize("channels", [1, 3, 4, 5])
def test_uint8_vsp_is_exact_and_ties_are_decided_the_same_everywhere(device, channels):
    # Low-amplitude noise: uint8 VSPs are integers in levels^2, thousands of pixels sit exactly on
    # each threshold below. Summed in [0, 1] floats, each summation order (CPU rows, GPU warps,
    # eager PyTorch, FMA or not) rounded such a pixel to either side; in levels it is exact.
    g = torch.Generator().manual_seed(channels)
    x = (128 + torch.randint(-3, 4, (2, channels, 37, 70), generator=g)).to(torch.uint8)
    levels = _exact_uint8_vsp_levels(x)
    x = x.to(device)
    expected_vsp = (levels.double() / 255**2).float()
    assert torch.equal(mmsr.vsp(x).cpu(), expected_vsp)
    values, counts = torch.unique(levels, return_counts=True)
    for t_levels in values[counts.argsort(descending=True)[:3]].tolist():  # the most frequent VSPs
        assert int((levels == t_levels).sum()) > 20  # the case this test is about
        threshold = t_levels / 255**2
        expected = (levels * (levels >= t_levels)).double().sum(dim=(1, 2)) / (37 * 70 * 255**2)
        torch.testing.assert_close(mmsr.tvat(x, threshold).cpu().double(), expected, rtol=1e-6, atol=0)
        torch.testing.assert_close(reference.tvat(x, threshold).cpu().double(), expected, rtol=1e-6, atol=0)
        # Just above the tie, those pixels drop out.
        above = (levels * (levels > t_levels)).double().sum(dim=(1, 2)) / (37 * 70 * 255**2)
        torch.testing.assert_close(mmsr.tvat(x, threshold * (1 + 1e-9)).cpu().double(), above, rtol=1e-6, atol=0)


# Non-finite pixels at a corner, on an edge and inside, in images of several widths (vectorised
# rows, partial vectors, channel counts with their own code paths).
NON_FINITE_SHAPES = [(3, 3, 9, 13), (3, 1, 8, 64), (3, 4, 6, 33), (3, 2, 40, 7), (3, 5, 5, 5)]


@pytest.mark.parametrize("shape", NON_FINITE_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_non_finite_pixels_propagate_as_ieee_arithmetic_has_it(device, shape, dtype):
    B, C, H, W = shape
    x = random_image(shape, torch.float32, seed=11)
    x[0, 0, 0, 0] = float("inf")  # image 0: inf at a corner and -inf on the right edge
    x[0, C - 1, H // 2, W - 1] = -float("inf")
    x[1, C // 2, H // 2, W // 2] = float("nan")  # image 1: NaN inside, inf on the bottom edge
    x[1, 0, H - 1, 1] = float("inf")
    x = x.to(dtype).to(device)  # image 2 stays finite
    v, expected = mmsr.vsp(x), reference.vsp(x)
    # Same NaN and inf positions (a border pixel holding inf has VSP inf, not NaN), same values elsewhere.
    torch.testing.assert_close(v, expected, equal_nan=True, rtol=1e-5, atol=1e-6)
    assert torch.isinf(v[0, 0, 0]) and torch.isinf(v[0, H // 2, W - 1]) and torch.isinf(v[1, H - 1, 1])
    assert torch.isnan(v[1, H // 2, W // 2])
    # TVAT keeps a NaN VSP (NaN * [NaN >= t] is NaN), so a broken image never gets a plausible
    # score; images are independent, so the finite one keeps its own.
    t = mmsr.tvat(x).cpu()
    assert torch.isinf(t[0]) and t[0] > 0 and torch.isnan(t[1]) and torch.isfinite(t[2])
    torch.testing.assert_close(t, reference.tvat(x, THRESHOLD).cpu(), equal_nan=True)
    assert mmsr.classify(t, [0.05, 0.1]).tolist() == [2, 2, mmsr.classify(t[2:], [0.05, 0.1]).item()]


def test_deterministic(device):
    x = random_image((4, 3, 200, 90), device=device, seed=8)
    assert torch.equal(mmsr.tvat(x), mmsr.tvat(x))


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.rand(3, 4), ValueError, r"x should be a \[C, H, W\] or \[B, C, H, W\] tensor, got 2D"),
        (torch.rand(1, 1, 3, 4, 4), ValueError, "got 5D"),
        (torch.zeros(3, 4, 4, dtype=torch.int32), TypeError, "x must be one of uint8, float16, bfloat16, float32, got torch.int32"),
        (torch.zeros(3, 4, 4, dtype=torch.float64), TypeError, "got torch.float64"),
        (torch.zeros(3, 0, 4), ValueError, "x is an empty image"),
        (torch.zeros(1, 0, 4, 4), ValueError, "x is an empty image"),
        ([[0.0]], TypeError, "x must be a torch.Tensor, got list"),
    ],
)
def test_bad_inputs(bad, error, match):
    with pytest.raises(error, match=match):
        mmsr.tvat(bad)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=str)
def test_threshold_past_float_range_drops_every_pixel(device, dtype):
    # 1e300 (x 255^2 for uint8) is past float32's range: it must compare as +inf, not overflow.
    x = random_image((2, 3, 9, 11), dtype, device, seed=4)
    assert mmsr.tvat(x, 1e300).tolist() == [0.0, 0.0]
    assert mmsr.tvat(x, 0.0).min().item() > 0


@pytest.mark.parametrize(
    "threshold, match",
    [
        (-1.0, "threshold must be >= 0"),
        (float("nan"), "threshold must be a finite number"),
        ("0.1", "threshold must be a number, got str"),
        (True, "threshold must be a number, got bool"),
        (torch.tensor(0.1), "threshold must be a number, got Tensor"),
        (10**400, "threshold must be a finite number.*too large"),
    ],
)
def test_bad_threshold(threshold, match):
    with pytest.raises((ValueError, TypeError), match=match):
        mmsr.tvat(torch.rand(3, 4, 4), threshold)


def test_core_rejects_bad_sizes_without_crashing():
    # Calling the native module directly with nonsense must raise, never take the process down.
    from mmsr import _core

    with pytest.raises(ValueError, match="tvat: expects"):
        _core.tvat_cpu(x=0, vsp=0, score=0, B=1, C=0, H=4, W=4, dtype=3, threshold=0.0, threads=1)
    with pytest.raises(ValueError, match="dtype code"):
        _core.tvat_cpu(x=0, vsp=0, score=0, B=0, C=3, H=4, W=4, dtype=9, threshold=0.0, threads=1)

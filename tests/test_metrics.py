"""mmsr.metrics psnr, ssim and rgb_to_y: SR-literature conventions, hand-worked values, argument checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmsr.metrics import PI_UNAVAILABLE_REASON, psnr, rgb_to_y, ssim

SEEDS = [0, 1, 2]
METRICS = [pytest.param(psnr, id="psnr"), pytest.param(ssim, id="ssim")]
# SSIM's stabilising constants for data range 255.
C1 = (0.01 * 255) ** 2


def _pair(seed: int, shape=(2, 3, 40, 36)) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 image and a copy of it with bounded noise, reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    noise = torch.randint(-20, 21, shape, generator=g)
    return a, (a.int() + noise).clamp(0, 255).to(torch.uint8)


def _constant(rgb, size=(16, 16)) -> torch.Tensor:
    """A uint8 [3, H, W] image of one colour."""
    return torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1).expand(3, *size).clone()


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two float64 [H, W] images straight from Wang et al.'s definition, one window at a time."""
    t = np.arange(11) - 5
    g = np.exp(-(t * t) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c2 = (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + C1) * (2 * cxy + c2)) / ((mx * mx + my * my + C1) * (vx + vy + c2)))
    return float(np.mean(values))


# ---- known values -------------------------------------------------------------------------------------


@pytest.mark.parametrize("y_channel", [True, False])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_identical_images(y_channel, dtype):
    a, _ = _pair(0)
    a = a if dtype == torch.uint8 else a.to(dtype) / 255
    assert psnr(a[0], a[0], y_channel=y_channel) == math.inf
    assert ssim(a[0], a[0], y_channel=y_channel) == 1.0
    assert torch.equal(psnr(a, a, y_channel=y_channel), torch.full((2,), math.inf))
    assert torch.equal(ssim(a, a, y_channel=y_channel), torch.ones(2))


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("y_channel", [True, False])
def test_symmetric(metric, seed, y_channel):
    a, b = _pair(seed)
    assert torch.equal(metric(a, b, y_channel=y_channel), metric(b, a, y_channel=y_channel))


def test_psnr_rgb_hand_worked():
    # Per-channel differences 10, 0 and 20 everywhere: MSE = (10² + 0² + 20²) / 3 = 500 / 3.
    a, b = _constant((100, 100, 100)), _constant((110, 100, 120))
    assert psnr(a, b, y_channel=False) == pytest.approx(10 * math.log10(255**2 * 3 / 500), rel=1e-12)
    assert psnr(a, b, y_channel=False) == pytest.approx(25.912, abs=1e-3)


def test_psnr_y_hand_worked():
    # Only R differs, by 51 / 255 = 0.2, so Y differs by 65.481 * 0.2 = 13.0962 everywhere.
    a, b = _constant((100, 100, 100)), _constant((151, 100, 100))
    assert psnr(a, b) == pytest.approx(20 * math.log10(255 / 13.0962), rel=1e-12)
    assert psnr(a, b) == pytest.approx(25.788, abs=1e-3)


def test_ssim_hand_worked():
    # Constant images have no variance, so SSIM reduces to its luminance term (2 μa μb + C1) / (μa² + μb² + C1).
    a, b = _constant((100, 100, 100)), _constant((110, 110, 110))
    expected = (2 * 100 * 110 + C1) / (100**2 + 110**2 + C1)
    assert ssim(a, b, y_channel=False) == pytest.approx(expected, rel=1e-12)
    ya, yb = 16 + 100 * 219 / 255, 16 + 110 * 219 / 255  # grey g has Y = 16 + g (65.481 + 128.553 + 24.966) / 255
    assert ssim(a, b) == pytest.approx((2 * ya * yb + C1) / (ya**2 + yb**2 + C1), rel=1e-12)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_ssim_matches_definition(seed):
    a, b = _pair(seed, (1, 14, 17))
    expected = _ssim_reference(a[0].double().numpy(), b[0].double().numpy())
    assert ssim(a, b) == pytest.approx(expected, rel=1e-12)


def test_rgb_to_y_known_values():
    rgb = torch.tensor([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=torch.uint8)
    y = rgb_to_y(rgb.T.reshape(3, 1, 5))
    assert y.dtype == torch.float64 and y.shape == (1, 1, 5)
    torch.testing.assert_close(y.flatten(), torch.tensor([16, 235, 81.481, 144.553, 40.966], dtype=torch.float64))
    torch.testing.assert_close(rgb_to_y(rgb.T.reshape(1, 3, 1, 5).double() / 255), y[None])


# ---- input forms --------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("y_channel", [True, False])
def test_uint8_and_float_agree(metric, y_channel):
    a, b = _pair(1)
    expected = metric(a, b, y_channel=y_channel)
    torch.testing.assert_close(metric(a.double() / 255, b.double() / 255, y_channel=y_channel), expected)
    got = metric(a.float() / 255, b.float() / 255, y_channel=y_channel)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_numpy_input(metric):
    a, b = _pair(2)
    expected = metric(a, b)
    torch.testing.assert_close(metric(a.numpy(), b.numpy()), expected)
    # A reversed view has negative strides, which torch.from_numpy refuses.
    assert metric(a[0].numpy()[:, ::-1], b[0].numpy()[:, ::-1]) == metric(a[0].flip(1), b[0].flip(1))


@pytest.mark.parametrize("metric", METRICS)
def test_batched_equals_per_image(metric):
    a, b = _pair(0, (3, 3, 24, 30))
    batched = metric(a, b, crop_border=2)
    assert batched.dtype == torch.float32 and batched.shape == (3,)
    singles = [metric(a[i], b[i], crop_border=2) for i in range(3)]
    assert all(isinstance(s, float) for s in singles)
    torch.testing.assert_close(batched, torch.tensor(singles, dtype=torch.float32))


@pytest.mark.parametrize("metric", METRICS)
def test_empty_batch(metric):
    a = torch.zeros(0, 3, 16, 16, dtype=torch.uint8)
    assert metric(a, a).shape == (0,)


@pytest.mark.parametrize("metric", METRICS)
def test_views(metric):
    a, b = _pair(0, (2, 3, 32, 32))
    expected = metric(a, b)
    last = (a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(metric(*last), expected)
    big_a, big_b = torch.zeros(2, 3, 40, 40, dtype=torch.uint8), torch.zeros(2, 3, 40, 40, dtype=torch.uint8)
    big_a[..., 3:35, 5:37], big_b[..., 3:35, 5:37] = a, b
    torch.testing.assert_close(metric(big_a[..., 3:35, 5:37], big_b[..., 3:35, 5:37]), expected)


@pytest.mark.parametrize("metric", METRICS)
def test_crop_border(metric):
    a, b = _pair(1)
    expected = metric(a[..., 4:-4, 4:-4], b[..., 4:-4, 4:-4])
    torch.testing.assert_close(metric(a, b, crop_border=4), expected)
    b[..., :4, :], b[..., :, -4:] = 255 - b[..., :4, :], 255 - b[..., :, -4:]
    torch.testing.assert_close(metric(a, b, crop_border=4), expected)
    assert not torch.equal(metric(a, b), metric(a, b, crop_border=4))


@pytest.mark.parametrize("metric", METRICS)
def test_numpy_integer_crop_border(metric):
    a, b = _pair(0)
    torch.testing.assert_close(metric(a, b, crop_border=np.int64(2)), metric(a, b, crop_border=2))


@pytest.mark.parametrize("metric", METRICS)
def test_one_channel_is_measured_as_is(metric):
    a, b = _pair(2, (1, 20, 20))
    assert metric(a, b) == metric(a, b, y_channel=False)


@pytest.mark.parametrize("metric", METRICS)
def test_y_channel_differs_from_rgb(metric):
    a, b = _pair(0)
    assert not torch.equal(metric(a, b), metric(a, b, y_channel=False))


@pytest.mark.parametrize("metric", METRICS)
def test_devices_agree(metric, device):
    a, b = _pair(1)
    expected = metric(a, b, crop_border=3)
    torch.testing.assert_close(metric(a.to(device), b.to(device), crop_border=3).cpu(), expected)


# ---- bad input ----------------------------------------------------------------------------------------

_IMG = torch.zeros(3, 16, 16, dtype=torch.uint8)
BAD = [
    pytest.param((_IMG, _IMG[:, :15]), {}, ValueError, r"same shape, got \(3, 16, 16\) and \(3, 15, 16\)", id="shape"),
    pytest.param((_IMG, _IMG[None]), {}, ValueError, "same shape", id="batched-vs-single"),
    pytest.param((_IMG[0], _IMG[0]), {}, ValueError, r"\[C, H, W\] or \[B, C, H, W\], got a 2-D", id="ndim"),
    pytest.param((torch.zeros(4, 16, 16), torch.zeros(4, 16, 16)), {}, ValueError, "1 or 3 channels", id="channels"),
    pytest.param((_IMG.int(), _IMG.int()), {}, TypeError, "a must be uint8.*got dtype torch.int32", id="dtype"),
    pytest.param((_IMG.bool(), _IMG.bool()), {}, TypeError, "torch.bool", id="bool"),
    pytest.param((_IMG, _IMG.numpy().astype(np.int16)), {}, TypeError, "b must be uint8.*int16", id="numpy-dtype"),
    pytest.param((_IMG.tolist(), _IMG), {}, TypeError, "torch.Tensor or a numpy.ndarray, got list", id="list"),
    pytest.param((_IMG, _IMG), {"crop_border": 8}, ValueError, "crop_border=8 leaves no pixels of a 16×16", id="crop"),
    pytest.param((_IMG, _IMG), {"crop_border": -1}, ValueError, "crop_border must be >= 0, got -1", id="crop-neg"),
    pytest.param((_IMG, _IMG), {"crop_border": 1.5}, TypeError, "crop_border must be an int, got float", id="crop-float"),
    pytest.param((_IMG, _IMG), {"crop_border": True}, TypeError, "crop_border must be an int, got bool", id="crop-bool"),
]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("args, kwargs, error, match", BAD)
def test_bad_input(metric, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        metric(*args, **kwargs)


def test_ssim_needs_a_window():
    with pytest.raises(ValueError, match="at least 11×11 after crop_border=3, got 10×10"):
        ssim(_IMG, _IMG, crop_border=3)
    assert psnr(_IMG, _IMG, crop_border=3) == math.inf


def test_rgb_to_y_needs_rgb():
    with pytest.raises(ValueError, match="rgb_to_y: img must have 3 channels, got 1"):
        rgb_to_y(_IMG[:1])


def test_pi_unavailable_reason():
    # One line for the CLI to print as is.
    assert "PI" in PI_UNAVAILABLE_REASON and "Ma et al." in PI_UNAVAILABLE_REASON
    assert "\n" not in PI_UNAVAILABLE_REASON and PI_UNAVAILABLE_REASON.endswith(".")

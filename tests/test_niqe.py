"""mmsr.metrics.niqe: agreement with the MATLAB reference, response to distortions, input forms, bad input."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from mmsr.metrics import niqe, rgb_to_y
from mmsr.metrics.niqe import _imresize_half


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``img: [C, H, W]`` with reflected borders, as float64."""
    r = math.ceil(3 * sigma)
    t = np.arange(-r, r + 1)
    k = np.exp(-(t * t) / (2 * sigma * sigma))
    k /= k.sum()
    h, w = img.shape[-2:]
    padded = np.pad(img.astype(np.float64), ((0, 0), (r, r), (r, r)), mode="reflect")
    rows = sum(k[i] * padded[:, i : i + h, :] for i in range(2 * r + 1))
    return sum(k[j] * rows[:, :, j : j + w] for j in range(2 * r + 1))


def _quantise(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _natural_image(seed: int, height: int, width: int) -> np.ndarray:
    """A uint8 ``[3, H, W]`` image with the statistics NIQE expects of a photo, reproducible from ``seed``.

    Occluding discs with power-law radii (the 'dead leaves' model: sharp edges at every scale) under a
    1/f random texture, slightly blurred as camera optics do. Plain noise or flat shapes alone look
    unnatural to NIQE, and degrading them does not reliably raise it.
    """
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(height, width))
    spectrum = amplitude * (rng.standard_normal(amplitude.shape) + 1j * rng.standard_normal(amplitude.shape))
    texture = np.fft.irfft2(spectrum, s=(height, width))
    texture = (texture - texture.mean()) / texture.std()
    yy, xx = np.mgrid[:height, :width]
    img = np.empty((3, height, width))
    img[:] = rng.uniform(40, 220, 3)[:, None, None]
    r_min, r_max = 3.0, min(height, width) / 3
    radii = (r_min**-2 - rng.random(60) * (r_min**-2 - r_max**-2)) ** -0.5
    for r in np.sort(radii)[::-1]:
        cy, cx = rng.uniform(-r, height + r), rng.uniform(-r, width + r)
        img[:, (yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(20, 235, 3)[:, None]
    return _quantise(_blur(_quantise(img + 20 * texture), 0.7))


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    pil = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    pil.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))).save(buf, format="JPEG", quality=quality)
    return np.asarray(pil.open(io.BytesIO(buf.getvalue())).convert("RGB")).transpose(2, 0, 1)


# NIQE of _natural_image(seed, height, width) (the green channel alone where grey) with crop_border, as
# computed by BasicSR 1.4.2's port of the MATLAB reference (basicsr.metrics.calculate_niqe), which
# reproduces the MATLAB release to 1e-6 on its test image.
GOLDEN = [
    pytest.param(0, 256, 256, False, 0, 5.334462745183982, id="rgb-256x256"),
    pytest.param(1, 200, 300, False, 4, 5.455009809734445, id="rgb-200x300-crop4"),
    pytest.param(2, 224, 288, True, 0, 5.017161409967285, id="grey-224x288"),
]


@pytest.mark.parametrize("seed, height, width, grey, crop_border, expected", GOLDEN)
def test_matches_matlab_reference_port(seed, height, width, grey, crop_border, expected):
    img = _natural_image(seed, height, width)
    img = img[1:2] if grey else img
    assert abs(niqe(img, crop_border=crop_border) - expected) < 0.05


def test_imresize_matches_matlab():
    # MATLAB imresize(x, 0.5) (bicubic, antialiased) of this 6×10 pattern, from BasicSR 1.4.2's port
    # (basicsr.utils.matlab_functions.imresize, float32).
    i, j = np.mgrid[:6, :10]
    x = torch.from_numpy((i * i + 3 * j) % 17 * 15.0).view(1, 1, 6, 10)
    expected = torch.tensor(
        [
            [25.6604, 128.0990, 190.6267, 59.7022, 139.3980],
            [119.5605, 145.9575, 119.8640, 119.4356, 154.2448],
            [154.6033, 96.3439, 98.4057, 123.8212, 109.2771],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(_imresize_half(x)[0, 0], expected, rtol=0, atol=1e-3)


DISTORTIONS = {
    "blur": lambda x: _quantise(_blur(x, 2.0)),
    "noise": lambda x: _quantise(x + np.random.default_rng(1).normal(0, 20, x.shape)),
    "jpeg": lambda x: _jpeg(x, quality=10),
}


@pytest.mark.parametrize("seed", [0, 1], ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("distortion", DISTORTIONS)
def test_rises_under_distortion(distortion, seed):
    img = _natural_image(seed, 256, 256)
    # Over eight seeds every distortion raised NIQE by 2.7 or more; 1 leaves room for library changes.
    assert niqe(DISTORTIONS[distortion](img)) > niqe(img) + 1.0


# ---- input forms --------------------------------------------------------------------------------------


def test_uint8_and_float_agree():
    img = torch.from_numpy(_natural_image(0, 192, 192))
    expected = niqe(img)
    assert niqe(img.double() / 255) == pytest.approx(expected, abs=1e-9)
    assert niqe(img.float() / 255) == pytest.approx(expected, abs=1e-9)


def test_numpy_and_torch_agree():
    img = _natural_image(1, 192, 200)
    assert niqe(img) == niqe(torch.from_numpy(img))


def test_batched_equals_per_image():
    imgs = torch.stack([torch.from_numpy(_natural_image(s, 192, 288)) for s in range(3)])
    batched = niqe(imgs, crop_border=2)
    assert batched.dtype == torch.float32 and batched.shape == (3,)
    singles = [niqe(img, crop_border=2) for img in imgs]
    assert all(isinstance(s, float) for s in singles)
    torch.testing.assert_close(batched, torch.tensor(singles, dtype=torch.float32))


def test_crop_border():
    img = torch.from_numpy(_natural_image(2, 208, 208))
    assert niqe(img, crop_border=8) == pytest.approx(niqe(img[:, 8:-8, 8:-8]), abs=1e-12)


def test_only_whole_blocks_count():
    # 250×200 holds 2×2 blocks of 96×96 from the top-left corner; the rest is not measured.
    img = _natural_image(0, 250, 200)
    changed = img.copy()
    changed[:, 192:, :] = 255 - changed[:, 192:, :]
    changed[:, :, 192:] = 0
    assert niqe(changed) == niqe(img)
    changed[:, 100, 100] ^= 0xFF
    assert niqe(changed) != niqe(img)


def test_rgb_is_measured_on_rounded_luma():
    rgb = torch.from_numpy(_natural_image(1, 192, 192))
    assert niqe(rgb_to_y(rgb).round().to(torch.uint8)) == niqe(rgb)


def test_constant_image_is_undefined():
    assert math.isnan(niqe(torch.full((3, 96, 96), 128, dtype=torch.uint8)))


def test_empty_batch():
    assert niqe(torch.zeros(0, 3, 96, 96)).shape == (0,)


def test_single_block():
    assert math.isfinite(niqe(_natural_image(0, 96, 96)))


def test_devices_agree(device):
    img = torch.from_numpy(_natural_image(0, 192, 192))
    assert niqe(img.to(device)) == pytest.approx(niqe(img), abs=1e-6)


# ---- bad input ----------------------------------------------------------------------------------------


SMALL = r"at least 96×96 after crop_border=0 \(one NIQE block\), got 95×200"


@pytest.mark.parametrize(
    "img, kwargs, error, match",
    [
        pytest.param(torch.zeros(3, 95, 200), {}, ValueError, SMALL, id="small"),
        pytest.param(torch.zeros(3, 100, 100), {"crop_border": 4}, ValueError, "got 92×92", id="small-after-crop"),
        pytest.param(torch.zeros(3, 100, 100), {"crop_border": 50}, ValueError, "crop_border=50 leaves no", id="crop"),
        pytest.param(torch.zeros(96, 96), {}, ValueError, r"\[C, H, W\] or \[B, C, H, W\], got a 2-D", id="ndim"),
        pytest.param(torch.zeros(2, 96, 96), {}, ValueError, "1 or 3 channels", id="channels"),
        pytest.param(torch.zeros(3, 96, 96, dtype=torch.int64), {}, TypeError, "niqe: img must be uint8", id="int"),
    ],
)
def test_bad_input(img, kwargs, error, match):
    with pytest.raises(error, match=match):
        niqe(img, **kwargs)

"""Shared fixtures: devices, seeded sample images, the structured images every op is tried on, and
the tiny bundle the upscale CLI tests run."""
from __future__ import annotations

import pytest
import torch

CUDA = torch.cuda.is_available()

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA GPU present")),
]
DTYPES = [torch.uint8, torch.float16, torch.bfloat16, torch.float32]
SEEDS = [0, 1, 2]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def one_thread():
    """Runs a test with one torch thread: tiny models on shared cores mostly wait for a spinning
    partner thread (a small conv takes ~30 ms instead of ~0.2 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_image(shape, dtype=torch.float32, device="cpu", seed=0) -> torch.Tensor:
    """Uniform noise in [0, 1] (0..255 for uint8), reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    return x.to(device)


def structured_images(C: int, H: int, W: int):
    """Named [1, C, H, W] float32 images with known texture: flat, checkerboard, ramps."""
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    checker = ((yy + xx) % 2).float()
    return {
        "constant": torch.full((1, C, H, W), 0.37),
        "checkerboard": checker.expand(1, C, H, W).clone(),
        "ramp_x": (xx.float() / max(W - 1, 1)).expand(1, C, H, W).clone(),
        "ramp_y": (yy.float() / max(H - 1, 1)).expand(1, C, H, W).clone(),
    }


@pytest.fixture(scope="session")
def cli_bundle_path(tmp_path_factory):
    """A tiny random x2 bundle of two classes (16-pixel tiles) for the `mmsr upscale` tests."""
    from mmsr.bundle import Bundle, save_bundle

    bundle = Bundle.random(
        ["1-2w8", "2-2w8"], threshold=0.0, boundaries=[0.02], scale=2, tile_size=16, overlap=4, seed=1
    )
    return save_bundle(bundle, tmp_path_factory.mktemp("bundle") / "tiny.safetensors")


@pytest.fixture
def val_folder(tmp_path):
    """A validation folder of two small HR images, half flat and half noise, so that their TVAT tiles fall
    in both classes of a two-class bundle (the paper harness's per-class comparisons)."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "tiny_set"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(((40, 48), (36, 52))):
        pixels = np.full((h, w, 3), 120, dtype=np.uint8)
        pixels[:, w // 2 :] = rng.integers(0, 256, (h, w - w // 2, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"im{i}.png")
    return folder

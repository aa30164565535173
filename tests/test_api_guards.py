"""Guards found by an audit of the Python API (eleventh session): each test failed before its fix.

Integer and tensor arguments, damaged bundles, float images out of range, NaN from the models,
band sizes that changed results, and image writes that ruined data without an error.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import mmsr
from mmsr import Upscaler, upscale as upscale_module
from mmsr.bundle import Bundle, BundleError, load_bundle, save_bundle
from mmsr.imageio import ImageData, read_image, write_image
from test_bundle import _rewrite  # saves a bundle file again with its tensors or header changed

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bundle():
    return Bundle.random(["1-2w8", "2-2w8"], threshold=0.0, boundaries=[0.02], scale=2, tile_size=16, overlap=4, seed=1)


# -- integer arguments -------------------------------------------------------------------------


def test_numpy_ints_are_taken_and_oversized_ints_are_refused_by_name():
    x = torch.rand(1, 3, 40, 40)
    tiles, grid = mmsr.tile(x, np.int64(16), np.int64(4))
    assert torch.equal(mmsr.stitch(tiles, grid, scale=np.int64(1)), x)
    # 2**63 used to reach the dispatcher: "Expected a value of type 'int' ... but instead found type 'int'".
    with pytest.raises(ValueError, match=r"tile_size must be at most 2\*\*63 - 1, got 9223372036854775808"):
        mmsr.tile(x, 2**63, 0)


def test_torch_jit_trace_of_tile_works_for_the_traced_size():
    # The traced sizes are tensors: TileGrid used to refuse them ("height must be an int, got Tensor").
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the trace's own: torch.jit is deprecated, sizes become constants
        traced = torch.jit.trace(lambda x: mmsr.tile(x, 16, 4)[0], (torch.rand(1, 3, 40, 40),))
    x = torch.rand(1, 3, 40, 40)
    assert torch.equal(traced(x), mmsr.tile(x, 16, 4)[0])


def test_a_bundle_naming_a_huge_tile_size_is_refused_by_name(bundle, tmp_path):
    path = save_bundle(bundle, tmp_path / "t.safetensors")
    _rewrite(path, edit_header=lambda h: h.update(tile_size=10**30))
    with pytest.raises(BundleError, match=r"t\.safetensors: tile_size must be at most 1048576"):
        load_bundle(path)


# -- damaged bundles and NaN out of the models ----------------------------------------------------


def test_a_negative_batchnorm_variance_is_refused_at_load(bundle, tmp_path):
    # It loaded, and every image came out NaN (float) or black (uint8).
    path = save_bundle(bundle, tmp_path / "v.safetensors")

    def negative(tensors):
        for name in tensors:
            if name.endswith(".running_var"):
                tensors[name] = -torch.ones_like(tensors[name])

    _rewrite(path, edit_tensors=negative)
    with pytest.raises(BundleError, match=r"running_var' holds negative variances; the file is damaged"):
        load_bundle(path)


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_nan_from_the_models_is_an_error_not_a_black_image(bundle, dtype):
    broken = Bundle(
        scale=bundle.scale, threshold=bundle.threshold, boundaries=bundle.boundaries, configs=bundle.configs,
        state_dicts=tuple({k: (v * 1e30 if k.endswith("weight") else v) for k, v in sd.items()} for sd in bundle.state_dicts),
        tile_size=bundle.tile_size, overlap=bundle.overlap,
    )  # fmt: skip
    image = torch.rand(3, 40, 50)
    image = (image * 255).to(torch.uint8) if dtype == torch.uint8 else image
    up = Upscaler(broken)
    with pytest.raises(RuntimeError, match=r"the models returned \d+ NaN or inf values for this image"):
        up.upscale(image)
    with pytest.raises(RuntimeError, match="NaN or inf"):
        up.upscale_whole(image)


def test_float_images_far_outside_0_1_are_refused_with_the_likely_cause(bundle):
    up = Upscaler(bundle)
    with pytest.raises(ValueError, match=r"image values range from 0 to 255; float images must be in \[0, 1\]; divide"):
        up.upscale(torch.linspace(0, 255, 50).expand(3, 40, 50).contiguous())
    up.upscale(torch.rand(3, 40, 50) * 1.2 - 0.1)  # ringing from an earlier resize: taken


def test_sparse_images_get_a_clear_error(bundle):
    with pytest.raises(TypeError, match=r"image must be a dense \(strided\) tensor, got layout torch.sparse_coo"):
        Upscaler(bundle).upscale(torch.rand(3, 20, 30).to_sparse())


def test_default_bands_hold_whole_groups_even_past_the_memory_budget(bundle, monkeypatch):
    # A wide image's (or a big batch's) default band fell below 4 tile rows, so an image's result
    # depended on what else was in the batch.
    monkeypatch.setattr(upscale_module, "_BAND_BYTES", 1)
    up = Upscaler(bundle)
    x = torch.rand(1, 3, 100, 90)
    assert up._band_rows(2, up.grid(100, 90)) == 4
    assert torch.equal(up.upscale(x).image[0], up.upscale(torch.cat([x, x])).image[0])


# -- writing images ---------------------------------------------------------------------------------


def test_integer_pixels_other_than_uint8_are_refused(tmp_path):
    # They were read as floats in [0, 1] and saturated: 0-255 int32 pixels came out all white.
    with pytest.raises(TypeError, match="rgb must be uint8, or float in \\[0, 1\\], got torch.int32"):
        write_image(tmp_path / "r.png", ImageData(rgb=torch.randint(0, 256, (3, 4, 5), dtype=torch.int32)))
    assert not (tmp_path / "r.png").exists()


@pytest.mark.parametrize(
    "alpha, got",
    [(torch.zeros(2, 2, dtype=torch.uint8), r"torch.uint8 \(2, 2\)"), (torch.zeros(4, 5), r"torch.float32 \(4, 5\)")],
    ids=["lr-size", "float"],
)
def test_a_bad_alpha_is_named(tmp_path, alpha, got):
    image = ImageData(rgb=torch.zeros(3, 4, 5, dtype=torch.uint8), alpha=alpha)
    for ext in (".png", ".jpg"):  # JPEG used to ignore it silently, PNG to fail inside Pillow
        with pytest.raises(ValueError, match=r"alpha should be a uint8 \[H, W\] tensor of rgb's size \(4, 5\), got " + got):
            write_image(tmp_path / f"a{ext}", image)


def test_a_bad_max_pixels_is_the_arguments_fault_not_the_files(tmp_path):
    write_image(tmp_path / "r.png", ImageData(rgb=torch.zeros(3, 4, 5, dtype=torch.uint8)))
    with pytest.raises(TypeError, match=r"max_pixels must be an int, got str '1000'"):
        read_image(tmp_path / "r.png", max_pixels="1000")

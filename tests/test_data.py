"""mmsr.data: HR folders, crops, LR synthesis and per-class batches (CPU, small generated images)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import mmsr
from mmsr.data import (
    ClassBatches,
    CropSampler,
    ImageSet,
    RareClassError,
    downsample,
    find_images,
    load_folder,
    read_image,
    sample_scores,
    split_holdout,
    tvat_classes,
)

CROP = 32
SCALE = 4


def _textured(rng: np.random.Generator, h: int, w: int, noise: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20
    return np.clip(base + rng.normal(0, noise, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    """A folder with RGB PNG/JPEG, grayscale, RGBA, palette, a too-small image, a corrupt file and a subfolder."""
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    Image.fromarray(_textured(rng, 40, 48, 5)).save(tmp_path / "a.png")
    Image.fromarray(_textured(rng, 64, 64, 40)).save(tmp_path / "b.JPG", quality=95)
    Image.fromarray(_textured(rng, 48, 40, 20)[..., 0]).save(tmp_path / "sub" / "gray.png")
    rgba = np.concatenate([_textured(rng, 48, 48, 30), np.full((48, 48, 1), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "sub" / "alpha.png")
    Image.fromarray(_textured(rng, 40, 40, 10)).convert("P").save(tmp_path / "sub" / "palette.bmp")
    Image.fromarray(_textured(rng, 16, 16, 10)).save(tmp_path / "small.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def _coordinate_image(h: int, w: int, tag: int) -> torch.Tensor:
    """uint8 [3, h, w] whose R = row, G = column and B = tag, so a crop tells where it came from."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([y, x, torch.full_like(y, tag)]).to(torch.uint8)


def _symmetries(region: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips / 90-degree rotations of a [C, p, p] tensor."""
    out = []
    for t in (region, region.transpose(1, 2)):
        for k in range(4):
            out.append(torch.rot90(t, k, dims=(1, 2)))
    return out


def test_find_images_is_recursive_sorted_and_filters_by_extension(folder):
    names = [p.relative_to(folder).as_posix() for p in find_images(folder)]
    assert names == sorted(names)
    assert set(names) == {"a.png", "b.JPG", "broken.jpg", "small.png", "sub/alpha.png", "sub/gray.png", "sub/palette.bmp"}


def test_load_folder_converts_to_rgb_and_reports_skipped_files(folder):
    messages = []
    loaded = load_folder(folder, min_size=CROP, log=messages.append)
    kept = {p.split("/")[-1] for p in loaded.images.paths}
    assert kept == {"a.png", "b.JPG", "gray.png", "alpha.png", "palette.bmp"}
    skipped = {s.path.split("/")[-1]: s.reason for s in loaded.skipped}
    assert set(skipped) == {"broken.jpg", "small.png"}
    assert skipped["broken.jpg"].startswith("cannot read image")  # the path is the line's, not repeated
    assert "smaller than the 32x32 crop" in skipped["small.png"]
    assert any("broken.jpg" in m for m in messages) and any("small.png" in m for m in messages)
    for i, path in enumerate(loaded.images.paths):
        image = loaded.images.image(i)
        assert image.dtype == torch.uint8 and image.shape[0] == 3
        if path.endswith("gray.png"):
            assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    alpha = loaded.images.image(loaded.images.paths.index(str(folder / "sub" / "alpha.png")))
    assert alpha.shape == (3, 48, 48)


def test_load_folder_decodes_once(folder):
    first = load_folder(folder, min_size=CROP, log=None)
    second = load_folder(folder, min_size=CROP, log=None)
    assert first is second


def test_load_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no image files"):
        load_folder(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="no usable image.*bad.png"):
        load_folder(tmp_path, log=None)


def test_read_image_scales_16_bit_grayscale(tmp_path):
    values = np.array([[0, 65535], [257 * 100, 257 * 200]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image[0].tolist() == [[0, 255], [100, 200]]


def test_image_set_packs_and_unpacks():
    images = [_coordinate_image(40, 50, 1), _coordinate_image(33, 36, 2)]
    packed = ImageSet.from_images(images, ["a", "b"])
    assert len(packed) == 2 and packed.pixels.numel() == sum(im.numel() for im in images)
    for i, im in enumerate(images):
        assert torch.equal(packed.image(i), im)
    sub = packed.subset([1])
    assert sub.paths == ("b",) and torch.equal(sub.image(0), images[1])


def test_split_holdout_is_disjoint_and_deterministic():
    images = ImageSet.from_images([_coordinate_image(4, 4, i) for i in range(10)], [str(i) for i in range(10)])
    train, val = split_holdout(images, 0.3, seed=1)
    assert len(train) == 7 and len(val) == 3
    assert not set(train.paths) & set(val.paths)
    assert split_holdout(images, 0.3, seed=1)[1].paths == val.paths
    assert split_holdout(images, 0.0)[1] is None
    assert split_holdout(images.subset([0]), 0.5)[1] is None


@pytest.mark.parametrize("seed", [0, 1])
def test_crops_without_augmentation_are_image_regions(seed):
    images = [_coordinate_image(50, 70, 0), _coordinate_image(40, 33, 1), _coordinate_image(20, 20, 2)]
    sampler = CropSampler(ImageSet.from_images(images, ["a", "b", "c"]), CROP, seed=seed, augment=False)
    crops = sampler.sample(64)
    assert crops.shape == (64, 3, CROP, CROP) and crops.dtype == torch.uint8
    for crop in crops:
        tag, y0, x0 = int(crop[2, 0, 0]), int(crop[0, 0, 0]), int(crop[1, 0, 0])
        assert tag != 2, "an image smaller than the crop was sampled"
        assert torch.equal(crop, images[tag][:, y0 : y0 + CROP, x0 : x0 + CROP])


def test_augmented_crops_are_symmetries_of_regions_and_cover_all_eight():
    image = _coordinate_image(48, 56, 7)
    sampler = CropSampler(ImageSet.from_images([image], ["a"]), CROP, seed=3, augment=True)
    seen = set()
    for crop in sampler.sample(200):
        y0, x0 = int(crop[0].min()), int(crop[1].min())
        region = image[:, y0 : y0 + CROP, x0 : x0 + CROP]
        matches = [i for i, t in enumerate(_symmetries(region)) if torch.equal(crop, t)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(8))


def test_crop_sampler_refuses_images_smaller_than_the_crop():
    with pytest.raises(ValueError, match="no image is at least 32x32"):
        CropSampler(ImageSet.from_images([_coordinate_image(20, 40, 0)], ["a"]), CROP)


def test_downsample_is_antialiased_bicubic_quantised_to_8_bits():
    hr = torch.randint(0, 256, (3, 3, CROP, CROP), dtype=torch.uint8)
    lr = downsample(hr, SCALE)
    assert lr.shape == (3, 3, CROP // SCALE, CROP // SCALE) and lr.dtype == torch.float32
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.equal(lr * 255, (lr * 255).round())
    expected = F.interpolate(hr.float() / 255, scale_factor=1 / SCALE, mode="bicubic", antialias=True).clamp(0, 1)
    assert torch.allclose(lr, expected, atol=0.5 / 255 + 1e-6)
    assert torch.allclose(downsample(hr, SCALE, quantize=False), expected, atol=1e-6)
    with pytest.raises(ValueError, match="not divisible by scale 4"):
        downsample(torch.zeros(1, 3, 30, 32), SCALE)


def test_tvat_classes_match_mmsr_classify_of_tvat():
    lr = torch.rand(20, 3, 8, 8) * torch.linspace(0, 1, 20).view(20, 1, 1, 1)
    boundaries = [0.05, 0.3]
    scores, classes = tvat_classes(lr, boundaries, threshold=mmsr.DEFAULT_TVAT_THRESHOLD)
    expected = mmsr.tvat(lr, mmsr.DEFAULT_TVAT_THRESHOLD)
    assert torch.equal(scores, expected)
    assert torch.equal(classes, mmsr.classify(expected, boundaries))
    assert set(classes.tolist()) == {0, 1, 2}


def _mixed_images() -> ImageSet:
    rng = np.random.default_rng(5)
    images = [torch.from_numpy(_textured(rng, 64, 64, noise)).permute(2, 0, 1).contiguous() for noise in (0, 8, 30, 60)]
    return ImageSet.from_images(images, ["flat", "soft", "rough", "noisy"])


@pytest.mark.parametrize("klass", [0, 1, 2])
def test_class_batches_yield_only_their_class(klass):
    images = _mixed_images()
    threshold = mmsr.DEFAULT_TVAT_THRESHOLD
    scores = sample_scores(images, crop=CROP, scale=SCALE, threshold=threshold, samples=256)
    boundaries = scores.quantile(torch.tensor([1 / 3, 2 / 3])).tolist()
    batches = ClassBatches(images, crop=CROP, scale=SCALE, klass=klass, boundaries=boundaries, threshold=threshold, seed=klass)
    for _ in range(3):
        lr, hr = batches.next(4)
        assert lr.shape == (4, 3, CROP // SCALE, CROP // SCALE) and hr.shape == (4, 3, CROP, CROP)
        assert hr.dtype == torch.float32 and 0 <= hr.min() and hr.max() <= 1
        assert torch.equal(mmsr.classify(mmsr.tvat(lr, threshold), boundaries), torch.full((4,), klass))
        assert torch.equal(downsample(hr, SCALE), lr)


def test_class_batches_refuse_a_class_that_never_occurs():
    batches = ClassBatches(_mixed_images(), crop=CROP, scale=SCALE, klass=1, boundaries=[1e6], threshold=0.0, min_fraction=0.05)
    with pytest.raises(RareClassError, match=r"class 1 \(1e\+06 <= TVAT < inf\) is too rare.*0 of"):
        batches.next(4)
    lr, hr = batches.take(4, max_draws=100)
    assert lr.shape[0] == 0 and hr.shape[0] == 0


def test_class_batches_state_round_trip_replays_the_crop_stream():
    images = _mixed_images()
    batches = ClassBatches(images, crop=CROP, scale=SCALE, klass=0, boundaries=[], threshold=0.0, seed=4, prefetch=1)
    batches.next(4)
    state = batches.state_dict()
    expected = batches.next(4)
    batches.load_state_dict(state)
    again = batches.next(4)
    assert torch.equal(expected[1], again[1])


def test_sample_scores_are_tvat_of_lr_crops():
    images = _mixed_images()
    scores = sample_scores(images, crop=CROP, scale=SCALE, threshold=0.0, samples=50, seed=2)
    assert scores.shape == (50,) and scores.dtype == torch.float32 and bool((scores >= 0).all())


def test_an_image_of_a_refused_kind_is_skipped_not_fatal(tmp_path):
    # Float pixels (mode F) raise ValueError in imageio; one such file must not abort a training folder.
    Image.fromarray(np.zeros((40, 40), np.float32), mode="F").save(tmp_path / "depth.tif")
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "ok.png")
    loaded = load_folder(tmp_path, min_size=32, log=None)
    assert len(loaded.images) == 1
    assert [(s.path.split("/")[-1], s.reason.split(":")[0]) for s in loaded.skipped] == [
        ("depth.tif", "32-bit floating-point images (mode F) are not supported")
    ]

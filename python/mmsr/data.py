"""Training data: HR image folders, random crops, LR synthesis and TVAT classes.

The training data flow (DESIGN.md):

    HR folder -> decoded once to uint8 [3, H, W] -> packed into one flat buffer on the training device
    -> random HR crops with flips and 90-degree rotations, cut by one batched gather
    -> LR by bicubic down-sampling with antialias -> mmsr.tvat -> mmsr.classify -> batches of one class

Crops are cut by index arithmetic on the device, never by a per-crop Python loop: a loop-based
sampler was the bottleneck of a small model's training step (MEASUREMENTS.md).

Example:
    >>> folder = load_folder("photos/", min_size=96)                        # doctest: +SKIP
    >>> batches = ClassBatches(folder.images, crop=96, scale=4, klass=1,
    ...                        boundaries=[0.05, 0.12], threshold=0.0, seed=0)  # doctest: +SKIP
    >>> lr, hr = batches.next(16)  # lr: float32 [16, 3, 24, 24], hr: float32 [16, 3, 96, 96]  # doctest: +SKIP
"""
from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from . import imageio
from .ops import classify, tvat

__all__ = [
    "IMAGE_EXTENSIONS",
    "ClassBatches",
    "CropSampler",
    "HRFolder",
    "ImageSet",
    "RareClassError",
    "SkippedFile",
    "class_range",
    "downsample",
    "find_images",
    "load_folder",
    "read_image",
    "read_image_and_grayscale",
    "sample_scores",
    "split_holdout",
    "tvat_classes",
]

IMAGE_EXTENSIONS = frozenset(imageio.EXTENSIONS)

# Index elements per gather: bounds the int64 index tensor of one gather to 32 MiB.
_GATHER_CHUNK = 1 << 22
# A class that keeps fewer than this share of random crops is refused rather than sampled for ever.
DEFAULT_MIN_FRACTION = 0.005
# Over-draw factor on top of the expected number of candidates, so most batches take one round.
_OVERDRAW = 1.25
# Largest round of candidate crops, in uint8 HR bytes (64 MiB).
_ROUND_BYTES = 1 << 26


class RareClassError(RuntimeError):
    """Random crops almost never fall in the requested TVAT class; the message says how rarely."""


@dataclass(frozen=True)
class SkippedFile:
    """A file of an HR folder that was not used, and why."""

    path: str
    reason: str


def find_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root``, recursively, by extension (case-insensitive), sorted.

    Example:
        >>> find_images("photos/")                                          # doctest: +SKIP
        [PosixPath('photos/a.png'), PosixPath('photos/sub/b.jpg')]
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"HR folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"HR folder {str(root)!r} is not a directory")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def read_image(path: str | os.PathLike) -> Tensor:
    """Decode one image file for training: uint8 Tensor[3, H, W], RGB.

    Decoding is :func:`mmsr.imageio.read_image` (grayscale and palette become RGB, EXIF
    orientation applied); training drops alpha and rounds 16-bit files to 8 bits.

    Raises:
        OSError: the file cannot be read or decoded (the message names the file).

    Example:
        >>> read_image("photos/a.png").shape                                # doctest: +SKIP
        torch.Size([3, 480, 640])
    """
    return read_image_and_grayscale(path)[0]


def read_image_and_grayscale(path: str | os.PathLike) -> tuple[Tensor, bool]:
    """:func:`read_image`, and whether the file is grayscale (one colour plane, read as three equal
    channels), from one decode.

    Raises:
        OSError: the file cannot be read or decoded (the message names the file).
    """
    try:
        image = imageio.read_image(path, max_pixels=None, metadata=False)
    except ValueError as err:  # an unsupported pixel format: as unusable as a broken file
        raise OSError(str(err)) from None
    rgb = image.rgb
    if rgb.dtype != torch.uint8:
        rgb = (rgb * 255).round().to(torch.uint8)
    return rgb, image.grayscale


@dataclass
class ImageSet:
    """Images of different sizes packed into one flat uint8 buffer, so crops are one gather.

    Image i occupies ``pixels[offsets[i] : offsets[i] + 3 * heights[i] * widths[i]]`` in [3, H, W]
    order. CPU tensors can be handed to worker processes without a copy (torch shares their memory).

    Attributes:
        pixels: uint8 Tensor[total], every image's [3, H, W] values back to back.
        offsets: int64 Tensor[N], start of each image in ``pixels``.
        heights, widths: int64 Tensor[N].
        paths: the source file of each image.

    Example:
        >>> s = ImageSet.from_images([torch.zeros(3, 4, 5, dtype=torch.uint8)], ["a.png"])
        >>> s.image(0).shape
        torch.Size([3, 4, 5])
    """

    pixels: Tensor
    offsets: Tensor
    heights: Tensor
    widths: Tensor
    paths: tuple[str, ...]

    @classmethod
    def from_images(cls, images: Sequence[Tensor], paths: Sequence[str]) -> ImageSet:
        """Pack uint8 Tensor[3, H, W] images (one device) into an ImageSet."""
        if len(images) != len(paths):
            raise ValueError(f"got {len(images)} images but {len(paths)} paths")
        for path, im in zip(paths, images):
            if im.dtype != torch.uint8 or im.dim() != 3 or im.shape[0] != 3:
                raise ValueError(f"image {path!r} should be a uint8 [3, H, W] tensor, got {im.dtype} {tuple(im.shape)}")
        device = images[0].device if images else torch.device("cpu")
        sizes = torch.tensor([im.numel() for im in images], dtype=torch.int64)
        offsets = torch.cumsum(sizes, 0) - sizes
        pixels = torch.cat([im.reshape(-1) for im in images]) if images else torch.empty(0, dtype=torch.uint8)
        return cls(
            pixels=pixels.to(device),
            offsets=offsets.to(device),
            heights=torch.tensor([im.shape[1] for im in images], dtype=torch.int64, device=device),
            widths=torch.tensor([im.shape[2] for im in images], dtype=torch.int64, device=device),
            paths=tuple(str(p) for p in paths),
        )

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def device(self) -> torch.device:
        return self.pixels.device

    def image(self, i: int) -> Tensor:
        """Image ``i`` as a uint8 Tensor[3, H, W] view of the buffer."""
        h, w = int(self.heights[i]), int(self.widths[i])
        start = int(self.offsets[i])
        return self.pixels[start : start + 3 * h * w].view(3, h, w)

    def to(self, device: torch.device | str) -> ImageSet:
        """The same images on ``device`` (no copy when already there)."""
        return ImageSet(
            self.pixels.to(device),
            self.offsets.to(device),
            self.heights.to(device),
            self.widths.to(device),
            self.paths,
        )

    def subset(self, indices: Sequence[int]) -> ImageSet:
        """A new ImageSet of the images at ``indices`` (in that order)."""
        return ImageSet.from_images([self.image(i) for i in indices], [self.paths[i] for i in indices])


@dataclass
class HRFolder:
    """The usable images of an HR folder and the files that were skipped."""

    root: str
    images: ImageSet
    skipped: tuple[SkippedFile, ...]


def _warn(message: str) -> None:
    print(f"mmsr: {message}", file=sys.stderr)


def _decode(path: Path) -> Tensor | str:
    """The image, or why it cannot be used (without the path, which the skip line gives)."""
    try:
        return read_image(path)
    except (OSError, ValueError) as err:  # unreadable, or a kind mmsr refuses (e.g. float pixels)
        return imageio.without_path(str(err), path)


# The most recently loaded folder: calibration and training in one process decode it once.
_FOLDER_CACHE: dict[tuple, HRFolder] = {}


def load_folder(
    root: str | os.PathLike,
    *,
    min_size: int = 1,
    log: Optional[Callable[[str], None]] = _warn,
    threads: Optional[int] = None,
) -> HRFolder:
    """Read every image under ``root`` (recursively) once, into an :class:`ImageSet` on the CPU.

    Unreadable files and images smaller than ``min_size`` on either side are skipped; each one is
    reported through ``log`` by name and listed in ``HRFolder.skipped``. The result is cached: a
    second call with the same folder contents and ``min_size`` decodes nothing.

    Args:
        root: the HR folder; png, jpg, jpeg, webp, bmp, tif and tiff files are read.
        min_size: smallest usable height and width (the HR crop size for training).
        log: called with one line per skipped file; None to stay quiet.
        threads: decoding threads (Pillow decodes without the GIL); default: the CPU count.

    Raises:
        FileNotFoundError / NotADirectoryError: ``root`` is missing or not a folder.
        ValueError: no usable image was found (the message says how many files were skipped).

    Example:
        >>> folder = load_folder("photos/", min_size=96)                    # doctest: +SKIP
        >>> len(folder.images), [s.path for s in folder.skipped]            # doctest: +SKIP
        (79, ['photos/broken.jpg'])
    """
    paths = find_images(root)
    key = (str(Path(root).resolve()), min_size) + tuple(
        (str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths
    )
    cached = _FOLDER_CACHE.get(key)
    if cached is None:
        cached = _load_uncached(root, paths, min_size, threads)
        _FOLDER_CACHE.clear()
        _FOLDER_CACHE[key] = cached
    if log is not None:
        for skipped in cached.skipped:
            log(f"skipped {skipped.path}: {skipped.reason}")
    return cached


def _load_uncached(root, paths: list[Path], min_size: int, threads: Optional[int]) -> HRFolder:
    if not paths:
        raise ValueError(f"HR folder {str(root)!r} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        decoded = list(pool.map(_decode, paths))
    images, kept, skipped = [], [], []
    for path, result in zip(paths, decoded):
        if isinstance(result, str):
            skipped.append(SkippedFile(str(path), result))
        elif min(result.shape[1:]) < min_size:
            size = f"{result.shape[2]}x{result.shape[1]}"
            skipped.append(SkippedFile(str(path), f"{size} is smaller than the {min_size}x{min_size} crop"))
        else:
            images.append(result)
            kept.append(str(path))
    if not images:
        raise ValueError(
            f"HR folder {str(root)!r} has no usable image: all {len(paths)} image files were skipped "
            f"(first: {skipped[0].path}: {skipped[0].reason})"
        )
    return HRFolder(str(root), ImageSet.from_images(images, kept), tuple(skipped))


def split_holdout(images: ImageSet, fraction: float, seed: int = 0) -> tuple[ImageSet, Optional[ImageSet]]:
    """Hold out whole images for validation: ``(train, val)``; ``val`` is None when nothing is held out.

    ``round(fraction * N)`` images (at least one when ``fraction > 0``) are picked by a seeded
    permutation; with fewer than two images nothing is held out.

    Example:
        >>> s = ImageSet.from_images([torch.zeros(3, 2, 2, dtype=torch.uint8)] * 10, [str(i) for i in range(10)])
        >>> train, val = split_holdout(s, 0.2)
        >>> len(train), len(val)
        (8, 2)
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    n = len(images)
    count = 0 if fraction == 0 or n < 2 else min(n - 1, max(1, round(fraction * n)))
    if count == 0:
        return images, None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    val_idx, train_idx = sorted(order[:count]), sorted(order[count:])
    return images.subset(train_idx), images.subset(val_idx)


class CropSampler:
    """Uniformly random square crops of an :class:`ImageSet`, cut on the set's device.

    Every valid crop position of every image is equally likely (an image is picked with weight
    equal to its number of positions). With ``augment`` each crop also gets one of the 8 flips /
    90-degree rotations, uniformly. Images smaller than the crop are never picked.

    Args:
        images: the source images (their device is where crops are cut).
        crop: crop side in pixels.
        seed: seeds the sampler's own generator (on the images' device).
        augment: apply random flips and rotations.

    Example:
        >>> s = ImageSet.from_images([torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)], ["a"])
        >>> CropSampler(s, 32, seed=0).sample(4).shape
        torch.Size([4, 3, 32, 32])
    """

    def __init__(self, images: ImageSet, crop: int, *, seed: int = 0, augment: bool = True) -> None:
        if crop < 1:
            raise ValueError(f"crop must be >= 1, got {crop}")
        fits = (images.heights >= crop) & (images.widths >= crop)
        if not bool(fits.any()):
            raise ValueError(f"no image is at least {crop}x{crop} pixels, the crop size")
        self.images = images
        self.crop = crop
        self.augment = augment
        self.device = images.device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        positions = (images.heights - crop + 1).clamp(min=0) * (images.widths - crop + 1).clamp(min=0)
        self._weights = positions.double()
        self._grid = torch.arange(crop, device=self.device)

    def sample(self, n: int) -> Tensor:
        """``n`` random crops: uint8 Tensor[n, 3, crop, crop] on the images' device."""
        per_gather = max(1, _GATHER_CHUNK // (3 * self.crop * self.crop))
        parts = [self._gather(min(per_gather, n - start)) for start in range(0, n, per_gather)]
        if not parts:
            return torch.empty(0, 3, self.crop, self.crop, dtype=torch.uint8, device=self.device)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _gather(self, n: int) -> Tensor:
        g, p, dev = self.generator, self.crop, self.device
        img = torch.multinomial(self._weights, n, replacement=True, generator=g)
        h, w = self.images.heights[img], self.images.widths[img]
        y0 = (torch.rand(n, generator=g, device=dev, dtype=torch.float64) * (h - p + 1)).long().clamp_(max=h - p)
        x0 = (torch.rand(n, generator=g, device=dev, dtype=torch.float64) * (w - p + 1)).long().clamp_(max=w - p)
        k = self._grid.view(1, p)
        ys = y0.view(n, 1) + k  # [n, p] source rows, before symmetry
        xs = x0.view(n, 1) + k  # [n, p] source columns
        if self.augment:
            # 3 random bits pick one of the 8 symmetries of the square: flip rows, flip columns, transpose.
            t = torch.randint(0, 8, (n, 1), generator=g, device=dev)
            ys = torch.where((t & 2) > 0, ys.flip(1), ys)
            xs = torch.where((t & 1) > 0, xs.flip(1), xs)
            transpose = (t & 4) > 0
        else:
            transpose = torch.zeros(n, 1, dtype=torch.bool, device=dev)
        # A symmetry maps crop pixel (i, j) to a source pixel whose flat index splits into a term in i
        # and a term in j, so the [n, 3, p, p] index is one broadcast sum of [n, p] vectors.
        row_term, col_term = ys * w.view(n, 1), xs
        along_i = torch.where(transpose, col_term, row_term)  # [n, p]
        along_j = torch.where(transpose, row_term, col_term)  # [n, p]
        base = self.images.offsets[img].view(n, 1) + torch.arange(3, device=dev).view(1, 3) * (h * w).view(n, 1)
        index = base.view(n, 3, 1, 1) + along_i.view(n, 1, p, 1) + along_j.view(n, 1, 1, p)
        return self.images.pixels.index_select(0, index.view(-1)).view(n, 3, p, p)


def downsample(hr: Tensor, scale: int, *, quantize: bool = True) -> Tensor:
    """LR images by bicubic down-sampling with antialias: float32 Tensor[N, 3, H/scale, W/scale] in [0, 1].

    Args:
        hr: Tensor[N, 3, H, W], uint8 or float in [0, 1]; H and W divisible by ``scale``.
        scale: the down-sampling factor.
        quantize: round to 8-bit levels, as an LR image read from a file at inference would be.

    Example:
        >>> downsample(torch.rand(2, 3, 32, 32), 4).shape
        torch.Size([2, 3, 8, 8])
    """
    if hr.dim() != 4:
        raise ValueError(f"hr should be a [N, C, H, W] tensor, got shape {tuple(hr.shape)}")
    height, width = hr.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"hr size {height}x{width} is not divisible by scale {scale}")
    x = hr.float() / 255.0 if hr.dtype == torch.uint8 else hr.float()
    lr = F.interpolate(x, size=(height // scale, width // scale), mode="bicubic", antialias=True, align_corners=False)
    lr = lr.clamp_(0.0, 1.0)
    return lr.mul_(255.0).round_().div_(255.0) if quantize else lr


def tvat_classes(lr: Tensor, boundaries: Sequence[float], threshold: float) -> tuple[Tensor, Tensor]:
    """TVAT score and class of each LR crop: ``(float32 Tensor[N], int64 Tensor[N])``.

    Equivalent to ``mmsr.classify(mmsr.tvat(lr, threshold), boundaries)``; with no boundaries
    (one class) nothing is scored and the scores are NaN.

    Example:
        >>> scores, classes = tvat_classes(torch.rand(5, 3, 8, 8), [0.5], threshold=0.0)
        >>> classes.tolist()
        [1, 1, 1, 1, 1]
    """
    if not boundaries:
        n = lr.shape[0]
        return torch.full((n,), math.nan, device=lr.device), torch.zeros(n, dtype=torch.int64, device=lr.device)
    scores = tvat(lr, threshold)
    return scores, classify(scores, list(boundaries))


def class_range(boundaries: Sequence[float], klass: int) -> str:
    """TVAT class ``klass``'s interval in words.

    Example:
        >>> class_range([0.05, 0.15], 2), class_range([0.05, 0.15], 0)
        ('0.15 <= TVAT < inf', '-inf <= TVAT < 0.05')
    """
    low = f"{boundaries[klass - 1]:.6g}" if klass > 0 else "-inf"
    high = f"{boundaries[klass]:.6g}" if klass < len(boundaries) else "inf"
    return f"{low} <= TVAT < {high}"


def sample_scores(images: ImageSet, *, crop: int, scale: int, threshold: float, samples: int, seed: int = 0) -> Tensor:
    """TVAT of the LR of ``samples`` random HR crops (no augmentation): float32 Tensor[samples].

    This is the calibration sample: its quantiles give equal-count class boundaries.

    Example:
        >>> s = ImageSet.from_images([torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)], ["a"])
        >>> sample_scores(s, crop=32, scale=4, threshold=0.0, samples=8).shape
        torch.Size([8])
    """
    sampler = CropSampler(images, crop, seed=seed, augment=False)
    per_round = max(1, _GATHER_CHUNK // (3 * crop * crop))
    scores = [
        tvat(downsample(sampler.sample(min(per_round, samples - start)), scale), threshold)
        for start in range(0, samples, per_round)
    ]
    return torch.cat(scores).float() if scores else torch.empty(0)


class ClassBatches:
    """Batches of (LR, HR) crop pairs whose LR falls in one TVAT class.

    Random crops are drawn in rounds, scored with ``mmsr.tvat`` and classified with
    ``mmsr.classify``; those of class ``klass`` (with ``and_above``, of that class or a more textured
    one) are kept and the rest dropped. A round draws about
    as many candidates as the observed class share predicts for ``prefetch`` batches, so the one
    host-device synchronisation a round needs (to count the kept crops) happens once per several
    steps; kept crops wait as uint8 HR and float LR until they are handed out.

    A class that almost never occurs would stall this for ever, so :meth:`next` raises
    :class:`RareClassError` once it has drawn ``4 * batch / min_fraction`` candidates without
    filling one batch: with the default ``min_fraction`` of 0.5%, a class that holds fewer than
    about 1 in 200 crops is refused with a message naming the class and its observed share.

    Args:
        images: source images; crops are cut and scored on their device.
        crop: HR crop side (divisible by ``scale``).
        scale: SR factor; LR crops are ``crop // scale`` pixels.
        klass: the class to keep, 0 <= klass <= len(boundaries).
        and_above: keep the crops of every class from ``klass`` up (the more textured ones too).
        boundaries: ascending TVAT class edges; empty for one class (nothing is scored).
        threshold: TVAT threshold.
        seed: seeds the crop positions and augmentations.
        augment: random flips and rotations.
        min_fraction: the smallest class share accepted before raising.
        prefetch: batches' worth of crops a round aims to keep.

    Example:
        >>> s = ImageSet.from_images([torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)], ["a"])
        >>> lr, hr = ClassBatches(s, crop=32, scale=4, klass=0, boundaries=[], threshold=0.0).next(4)
        >>> lr.shape, hr.shape
        (torch.Size([4, 3, 8, 8]), torch.Size([4, 3, 32, 32]))
    """

    def __init__(
        self,
        images: ImageSet,
        *,
        crop: int,
        scale: int,
        klass: int,
        boundaries: Sequence[float],
        threshold: float,
        seed: int = 0,
        augment: bool = True,
        min_fraction: float = DEFAULT_MIN_FRACTION,
        prefetch: int = 8,
        and_above: bool = False,
    ) -> None:
        if crop % scale:
            raise ValueError(f"crop {crop} is not divisible by scale {scale}")
        if not 0 <= klass <= len(boundaries):
            raise ValueError(f"klass must be in [0, {len(boundaries)}] for {len(boundaries)} boundaries, got {klass}")
        if not 0.0 < min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        self.sampler = CropSampler(images, crop, seed=seed, augment=augment)
        self.scale = scale
        self.klass = klass
        self.and_above = and_above
        self.boundaries = tuple(float(b) for b in boundaries)
        self.threshold = threshold
        self.min_fraction = min_fraction
        self.prefetch = prefetch
        self.drawn = 0
        self.kept = 0
        self._pending_lr: list[Tensor] = []  # float32 [n, 3, crop/scale, crop/scale]
        self._pending_hr: list[Tensor] = []  # uint8 [n, 3, crop, crop]

    @property
    def fraction(self) -> float:
        """Observed share of random crops that are kept (before any draw, a prior of the kept classes' count / K)."""
        classes = len(self.boundaries) + 1
        kept_classes = classes - self.klass if self.and_above else 1
        return (self.kept + kept_classes) / (self.drawn + classes)

    def _pending(self) -> int:
        return sum(t.shape[0] for t in self._pending_lr)

    def _round(self, wanted: int, budget: int) -> None:
        crop = self.sampler.crop
        largest = max(1, min(budget, _ROUND_BYTES // (3 * crop * crop)))
        n = min(largest, max(wanted, math.ceil(wanted / self.fraction * _OVERDRAW)))
        hr = self.sampler.sample(n)
        per_chunk = max(1, _GATHER_CHUNK // (3 * crop * crop))
        lr = torch.cat([downsample(hr[i : i + per_chunk], self.scale) for i in range(0, n, per_chunk)])
        _, classes = tvat_classes(lr, self.boundaries, self.threshold)
        keep = classes >= self.klass if self.and_above else classes == self.klass
        kept = int(keep.sum())  # the round's one synchronisation
        self.drawn += n
        self.kept += kept
        if kept:
            self._pending_lr.append(lr[keep] if kept < n else lr)
            self._pending_hr.append(hr[keep] if kept < n else hr)

    def _pop(self, count: int) -> tuple[Tensor, Tensor]:
        lr, hr = torch.cat(self._pending_lr), torch.cat(self._pending_hr)
        self._pending_lr = [lr[count:]] if lr.shape[0] > count else []
        self._pending_hr = [hr[count:]] if hr.shape[0] > count else []
        return lr[:count], hr[:count].float().div_(255.0)

    def next(self, batch: int) -> tuple[Tensor, Tensor]:
        """One batch: LR float32 Tensor[batch, 3, crop/scale, crop/scale] and HR float32
        Tensor[batch, 3, crop, crop], values in [0, 1], on the images' device.

        Raises:
            RareClassError: the class is too rare to fill a batch (see the class docstring).
        """
        limit = math.ceil(4 * batch / self.min_fraction)
        start = self.drawn
        while self._pending() < batch:
            if self.drawn - start >= limit:
                raise RareClassError(self._rare_message())
            self._round(self.prefetch * batch - self._pending(), budget=limit - (self.drawn - start))
        return self._pop(batch)

    def take(self, count: int, max_draws: int) -> tuple[Tensor, Tensor]:
        """Up to ``count`` crop pairs of this class, drawing at most about ``max_draws`` candidates.

        Unlike :meth:`next` this never raises for a rare class; it returns what it found (maybe
        nothing). Used for the fixed validation crops.
        """
        start = self.drawn
        while self._pending() < count and self.drawn - start < max_draws:
            self._round(count - self._pending(), budget=max_draws - (self.drawn - start))
        if not self._pending_lr:
            crop, lr_side = self.sampler.crop, self.sampler.crop // self.scale
            device = self.sampler.device
            return torch.empty(0, 3, lr_side, lr_side, device=device), torch.empty(0, 3, crop, crop, device=device)
        return self._pop(min(count, self._pending()))

    def _rare_message(self) -> str:
        k = self.klass
        share = self.kept / max(self.drawn, 1)
        which = f"TVAT classes {k} and above" if self.and_above else f"TVAT class {k} ({class_range(self.boundaries, k)})"
        return (
            f"{which} is too rare to train: {self.kept} of {self.drawn} random "
            f"crops ({share:.3%}) fell in it, below the minimum share min_fraction={self.min_fraction:.3%}. "
            "Recalibrate the boundaries on this data (mmsr calibrate DATA) or use fewer classes."
        )

    def state_dict(self) -> dict:
        """Generator state, counters and the crops waiting to be handed out (on the CPU), for checkpoints."""
        lr = torch.cat(self._pending_lr).cpu() if self._pending_lr else None
        hr = torch.cat(self._pending_hr).cpu() if self._pending_hr else None
        return {
            "generator": self.sampler.generator.get_state(),
            "drawn": self.drawn,
            "kept": self.kept,
            "pending_lr": lr,
            "pending_hr": hr,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved; the batches that follow are those that would have."""
        self.sampler.generator.set_state(state["generator"])
        self.drawn, self.kept = int(state["drawn"]), int(state["kept"])
        device = self.sampler.device
        pending_lr, pending_hr = state.get("pending_lr"), state.get("pending_hr")
        self._pending_lr = [pending_lr.to(device)] if pending_lr is not None else []
        self._pending_hr = [pending_hr.to(device)] if pending_hr is not None else []

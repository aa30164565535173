"""Class boundaries from data: TVAT quantiles of LR training crops, and a text histogram of them.

mmsr's TVAT is computed on [0, 1] pixels, so the paper's class edges (2 and 4) do not carry over;
boundaries are calibrated on the training set, by default into classes of equal crop count
(DESIGN.md, "The method, precisely").

Example:
    >>> scores = torch.linspace(0.0, 1.0, 300)
    >>> [round(b, 3) for b in quantile_boundaries(scores, 3)]
    [0.333, 0.667]
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import as_float32
from .._checks import check_boundaries as shared_check_boundaries
from ..data import ImageSet, sample_scores

__all__ = [
    "MIN_LR_SIDE",
    "Calibration",
    "calibrate",
    "check_boundaries",
    "check_crop",
    "class_fractions",
    "format_histogram",
    "quantile_boundaries",
]

# TVAT is a total variation: a 1x1 LR crop has none, so every such crop scores 0 and no boundary
# can split them (and the generators' BatchNorm cannot train on one value per channel either).
MIN_LR_SIDE = 2


def check_crop(crop: int, scale: int) -> None:
    """Refuse an HR ``--crop`` whose LR crop is too small to train on or for TVAT to tell textures apart.

    Example:
        >>> check_crop(8, 4)  # 2x2 LR crops: the smallest that TVAT can split
        >>> check_crop(4, 4)
        Traceback (most recent call last):
        ...
        ValueError: --crop 4 is too small: at --scale 4 its LR crop is 1x1 pixels; ...
    """
    side = crop // scale
    if side < MIN_LR_SIDE:
        raise ValueError(
            f"--crop {crop} is too small: at --scale {scale} its LR crop is {side}x{side} pixels; TVAT needs at least "
            f"{MIN_LR_SIDE}x{MIN_LR_SIDE} to tell textures apart (one pixel has no texture: every crop would score 0), "
            f"and so does training; use --crop {MIN_LR_SIDE * scale} or more"
        )


def check_boundaries(boundaries: Sequence[float]) -> tuple[float, ...]:
    """``boundaries`` as a tuple of floats, after checking they are finite and strictly ascending
    (in float32, as the kernels compare: :func:`mmsr._checks.check_boundaries`).

    Example:
        >>> check_boundaries([0.05, 0.2])
        (0.05, 0.2)
    """
    return tuple(shared_check_boundaries(list(boundaries)))


def quantile_boundaries(scores: Tensor, classes: int) -> tuple[float, ...]:
    """Boundaries that split ``scores`` into ``classes`` classes of (nearly) equal count.

    Each boundary sits midway between two neighbouring distinct sorted scores, at the change point
    nearest to the ideal split, so tied scores (many flat crops score exactly 0) never straddle a
    boundary and no class is empty on this sample.

    Args:
        scores: float Tensor[N] of TVAT values.
        classes: the number of classes K (>= 1); K - 1 boundaries are returned.

    Raises:
        ValueError: too few distinct scores for ``classes`` non-empty classes.

    Example:
        >>> quantile_boundaries(torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 2.0]), 2)
        (0.5,)
    """
    if classes < 1:
        raise ValueError(f"classes must be >= 1, got {classes}")
    s = scores.detach().float().cpu().flatten()
    s = s[torch.isfinite(s)].sort().values
    if classes == 1:
        return ()
    n = s.numel()
    # change[i] is True where s[i] > s[i - 1]: a boundary may go between positions i - 1 and i.
    change_points = torch.nonzero(s[1:] > s[:-1]).flatten() + 1
    if change_points.numel() < classes - 1:
        raise ValueError(
            f"cannot split {n} TVAT scores into {classes} classes: only {change_points.numel() + 1} distinct "
            "values; use fewer classes, more samples, or give boundaries"
        )
    chosen: list[int] = []
    for k in range(1, classes):
        target = k * n / classes
        # Later boundaries must stay to the right of earlier ones and leave room for the rest.
        low = chosen[-1] + 1 if chosen else 0
        candidates = change_points[low : change_points.numel() - (classes - 1 - k)]
        best = int(torch.argmin((candidates.double() - target).abs()))
        chosen.append(low + best)
    return tuple(_between(float(s[int(change_points[c]) - 1]), float(s[int(change_points[c])])) for c in chosen)


def _between(low: float, high: float) -> float:
    """A boundary that puts ``low`` below and ``high`` above it as the kernels compare (in float32):
    their midpoint, or ``high`` itself where no float32 lies strictly between them."""
    mid = as_float32((low + high) / 2)
    return mid if as_float32(low) < mid <= as_float32(high) else high


def class_fractions(scores: Tensor, boundaries: Sequence[float]) -> list[float]:
    """The share of ``scores`` in each class (class k holds b[k-1] <= s < b[k]).

    Example:
        >>> class_fractions(torch.tensor([0.1, 0.2, 0.3, 0.4]), [0.25])
        [0.5, 0.5]
    """
    s = scores.detach().float().cpu().flatten()
    edges = torch.tensor(list(boundaries), dtype=torch.float32)
    counts = torch.bincount(torch.bucketize(s, edges, right=True), minlength=len(boundaries) + 1)
    return [float(c) / max(s.numel(), 1) for c in counts]


def format_histogram(scores: Tensor, boundaries: Sequence[float] = (), *, bins: int = 20, width: int = 40) -> str:
    """A text histogram of TVAT scores with the class boundaries marked between rows.

    Rows are equal-width bins from the smallest score to the 99th percentile, split further at each
    boundary so that no row straddles one; the last row also holds the long tail above it.

    Example:
        >>> print(format_histogram(torch.tensor([0.0, 0.1, 0.1, 0.3]), [0.2], bins=2, width=4))
        TVAT                crops
        0.0000-0.1470          3 ####
        0.1470-0.2000          0
        --- boundary 0.2 ---
        0.2000-0.2940+         1 ##
    """
    s = scores.detach().float().cpu().flatten()
    s = s[torch.isfinite(s)]
    if s.numel() == 0:
        return "TVAT: no scores"
    low = float(s.min())
    high = float(torch.quantile(s, 0.99)) if s.numel() > 1 else low
    if high <= low:
        high = float(s.max()) if float(s.max()) > low else low + 1.0
    inside = [float(b) for b in boundaries if low < float(b) < high]
    edges = sorted(set(torch.linspace(low, high, bins + 1).tolist()[1:-1] + inside))
    # Row i holds edges[i-1] <= s < edges[i]; the first row starts at the minimum, the last is open.
    rows = torch.bucketize(s, torch.tensor(edges, dtype=torch.float32), right=True)
    counts = torch.bincount(rows, minlength=len(edges) + 1).tolist()
    top = max(counts)
    starts, ends = [low, *edges], [*edges, high]
    lines = [f"{'TVAT':<20}{'crops':>5}"]
    lines += [f"--- boundary {b:.6g} ---" for b in boundaries if float(b) <= low]
    for i, count in enumerate(counts):
        if i > 0 and starts[i] in inside:
            lines.append(f"--- boundary {starts[i]:.6g} ---")
        tail = "+" if i == len(counts) - 1 else ""
        bar = "#" * math.ceil(width * count / top) if count else ""
        lines.append(f"{starts[i]:.4f}-{ends[i]:.4f}{tail:<1} {count:>9} {bar}".rstrip())
    lines += [f"--- boundary {b:.6g} ---" for b in boundaries if float(b) >= high]
    return "\n".join(lines)


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibrate`: the boundaries, the sample they came from and each class's share."""

    boundaries: tuple[float, ...]
    scores: Tensor
    fractions: tuple[float, ...]


def calibrate(
    images: ImageSet,
    *,
    classes: int,
    crop: int,
    scale: int,
    threshold: float,
    samples: int = 4096,
    seed: int = 0,
) -> Calibration:
    """Equal-count TVAT class boundaries for ``images``, from ``samples`` random LR crops.

    Args:
        images: the training images (scored on their device).
        classes: number of classes K.
        crop, scale: HR crop side and SR factor, as in training (LR crops are crop // scale).
        threshold: the TVAT threshold the models will route with.
        samples: random crops to score.
        seed: seeds the crop positions.

    Example:
        >>> s = ImageSet.from_images([torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)], ["a"])
        >>> len(calibrate(s, classes=2, crop=32, scale=4, threshold=0.0, samples=64).boundaries)
        1
    """
    if samples < classes:
        raise ValueError(f"samples must be at least the number of classes ({classes}), got {samples}")
    scores = sample_scores(images, crop=crop, scale=scale, threshold=threshold, samples=samples, seed=seed)
    boundaries = quantile_boundaries(scores, classes)
    return Calibration(boundaries, scores, tuple(class_fractions(scores, boundaries)))

"""The public ops: TVAT texture scores, texture classes, tiling and stitching.

Every function checks its arguments here, once, with messages that name the argument and what
came in, then calls the registered torch op (see :mod:`mmsr._ops`), which runs the native kernel
on the tensor's device. All of them work under ``torch.compile(fullgraph=True)``, and ``vsp``,
``tvat``, ``tile`` and ``stitch`` are differentiable (see :mod:`mmsr._autograd`).
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch

from . import _autograd, _ops  # noqa: F401  (importing _autograd registers the gradients)
from ._checks import check_boundaries, check_int, check_real
from .grid import TileGrid, make_grid

#: Default VSP threshold, in [0, 1] pixel units. It equals a pixel whose 8 neighbours each differ
#: from it by 2 grey levels (of 255) in each of 3 channels: 24 * (2/255)^2 ~ 1.48e-3. That is the
#: size of 8-bit quantisation and mild JPEG noise, which says nothing about texture; anything that
#: a viewer sees as an edge or grain is far above it.
DEFAULT_TVAT_THRESHOLD = 24 * (2 / 255) ** 2

BLENDS = tuple(_ops.BLEND_CODES)
_DTYPES = tuple(_ops.DTYPE_CODES)
_DTYPE_NAMES = ", ".join(str(d).replace("torch.", "") for d in _DTYPES)


def _check_image(x, name: str) -> torch.Tensor:
    """x as a [B, C, H, W] view; raises for anything mmsr cannot read as an image batch."""
    _check_dense(x, name)
    if x.dim() not in (3, 4):
        raise ValueError(f"{name} should be a [C, H, W] or [B, C, H, W] tensor, got {x.dim()}D with shape {tuple(x.shape)}")
    if x.dtype not in _DTYPES:
        raise TypeError(f"{name} must be one of {_DTYPE_NAMES}, got {x.dtype}")
    x4 = x if x.dim() == 4 else x.unsqueeze(0)
    _, C, H, W = x4.shape
    if C < 1 or H < 1 or W < 1:
        raise ValueError(f"{name} is an empty image: C, H and W must be >= 1, got shape {tuple(x.shape)}")
    return x4


def _check_dense(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_nested or x.layout != torch.strided:
        kind = "a nested tensor" if x.is_nested else f"layout {x.layout}"
        raise TypeError(f"{name} must be a dense (strided) tensor, got {kind}; call .to_dense() first")


def vsp(x: torch.Tensor) -> torch.Tensor:
    """Variation of surrounding pixels per pixel.

    VSP(p) = sum over the 8 neighbours q of p inside the image of sum_c (x[c,p] - x[c,q])^2, with
    values read in [0, 1] (uint8 as v / 255) and accumulated in float32. uint8 VSPs are exact:
    summed in grey levels (integers, exact in float32 up to 32 channels), then divided by 255^2
    with one rounding, so they are the same on every device.

    Args:
        x: Tensor[C, H, W] or Tensor[B, C, H, W]; uint8, float16, bfloat16 or float32; any C >= 1.

    Returns:
        float32 Tensor[H, W] or Tensor[B, H, W]. A NaN or inf pixel makes the VSP of itself and of
        its neighbours NaN or inf, as IEEE arithmetic has it (inf - inf is NaN), on CPU and CUDA alike.

    Example:
        >>> mmsr.vsp(torch.zeros(3, 4, 4)).shape
        torch.Size([4, 4])
    """
    x4 = _check_image(x, "x")
    out = _ops.vsp(x4)
    return out if x.dim() == 4 else out[0]


def tvat(x: torch.Tensor, threshold: float = DEFAULT_TVAT_THRESHOLD) -> torch.Tensor:
    """Texture score: TVAT(x) = (1 / (H*W)) * sum_p VSP(p) * [VSP(p) >= threshold].

    Args:
        x: Tensor[C, H, W] or Tensor[B, C, H, W]; uint8 (read as v / 255), float16, bfloat16 or
            float32 in [0, 1]; any C >= 1; any layout (channels_last and views are fine).
        threshold: VSP values below this count as flat; see ``DEFAULT_TVAT_THRESHOLD``. A finite
            number >= 0, compared in float32 as the VSP is; for uint8 input, exactly: its VSPs are
            computed in grey levels, where each is an exact integer (up to 32 channels), and a VSP
            equal to the threshold counts on every device.

    Returns:
        float32: a 0-d tensor for [C, H, W] input, Tensor[B] for [B, C, H, W]. An image with a NaN
        VSP scores NaN (NaN * [NaN >= threshold] is NaN), one with an inf VSP (and no NaN) inf, so a
        broken image never gets a plausible score; :func:`classify` puts both in the last class.
        Images are scored independently: one image's NaN does not touch another's score. A 1 x 1
        image has no neighbours, so its VSP and score are 0 whatever its value.

    Example:
        >>> tiles = torch.rand(1024, 3, 64, 64)
        >>> mmsr.tvat(tiles).shape
        torch.Size([1024])
    """
    x4 = _check_image(x, "x")
    out = _ops.tvat(x4, check_real(threshold, "threshold", 0.0))
    return out if x.dim() == 4 else out[0]


def classify(scores: torch.Tensor, boundaries: Union[Sequence[float], torch.Tensor]) -> torch.Tensor:
    """Texture class per score: class k holds boundaries[k-1] <= score < boundaries[k].

    With K - 1 boundaries there are K classes, 0 (smoothest) to K - 1. NaN scores, which
    :func:`tvat` returns only for images holding NaN or inf, land in the last class.

    Args:
        scores: float Tensor of any shape (usually [N] TVAT scores), on any device; compared in
            float32 (float64 scores are rounded first).
        boundaries: strictly ascending finite numbers (a list, tuple or 1-D CPU tensor), at most
            255, rounded to float32 (so they must be distinct there too). Under ``torch.compile`` a
            tensor of boundaries may live on any device; it is then classified with
            ``torch.bucketize``, which gives the same classes.

    Returns:
        int64 Tensor with the shape and device of ``scores``.

    Example:
        >>> mmsr.classify(torch.tensor([0.01, 0.05, 0.3]), [0.02, 0.1])
        tensor([0, 1, 2])
    """
    _check_dense(scores, "scores")
    if not scores.is_floating_point():
        raise TypeError(f"scores must be a floating-point tensor, got {scores.dtype}")
    if isinstance(boundaries, torch.Tensor):
        _check_dense(boundaries, "boundaries")
        if boundaries.dim() != 1 or not boundaries.is_floating_point():
            raise ValueError(
                f"boundaries as a tensor must be 1-D floating point, got {boundaries.dim()}D {boundaries.dtype}"
            )
        if torch.compiler.is_compiling():
            # A tensor's values are unknown while torch.compile traces, and the op takes a list:
            # classify with the same rule in plain torch (bucketize puts NaN last, as the kernel does).
            edges = boundaries.to(device=scores.device, dtype=torch.float32)
            return torch.bucketize(scores.float(), edges, right=True)
        if boundaries.device.type != "cpu":
            raise ValueError(f"boundaries must be a list or a CPU tensor, got a tensor on {boundaries.device}")
        boundaries = boundaries.tolist()
    bounds = check_boundaries(boundaries)
    if len(bounds) > 255:
        raise ValueError(f"boundaries allows at most 255 values (256 classes), got {len(bounds)}")
    return _ops.classify(scores.float(), bounds)


def tile(x: torch.Tensor, tile_size: int, overlap: int) -> Tuple[torch.Tensor, TileGrid]:
    """Cut images into overlapping tiles (the paper's segmentation layer).

    Tile origins along an axis of length L are 0, s, 2s, ... (s = tile_size - overlap) while a tile
    fits, then one tile flush with the far edge: every pixel is covered and none is dropped. The
    tile is clamped to the image where the image is smaller.

    Args:
        x: Tensor[C, H, W] or Tensor[B, C, H, W], uint8 / float16 / bfloat16 / float32, any layout.
        tile_size: tile edge in pixels, >= 1.
        overlap: pixels shared by neighbouring tiles, 0 <= overlap < tile_size.

    Returns:
        ``(tiles, grid)``: tiles is Tensor[B * N, C, th, tw] (image-major, then row-major tiles),
        grid a :class:`TileGrid` with the origins, for :func:`stitch`.

    Example:
        >>> tiles, grid = mmsr.tile(torch.rand(2, 3, 100, 70), 32, 8)
        >>> tiles.shape, grid.num_tiles
        (torch.Size([24, 3, 32, 32]), 12)
    """
    x4 = _check_image(x, "x")
    tile_size = check_int(tile_size, "tile_size", 1)
    overlap = check_int(overlap, "overlap", 0)
    height, width = x4.shape[2], x4.shape[3]
    if torch.jit.is_tracing():
        # torch.jit.trace hands the sizes over as tensors; the trace is of this size, as with
        # torch.export and static shapes (the grid is plain Python arithmetic on them).
        height, width = int(height), int(width)
    grid = make_grid(height, width, tile_size, overlap)
    return _ops.tile(x4, tile_size, overlap), grid


def stitch(tiles: torch.Tensor, grid: TileGrid, scale: int = 1, blend: str = "mean") -> torch.Tensor:
    """Average overlapping tiles back into images (the paper's reconstruction layer).

    Tile k of each image is placed at its grid origin times ``scale``; every output pixel is the
    weighted mean of the tiles covering it. ``stitch(*tile(x))`` gives ``x`` back for every blend:
    exactly for uint8, float16 and bfloat16, up to float32 rounding (a few 1e-7) for float32. It
    is [B, C, H, W] even when ``x`` was [C, H, W]: the tiles carry no record of that.

    Blends:
        ``"mean"``: every covering tile weighs 1 (the paper's plain average).
        ``"linear"``: weights ramp linearly from a tile's edge to 1 across the overlap, which hides
            seams between neighbouring tiles that went through different models.
        ``"cosine"``: the same ramp shaped as a raised cosine (smooth at both ends).

    Args:
        tiles: Tensor[B * N, C, th * scale, tw * scale] (e.g. the SR outputs of tiles cut by
            :func:`tile`), uint8 / float16 / bfloat16 / float32.
        grid: the :class:`TileGrid` returned by :func:`tile`.
        scale: integer factor between the tiles and the grid, >= 1.
        blend: one of ``"mean"``, ``"linear"``, ``"cosine"``.

    Returns:
        Tensor[B, C, H * scale, W * scale] with the dtype of ``tiles``.

    Example:
        >>> x = torch.rand(1, 3, 100, 70)
        >>> tiles, grid = mmsr.tile(x, 32, 8)
        >>> torch.allclose(mmsr.stitch(tiles, grid, blend="cosine"), x)
        True
    """
    if not isinstance(grid, TileGrid):
        raise TypeError(f"grid must be the TileGrid returned by mmsr.tile, got {type(grid).__name__}")
    scale = check_int(scale, "scale", 1)
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    _check_dense(tiles, "tiles")
    if tiles.dim() != 4:
        raise ValueError(f"tiles should be a 4D [B*N, C, h, w] tensor, got {tiles.dim()}D with shape {tuple(tiles.shape)}")
    if tiles.dtype not in _DTYPES:
        raise TypeError(f"tiles must be one of {_DTYPE_NAMES}, got {tiles.dtype}")
    expected = (grid.tile_h * scale, grid.tile_w * scale)
    if tuple(tiles.shape[2:]) != expected:
        raise ValueError(
            f"tiles are {tiles.shape[2]}x{tiles.shape[3]} but the grid's {grid.tile_h}x{grid.tile_w} tiles at "
            f"scale {scale} should be {expected[0]}x{expected[1]}"
        )
    if tiles.shape[0] % grid.num_tiles != 0:
        raise ValueError(
            f"tiles has {tiles.shape[0]} tiles, which is not a multiple of the grid's {grid.num_tiles} tiles per image"
        )
    if tiles.shape[1] < 1:
        raise ValueError(f"tiles must have at least one channel, got shape {tuple(tiles.shape)}")
    return _ops.stitch(tiles, grid.height, grid.width, grid.tile_size, grid.overlap, scale, blend)

"""Pure-PyTorch references for the native kernels: slow, obviously correct, and the readable spec.

Each function mirrors one op of :mod:`mmsr.ops` with the same results up to float rounding, on
the ops' inner form: images are always [B, C, H, W] batches, ``tile`` and ``stitch`` take the
:class:`~mmsr.grid.TileGrid` (``make_grid``) rather than ``tile_size`` / ``overlap``, ``tvat``
takes its threshold explicitly, and nothing checks its arguments. Tests compare the kernels
against these; benchmarks time them (eager and compiled) as the baseline the native code has to
beat; the references are differentiable, and the ops' gradients are tested against them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .grid import TileGrid, make_grid

# The 8 neighbour offsets (dy, dx) of a pixel.
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """Values as float32 in [0, 1]: uint8 is divided by 255, float types are widened."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return x.float()


# uint8 images are scored in grey levels (0..255), where every VSP is an exact integer in float32
# (up to 32 channels): a uint8 VSP is exactly levels / 255^2 and the threshold test is exact, the
# same on every device and in every summation order. The native kernels do the same (common.h).
_LEVELS_SQUARED = 255.0 * 255.0


def _vsp_sum(xf: torch.Tensor) -> torch.Tensor:
    """The 8 neighbours' squared differences of a float32 [B, C, H, W] image, summed: [B, H, W]."""
    B, C, H, W = xf.shape
    padded = F.pad(xf, (1, 1, 1, 1))
    inside = torch.zeros(H + 2, W + 2, dtype=torch.bool, device=xf.device)
    inside[1:-1, 1:-1] = True
    out = torch.zeros(B, H, W, dtype=torch.float32, device=xf.device)
    for dy, dx in _NEIGHBOURS:
        q = padded[:, :, 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]
        d2 = ((xf - q) ** 2).sum(dim=1)
        out = out + torch.where(inside[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W], d2, 0.0)
    return out


def uint8_level_threshold(threshold: float) -> float:
    """A [0, 1]-unit threshold in levels^2, rounded up: for an integer VSP v, v >= t <=> v >= ceil(t)."""
    return float(math.ceil(threshold * _LEVELS_SQUARED))


def vsp(x: torch.Tensor) -> torch.Tensor:
    """Mirrors ``mmsr.vsp``: x [B, C, H, W] -> VSP [B, H, W] float32.

    VSP(p) = sum over the in-image neighbours q of p of sum_c (x[c,p] - x[c,q])^2. Written as the
    8 shifted differences of a zero-padded image (the eager formulation the issue's speed figures
    describe); the terms of out-of-image neighbours are dropped with a select, not multiplied by 0
    or NaN-padded, so NaN and inf in x propagate as IEEE arithmetic has it and nothing else turns
    into NaN. uint8 is summed in grey levels (exact) and then divided by 255^2.
    """
    if x.dtype == torch.uint8:
        return _vsp_sum(x.float()) / _LEVELS_SQUARED
    return _vsp_sum(x.float())


def tvat(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Mirrors ``mmsr.tvat``: x [B, C, H, W] -> TVAT [B] float32 (mean of thresholded VSP).

    VSP(p) * [VSP(p) >= threshold] as IEEE arithmetic has it: a NaN VSP is kept (NaN * 0 is NaN),
    so an image with one has TVAT NaN, never a score that quietly leaves the broken pixels out.
    uint8 is thresholded in grey levels^2, exactly (see ``uint8_level_threshold``).
    """
    if x.dtype == torch.uint8:
        levels = _vsp_sum(x.float())
        kept = torch.where(levels < uint8_level_threshold(threshold), torch.zeros_like(levels), levels)
        return kept.mean(dim=(1, 2)) / _LEVELS_SQUARED
    v = vsp(x)
    kept = torch.where(v < threshold, torch.zeros_like(v), v)
    return kept.mean(dim=(1, 2))


def classify(scores: torch.Tensor, boundaries) -> torch.Tensor:
    """Mirrors ``mmsr.classify``: class k holds boundaries[k-1] <= score < boundaries[k]."""
    b = torch.as_tensor(list(boundaries), dtype=torch.float32, device=scores.device)
    return torch.bucketize(scores.float(), b, right=True)


def tile(x: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """Mirrors ``mmsr.tile``: x [B, C, H, W] -> tiles [B * N, C, th, tw], image-major, row-major."""
    crops = [
        x[:, :, y : y + grid.tile_h, xo : xo + grid.tile_w]
        for y in grid.ys
        for xo in grid.xs
    ]
    if not crops or x.shape[0] == 0:
        return x.new_empty(0, x.shape[1], grid.tile_h, grid.tile_w)
    return torch.stack(crops, dim=1).reshape(-1, x.shape[1], grid.tile_h, grid.tile_w)


def blend_ramp(length: int, overlap: int, blend: str, device=None) -> torch.Tensor:
    """Weights [length] along one tile axis (length and overlap in output pixels)."""
    u = torch.arange(length, dtype=torch.float32, device=device)
    if blend == "mean" or overlap <= 0:
        return torch.ones(length, dtype=torch.float32, device=device)
    edge = torch.minimum(u, (length - 1) - u)  # distance to the nearer tile edge
    ramp = ((edge + 0.5) / overlap).clamp(max=1.0)
    if blend == "linear":
        return ramp
    if blend == "cosine":
        return torch.sin(ramp * (torch.pi / 2)) ** 2
    raise ValueError(f"unknown blend {blend!r}")


def stitch(tiles: torch.Tensor, grid: TileGrid, scale: int = 1, blend: str = "mean") -> torch.Tensor:
    """Mirrors ``mmsr.stitch`` by scattering: tiles [B*N, C, th*s, tw*s] -> [B, C, H*s, W*s].

    Every output pixel is the weighted mean of the tiles covering it; weights are separable ramps
    over the overlap (see :func:`blend_ramp`).
    """
    n = grid.num_tiles
    B = tiles.shape[0] // n if n else 0
    C = tiles.shape[1]
    th, tw = grid.tile_h * scale, grid.tile_w * scale
    wy = blend_ramp(th, grid.overlap_h * scale, blend, tiles.device)
    wx = blend_ramp(tw, grid.overlap_w * scale, blend, tiles.device)
    weight = wy[:, None] * wx[None, :]
    acc = torch.zeros(B, C, grid.height * scale, grid.width * scale, device=tiles.device)
    norm = torch.zeros(grid.height * scale, grid.width * scale, device=tiles.device)
    t = to_unit_float(tiles).reshape(B, n, C, th, tw)
    for k, (y, x) in enumerate((y, x) for y in grid.ys for x in grid.xs):
        ys, xs = y * scale, x * scale
        acc[:, :, ys : ys + th, xs : xs + tw] += t[:, k] * weight
        norm[ys : ys + th, xs : xs + tw] += weight
    out = acc / norm
    if tiles.dtype == torch.uint8:
        return (out * 255.0).round().clamp(0, 255).to(torch.uint8)
    return out.to(tiles.dtype)


def stitch_fold(tiles: torch.Tensor, grid: TileGrid, scale: int = 1) -> torch.Tensor:
    """The `mean` blend written with ``F.fold`` (sum of tiles divided by the fold of ones).

    Only valid for grids whose origins are a regular stride (no flush last tile), which is the
    case the benchmark builds. This is how plain PyTorch code usually stitches; it is the speed
    baseline of ``benchmarks/test_bench_stitch.py``.
    """
    n = grid.num_tiles
    B, C = tiles.shape[0] // n, tiles.shape[1]
    th, tw = grid.tile_h * scale, grid.tile_w * scale
    size = (grid.height * scale, grid.width * scale)
    stride = (grid.stride_h * scale, grid.stride_w * scale)
    cols = tiles.float().reshape(B, n, C * th * tw).transpose(1, 2)
    summed = F.fold(cols, size, (th, tw), stride=stride)
    ones = torch.ones(1, th * tw, n, device=tiles.device)
    count = F.fold(ones, size, (th, tw), stride=stride)
    return summed / count


__all__ = ["blend_ramp", "classify", "make_grid", "stitch", "stitch_fold", "tile", "to_unit_float", "tvat", "vsp"]

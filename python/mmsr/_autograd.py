"""Gradients of mmsr's ops, registered with ``torch.library.register_autograd``.

``tile`` and ``stitch`` are linear maps and VSP is a sum of squared differences, so each gradient
is a few lines of tensor code, mostly the native ops themselves. That lets models train through
``tile -> model -> stitch``, or use TVAT in a loss, on CPU and CUDA and under ``torch.compile``.
``classify`` is piecewise constant: its int64 output carries no gradient. Integer (uint8) inputs
cannot require gradients, so only floating-point inputs ever reach these formulas; gradients come
back in the input's dtype, computed in float32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _ops
from .grid import axis_grid, axis_origins
from .reference import blend_ramp

# The 8 neighbour offsets (dy, dx) of a pixel, as in the VSP definition.
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


# ---- vsp / tvat -------------------------------------------------------------------------------


def vsp_input_grad(x: torch.Tensor, grad_vsp: torch.Tensor) -> torch.Tensor:
    """dL/dx [B, C, H, W] from dL/dVSP [B, H, W].

    Every pair of neighbours p, q adds sum_c (x[c,p] - x[c,q])^2 to both VSP(p) and VSP(q), so
    dL/dx[c,p] = sum over the in-image neighbours q of 2 (x[c,p] - x[c,q]) (g[p] + g[q]).
    """
    xf, g = x.float(), grad_vsp.float()
    _, _, H, W = xf.shape
    padded_x = F.pad(xf, (1, 1, 1, 1))
    padded_g = F.pad(g, (1, 1, 1, 1))
    inside = torch.zeros(H + 2, W + 2, dtype=torch.bool, device=x.device)
    inside[1:-1, 1:-1] = True
    grad = torch.zeros_like(xf)
    for dy, dx in _NEIGHBOURS:
        rows, cols = slice(1 + dy, 1 + dy + H), slice(1 + dx, 1 + dx + W)
        term = 2 * (xf - padded_x[:, :, rows, cols]) * (g + padded_g[:, rows, cols])[:, None]
        # A select, not a multiply by the mask, so out-of-image terms vanish even where x is inf.
        grad = grad + torch.where(inside[rows, cols], term, 0.0)
    return grad.to(x.dtype)


def _save_input(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[0])
    ctx.threshold = inputs[1] if len(inputs) > 1 else None


def _vsp_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return vsp_input_grad(x, grad)


def _tvat_backward(ctx, grad):
    # TVAT = mean over pixels of VSP * [VSP >= threshold]: the indicator is flat almost
    # everywhere, so the gradient flows through the kept pixels' VSP only.
    (x,) = ctx.saved_tensors
    v = torch.ops.mmsr.vsp(x)
    kept = ~(v < ctx.threshold)  # as the forward keeps NaN
    per_pixel = grad.float()[:, None, None] / (x.shape[2] * x.shape[3])
    return vsp_input_grad(x, torch.where(kept, per_pixel, 0.0)), None


# ---- tile / stitch ----------------------------------------------------------------------------


def _save_tile_args(ctx, inputs, output) -> None:
    x, ctx.tile_size, ctx.overlap = inputs
    ctx.height, ctx.width = x.shape[2], x.shape[3]


def _tile_backward(ctx, grad):
    # Each pixel's gradient is the sum over the tiles that copied it: the mean blend's stitch
    # times the number of covering tiles, which factors into rows x columns.
    H, W = ctx.height, ctx.width
    mean = torch.ops.mmsr.stitch(grad.float(), H, W, ctx.tile_size, ctx.overlap, 1, "mean")
    # The mean blend weighs every tile 1, so its weight sums are the coverage counts.
    rows = _axis_weights(H, ctx.tile_size, ctx.overlap, 1, "mean", grad.device)[1]
    cols = _axis_weights(W, ctx.tile_size, ctx.overlap, 1, "mean", grad.device)[1]
    return (mean * (rows[:, None] * cols[None, :])).to(grad.dtype), None, None


def _axis_weights(length: int, tile_size: int, overlap: int, scale: int, blend: str, device):
    """(a tile's blend weights [tile * scale], their sum over the tiles [length * scale]) on one axis."""
    tile, stride, _ = axis_grid(length, tile_size, overlap)
    ramp = blend_ramp(tile * scale, (tile - stride) * scale, blend, device)
    total = torch.zeros(length * scale, dtype=torch.float32, device=device)
    for origin in axis_origins(length, tile_size, overlap):
        total[origin * scale : (origin + tile) * scale] += ramp
    return ramp, total


def _save_stitch_args(ctx, inputs, output) -> None:
    tiles, ctx.height, ctx.width, ctx.tile_size, ctx.overlap, ctx.scale, ctx.blend = inputs


def _stitch_backward(ctx, grad):
    # out = sum_k w * tile_k / sum_k w with the separable weights w = ramp_y x ramp_x, so
    # d out / d tile_k = w / norm at the tile's place: cut grad / norm into tiles (the grid at
    # the output scale has the same tiles, scaled) and weigh each by w.
    s = ctx.scale
    ramp_y, norm_y = _axis_weights(ctx.height, ctx.tile_size, ctx.overlap, s, ctx.blend, grad.device)
    ramp_x, norm_x = _axis_weights(ctx.width, ctx.tile_size, ctx.overlap, s, ctx.blend, grad.device)
    scaled = grad.float() / (norm_y[:, None] * norm_x[None, :])
    tiles = torch.ops.mmsr.tile(scaled, ctx.tile_size * s, ctx.overlap * s)
    grad_tiles = tiles * (ramp_y[:, None] * ramp_x[None, :])
    return (grad_tiles.to(grad.dtype),) + (None,) * 6


_ops.vsp.register_autograd(_vsp_backward, setup_context=_save_input)
_ops.tvat.register_autograd(_tvat_backward, setup_context=_save_input)
_ops.tile.register_autograd(_tile_backward, setup_context=_save_tile_args)
_ops.stitch.register_autograd(_stitch_backward, setup_context=_save_stitch_args)

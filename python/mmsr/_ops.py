"""Every torch registration of mmsr's native kernels, in one place.

Each op has a schema (inferred from the annotated CPU implementation), a fake kernel for
torch.compile / meta tensors, and one kernel per device that passes raw pointers, sizes and (on
CUDA) the current stream into ``mmsr._core``. The kernels make inputs contiguous here, and only
here; argument checking with friendly messages happens in :mod:`mmsr.ops`.
"""
from __future__ import annotations

from typing import List

import torch

from . import _core
from .grid import axis_grid

DTYPE_CODES = {torch.uint8: 0, torch.float16: 1, torch.bfloat16: 2, torch.float32: 3}
BLEND_CODES = {"mean": 0, "linear": 1, "cosine": 2}
CUDA_COMPILED = bool(_core.build_info()["cuda"])


def _cuda_launch(t: torch.Tensor):
    """(device index, raw current stream) for a kernel that must run where ``t`` lives."""
    if not CUDA_COMPILED:
        raise RuntimeError(
            "mmsr was built without its CUDA kernels, so it cannot run on "
            f"{t.device}; reinstall with a CUDA compiler on PATH (MMSR_CUDA=ON makes that required)"
        )
    return t.device.index, torch.cuda.current_stream(t.device).cuda_stream


def _grid_dims(height: int, width: int, tile_size: int, overlap: int):
    tile_h, _, rows = axis_grid(height, tile_size, overlap)
    tile_w, _, cols = axis_grid(width, tile_size, overlap)
    return tile_h, tile_w, rows * cols


# ---- vsp / tvat -------------------------------------------------------------------------------


def _tvat_outputs(x: torch.Tensor, want_vsp: bool, want_score: bool):
    B, _, H, W = x.shape
    vsp = torch.empty(B, H, W, dtype=torch.float32, device=x.device) if want_vsp else None
    score = torch.empty(B, dtype=torch.float32, device=x.device) if want_score else None
    return vsp, score


def _run_tvat(x: torch.Tensor, threshold: float, want_vsp: bool, want_score: bool):
    x = x.contiguous()
    vsp, score = _tvat_outputs(x, want_vsp, want_score)
    B, C, H, W = x.shape
    if B == 0:
        return vsp, score
    common = dict(
        x=x.data_ptr(),
        vsp=vsp.data_ptr() if vsp is not None else 0,
        score=score.data_ptr() if score is not None else 0,
        B=B, C=C, H=H, W=W,
        dtype=DTYPE_CODES[x.dtype],
        threshold=float(threshold),
    )
    if x.device.type == "cuda":
        device, stream = _cuda_launch(x)
        workspace = torch.empty(_core.tvat_workspace_floats(B, H, W), dtype=torch.float32, device=x.device)
        _core.tvat_cuda(**common, workspace=workspace.data_ptr(), device=device, stream=stream)
    else:
        _core.tvat_cpu(**common, threads=torch.get_num_threads())
    return vsp, score


@torch.library.custom_op("mmsr::vsp", mutates_args=(), device_types=("cpu", "cuda"))
def vsp(x: torch.Tensor) -> torch.Tensor:
    return _run_tvat(x, 0.0, want_vsp=True, want_score=False)[0]


@vsp.register_fake
def _(x):
    return x.new_empty(x.shape[0], x.shape[2], x.shape[3], dtype=torch.float32)


@torch.library.custom_op("mmsr::tvat", mutates_args=(), device_types=("cpu", "cuda"))
def tvat(x: torch.Tensor, threshold: float) -> torch.Tensor:
    return _run_tvat(x, threshold, want_vsp=False, want_score=True)[1]


@tvat.register_fake
def _(x, threshold):
    return x.new_empty(x.shape[0], dtype=torch.float32)


# ---- classify ---------------------------------------------------------------------------------


@torch.library.custom_op("mmsr::classify", mutates_args=(), device_types=("cpu", "cuda"))
def classify(scores: torch.Tensor, boundaries: List[float]) -> torch.Tensor:
    scores = scores.contiguous()
    classes = torch.empty(scores.shape, dtype=torch.int64, device=scores.device)
    if scores.numel() == 0:
        return classes
    args = dict(scores=scores.data_ptr(), classes=classes.data_ptr(), N=scores.numel(), boundaries=list(boundaries))
    if scores.device.type == "cuda":
        device, stream = _cuda_launch(scores)
        _core.classify_cuda(**args, device=device, stream=stream)
    else:
        _core.classify_cpu(**args, threads=torch.get_num_threads())
    return classes


@classify.register_fake
def _(scores, boundaries):
    return torch.empty_like(scores, dtype=torch.int64)


# ---- tile / stitch ----------------------------------------------------------------------------


@torch.library.custom_op("mmsr::tile", mutates_args=(), device_types=("cpu", "cuda"))
def tile(x: torch.Tensor, tile_size: int, overlap: int) -> torch.Tensor:
    x = x.contiguous()
    B, C, H, W = x.shape
    tile_h, tile_w, per_image = _grid_dims(H, W, tile_size, overlap)
    tiles = torch.empty(B * per_image, C, tile_h, tile_w, dtype=x.dtype, device=x.device)
    if tiles.numel() == 0:
        return tiles
    args = dict(
        x=x.data_ptr(), tiles=tiles.data_ptr(), B=B, C=C, H=H, W=W,
        elem_size=x.element_size(), tile_size=tile_size, overlap=overlap,
    )
    if x.device.type == "cuda":
        device, stream = _cuda_launch(x)
        _core.tile_cuda(**args, device=device, stream=stream)
    else:
        _core.tile_cpu(**args, threads=torch.get_num_threads())
    return tiles


@tile.register_fake
def _(x, tile_size, overlap):
    B, C, H, W = x.shape
    tile_h, tile_w, per_image = _grid_dims(H, W, tile_size, overlap)
    return x.new_empty(B * per_image, C, tile_h, tile_w)


@torch.library.custom_op("mmsr::stitch", mutates_args=(), device_types=("cpu", "cuda"))
def stitch(
    tiles: torch.Tensor, height: int, width: int, tile_size: int, overlap: int, scale: int, blend: str
) -> torch.Tensor:
    tiles = tiles.contiguous()
    per_image = _grid_dims(height, width, tile_size, overlap)[2]
    B, C = tiles.shape[0] // per_image, tiles.shape[1]
    out = torch.empty(B, C, height * scale, width * scale, dtype=tiles.dtype, device=tiles.device)
    if out.numel() == 0:
        return out
    args = dict(
        tiles=tiles.data_ptr(), out=out.data_ptr(), B=B, C=C, H=height, W=width, tile_size=tile_size,
        overlap=overlap, scale=scale, dtype=DTYPE_CODES[tiles.dtype], blend=BLEND_CODES[blend],
    )
    if tiles.device.type == "cuda":
        device, stream = _cuda_launch(tiles)
        _core.stitch_cuda(**args, device=device, stream=stream)
    else:
        _core.stitch_cpu(**args, threads=torch.get_num_threads())
    return out


@stitch.register_fake
def _(tiles, height, width, tile_size, overlap, scale, blend):
    per_image = _grid_dims(height, width, tile_size, overlap)[2]
    return tiles.new_empty(tiles.shape[0] // per_image, tiles.shape[1], height * scale, width * scale)

"""mmsr: multi-model super-resolution.

Images are cut into overlapping tiles, each tile is scored by its texture (TVAT) and sent to an
SRGAN generator whose depth fits that texture, and the upscaled tiles are averaged back into one
image. The tiling, scoring and stitching run as native C++/CUDA kernels registered as torch ops.

    >>> import mmsr, torch
    >>> mmsr.tvat(torch.rand(16, 3, 32, 32)).shape
    torch.Size([16])
"""
from __future__ import annotations

from typing import Dict

from . import _core
from .grid import TileGrid, make_grid
from .ops import BLENDS, DEFAULT_TVAT_THRESHOLD, classify, stitch, tile, tvat, vsp
from .upscale import UpscaleResult, Upscaler

__version__ = _core.build_info()["version"]


def build_info() -> Dict[str, object]:
    """How the native core was built.

    Returns:
        dict with ``version`` (str), ``cuda`` (bool: CUDA kernels compiled in), ``cuda_archs``
        (str), ``openmp`` (bool) and ``openmp_max_threads`` (int).

    Example:
        >>> mmsr.build_info()["version"]
        '0.1.0'
    """
    return dict(_core.build_info())


__all__ = [
    "BLENDS",
    "DEFAULT_TVAT_THRESHOLD",
    "TileGrid",
    "UpscaleResult",
    "Upscaler",
    "build_info",
    "classify",
    "make_grid",
    "stitch",
    "tile",
    "tvat",
    "vsp",
]

"""The Table 1 analogue: PSNR-Y per TVAT bin of both bicubics and every trained bundle on the validation sets.

Every HR image is prepared as `mmsr eval` prepares it (mod-crop to the scale, LR by the training
down-sampler, uint8), upscaled by bicubic and by each bundle through :class:`mmsr.Upscaler`, and
measured per TVAT bin with :func:`bins.measure_bins` (see bins.py for exactly which pixels count).
All methods share one binning: the LR tiles of MMSR's bundle's tiling, scored with its TVAT
threshold, cut at ``edges``.

Example:
    >>> table = evaluate_texture_bins({"set5": Path("val/set5")}, methods, edges=[0.05, 0.16],
    ...                               threshold=1.5e-3, tile_size=32, overlap=8, scale=4)  # doctest: +SKIP
    >>> table["totals"]["bicubic"]["pixels"]                                              # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from mmsr.data import read_image
from mmsr.evaluate import BICUBIC, TORCH_BICUBIC, bicubic_upscale, list_images, make_lr, mod_crop, torch_bicubic_upscale
from mmsr.upscale import Upscaler

from bins import BinTotals, measure_bins, tile_bins

__all__ = ["evaluate_texture_bins", "quantile_edges", "table_rows", "validation_sets"]


def validation_sets(parser: argparse.ArgumentParser, folders: Sequence[Path]) -> Dict[str, Path]:
    """The ``--val`` folders by name (their rows' label); a parser error names a folder that holds no
    images or repeats another's name."""
    sets: Dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir() or not list_images(folder):
            parser.error(f"--val {str(folder)!r} is not a folder of images")
        if folder.name in sets:
            parser.error(f"--val {str(folder)!r}: two folders named {folder.name!r}")
        sets[folder.name] = folder
    return sets


def _validation_images(sets: Mapping[str, Path], limit: Optional[int]) -> List[Tuple[str, Path]]:
    return [(name, path) for name, folder in sets.items() for path in list_images(folder)[:limit]]


def _lr_of(path: Path, scale: int) -> Tuple[torch.Tensor, torch.Tensor]:
    hr = mod_crop(read_image(path), scale)
    return hr, make_lr(hr, scale)


def quantile_edges(
    sets: Mapping[str, Path], bins: int, *, threshold: float, tile_size: int, overlap: int, scale: int,
    limit: Optional[int] = None,
) -> List[float]:
    """``bins - 1`` TVAT edges that split the validation sets' LR tiles into bins of equal count.

    Example:
        >>> quantile_edges({"set5": Path("val/set5")}, 4, threshold=1.5e-3, tile_size=32, overlap=8,
        ...                scale=4)                                                   # doctest: +SKIP
        [0.031, 0.088, 0.17]
    """
    scores = []
    for _, path in _validation_images(sets, limit):
        _, lr = _lr_of(path, scale)
        scores.append(tile_bins(lr, [], threshold=threshold, tile_size=tile_size, overlap=overlap)[1])
    everything = torch.cat(scores).double()
    levels = torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1]
    edges = torch.quantile(everything, levels).tolist()
    if any(a >= b for a, b in zip(edges, edges[1:])):
        raise ValueError(f"the validation tiles' TVAT has too few distinct values for {bins} bins: edges {edges}")
    return edges


def evaluate_texture_bins(
    sets: Mapping[str, Path],
    bundles: Mapping[str, Path],
    *,
    edges: Sequence[float],
    threshold: float,
    tile_size: int,
    overlap: int,
    scale: int,
    device: str = "cpu",
    limit: Optional[int] = None,
) -> dict:
    """Per-bin totals of both bicubics and each bundle over every image of ``sets``.

    Two bicubic rows, as `mmsr eval` has them: ``bicubic`` (Keys a = -0.5, the SR literature's) and
    ``torch-bicubic`` (a = -0.75, what every residual model outputs before training).

    Args:
        sets: validation set name -> HR folder.
        bundles: method name -> bundle file, in table order.
        edges: ascending TVAT bin edges.
        threshold, tile_size, overlap: the binning (MMSR bundle's threshold and tiling).
        scale: the SR factor.
        device: where the Upscalers run.
        limit: only the first ``limit`` images of each set.

    Returns:
        JSON-ready dict: the binning settings, ``methods`` (the bicubics first), per-image totals under
        ``images`` and pooled totals under ``totals`` (method -> :meth:`BinTotals.to_dict`).
    """
    # promote=False: the MMSR row is the method itself, each tile through its own class's model.
    upscalers = {name: Upscaler(path, device=device, promote=False) for name, path in bundles.items()}
    methods = [BICUBIC, TORCH_BICUBIC, *upscalers]
    crop_border = scale  # `mmsr eval`'s default: the SR convention
    pooled = {m: BinTotals.empty(len(edges) + 1) for m in methods}
    images = []
    for set_name, path in _validation_images(sets, limit):
        hr, lr = _lr_of(path, scale)
        outputs = {BICUBIC: bicubic_upscale(lr, scale), TORCH_BICUBIC: torch_bicubic_upscale(lr, scale)}
        for name, upscaler in upscalers.items():
            outputs[name] = upscaler.upscale(lr).image.cpu()
        per_method = {}
        for name, sr in outputs.items():
            totals = measure_bins(sr, hr, lr, edges, threshold=threshold, tile_size=tile_size, overlap=overlap,
                                  scale=scale, crop_border=crop_border)
            pooled[name] = pooled[name] + totals
            per_method[name] = totals.to_dict()
        images.append({"set": set_name, "name": path.name, "height": hr.shape[1], "width": hr.shape[2],
                       "totals": per_method})
        print(f"paper: texture bins: {set_name}/{path.name}", file=sys.stderr, flush=True)
    return {
        "edges": list(edges),
        "threshold": threshold,
        "tile_size": tile_size,
        "overlap": overlap,
        "scale": scale,
        "crop_border": crop_border,
        "sets": list(sets),
        "methods": methods,
        "images": images,
        "totals": {m: pooled[m].to_dict() for m in methods},
    }


def table_rows(table: dict) -> List[Dict[str, object]]:
    """One row per method and bin: TVAT range, tiles, pixels, PSNR-Y and its gain over bicubic (a = -0.5).

    PSNR is None for an empty bin; the gain is None where either PSNR is missing or infinite.
    """
    edges = table["edges"]
    lows = [None, *edges]
    highs = [*edges, None]
    bicubic = BinTotals.from_dict(table["totals"][BICUBIC]).psnr()
    rows = []
    for method in table["methods"]:
        totals = BinTotals.from_dict(table["totals"][method])
        for k, value in enumerate(totals.psnr()):
            finite = value is not None and bicubic[k] is not None and abs(value) != float("inf") \
                and abs(bicubic[k]) != float("inf")
            rows.append({
                "method": method, "bin": k, "tvat_low": lows[k], "tvat_high": highs[k], "tiles": totals.tiles[k],
                "pixels": totals.pixels[k], "psnr_y_db": value,
                "gain_over_bicubic_db": value - bicubic[k] if finite else None,
            })
    return rows

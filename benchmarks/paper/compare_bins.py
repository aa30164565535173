"""Where two bundles differ: PSNR-Y per TVAT class, pooled over the validation images and per image.

A run's mean PSNR-Y says which bundle is better, not where. This binning (the same as Table 1's, see
texture_table.py) splits every image's pixels by the TVAT class of the LR tile that owns them, so a
multi-model bundle can be compared class by class with a one-model baseline: which of its models
gains and which loses.

    python benchmarks/paper/compare_bins.py --bundle mmsr=mmsr.safetensors --bundle baseline=base.safetensors \\
        --val /work/shared/data/val/set14 --val /work/shared/data/val/set5

The bins are the first bundle's: its calibrated class boundaries, TVAT threshold and tiling. The
last bundle is the reference of the differences. Output: Markdown on stdout.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from mmsr.bundle import read_bundle_metadata

from bins import BinTotals
from texture_table import evaluate_texture_bins, validation_sets

__all__ = ["compare", "main"]


def _whole(totals: BinTotals) -> Optional[float]:
    """PSNR-Y in dB over every bin of ``totals``: the whole image (or set)."""
    return BinTotals((sum(totals.squared_error),), (sum(totals.pixels),), (sum(totals.tiles),)).psnr()[0]


def _difference(a: Optional[float], b: Optional[float]) -> str:
    if a is None or b is None or math.isinf(a) or math.isinf(b):
        return "—"
    return f"{a - b:+.2f}"


def _cell(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.2f}"


def compare(table: dict, names: Sequence[str]) -> str:
    """The Markdown comparison of ``names`` (bundles of ``table``, the last one the reference).

    Args:
        table: :func:`texture_table.evaluate_texture_bins`'s result.
        names: the bundles to compare, in column order; at least two.
    """
    edges = table["edges"]
    reference = names[-1]
    others = names[:-1]
    bounds = [f"< {edges[0]:.4g}", *(f"{lo:.4g} – {hi:.4g}" for lo, hi in zip(edges, edges[1:])), f"≥ {edges[-1]:.4g}"]
    lines = [
        f"PSNR-Y (dB) per TVAT class; bins from `{names[0]}` (boundaries {', '.join(f'{e:.4g}' for e in edges)}); "
        f"differences against `{reference}`.",
        "",
        "| class | TVAT | tiles | pixels | bicubic | " + " | ".join(names) + " | "
        + " | ".join(f"{n} − {reference}" for n in others) + " |",
        "|---" * (5 + len(names) + len(others)) + "|",
    ]
    totals = {m: BinTotals.from_dict(table["totals"][m]) for m in ("bicubic", *names)}
    psnrs = {m: t.psnr() for m, t in totals.items()}
    for k, bound in enumerate(bounds):
        lines.append(
            f"| {k} | {bound} | {totals[reference].tiles[k]} | {totals[reference].pixels[k]} | "
            f"{_cell(psnrs['bicubic'][k])} | " + " | ".join(_cell(psnrs[n][k]) for n in names) + " | "
            + " | ".join(_difference(psnrs[n][k], psnrs[reference][k]) for n in others) + " |"
        )
    lines += [
        "",
        "Per image: the difference against `" + reference + "` in each class, then over the whole image "
        "(every pixel `mmsr eval` counts: the scale cropped from every side).",
        "",
        "| set | image | tiles per class | " + " | ".join(
            f"{n}: class {k}" for n in others for k in range(len(bounds))) + " | "
        + " | ".join(f"{n}: whole image" for n in others) + " |",
        "|---" * (3 + len(others) * (len(bounds) + 1)) + "|",
    ]
    means: Dict[str, List[float]] = {n: [] for n in others}
    for image in table["images"]:
        per = {m: BinTotals.from_dict(image["totals"][m]) for m in names}
        whole = {m: _whole(t) for m, t in per.items()}
        bin_psnrs = {m: t.psnr() for m, t in per.items()}
        cells = [_difference(bin_psnrs[n][k], bin_psnrs[reference][k]) for n in others for k in range(len(bounds))]
        for n in others:
            if whole[n] is not None and whole[reference] is not None:
                means[n].append(whole[n] - whole[reference])
        lines.append(
            f"| {image['set']} | {image['name']} | {' / '.join(str(t) for t in per[reference].tiles)} | "
            + " | ".join(cells) + " | " + " | ".join(_difference(whole[n], whole[reference]) for n in others) + " |"
        )
    lines.append("")
    for n in others:
        if means[n]:
            lines.append(f"- `{n}` − `{reference}`, mean over the {len(means[n])} images' whole-image PSNR-Y: "
                         f"{sum(means[n]) / len(means[n]):+.3f} dB")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="PSNR-Y per TVAT class of two or more bundles, pooled and per image.")
    parser.add_argument("--bundle", action="append", required=True, metavar="NAME=PATH",
                        help="a bundle to compare (two or more); the first one's boundaries and tiling bin the "
                        "pixels, the last one is the reference of the differences")
    parser.add_argument("--val", action="append", required=True, type=Path, metavar="FOLDER",
                        help="a folder of HR validation images (repeatable); its name labels its rows")
    parser.add_argument("--device", default="cpu", help="where the bundles run (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="only the first N images of each folder")
    return parser


def _bundles(parser: argparse.ArgumentParser, specs: Sequence[str]) -> Dict[str, Path]:
    bundles: Dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"--bundle {spec!r} must be NAME=PATH")
        if name in bundles or name in ("bicubic", "torch-bicubic"):
            parser.error(f"--bundle name {name!r} is used twice or is a bicubic row's name")
        if not Path(path).is_file():
            parser.error(f"--bundle {name}: {path!r} is not a file")
        bundles[name] = Path(path)
    if len(bundles) < 2:
        parser.error("give at least two --bundle NAME=PATH to compare")
    return bundles


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    bundles = _bundles(parser, args.bundle)
    sets = validation_sets(parser, args.val)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    metas = {}
    for name, path in bundles.items():
        try:
            metas[name] = read_bundle_metadata(path)
        except (OSError, ValueError) as err:
            parser.error(f"--bundle {name}: {path} is not a readable mmsr bundle: {err}")
    first, meta = next(iter(bundles.values())), next(iter(metas.values()))
    for name, other in metas.items():
        if other["scale"] != meta["scale"]:
            parser.error(f"--bundle {name} is x{other['scale']}, the first bundle x{meta['scale']}: compare bundles of one scale")
    if not meta.get("boundaries"):
        parser.error(f"--bundle {first}: a one-class bundle has no TVAT classes to bin by; give a multi-model bundle first")
    table = evaluate_texture_bins(sets, bundles, edges=list(meta["boundaries"]), threshold=meta["threshold"],
                                  tile_size=meta["tile_size"], overlap=meta["overlap"], scale=meta["scale"],
                                  device=args.device, limit=args.limit)
    sys.stdout.write(compare(table, list(bundles)))
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())

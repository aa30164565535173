"""Quality per TVAT class along two runs' snapshots: which of MMSR's classes gains or loses as training goes on.

`mmsr report` reads a run's steps' worth from whole-image PSNR-Y: how many baseline steps one step of
MMSR's longest class stands for. That mixes the classes. Here every snapshot of an MMSR run and of a
one-class baseline is scored per TVAT class (the binning of `compare_bins.py` and Table 1: each pixel
takes the class of the LR tile that owns it, bins from the MMSR run's boundaries), and each class gets
its own worth: the baseline's steps to reach, on that class's pixels, the PSNR-Y MMSR's class-k model
has there, over class k's own steps.

    python benchmarks/paper/class_curves.py --mmsr runs/mmsr.run --baseline runs/base.run \\
        --val /work/shared/data/val/set14 > class_curves.md

Both runs need `mmsr train --snapshots K`. The baseline's steps are over all crops, the class's over
its own class's crops only, so a worth above 1 says a step on the class's crops did more for those
pixels than a step on every kind of crop. Output: Markdown on stdout.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from mmsr.bundle import save_bundle
from mmsr.evaluate_curve import CurvePoint
from mmsr.evaluate_steps import worth_along
from mmsr.train.snapshots import SnapshotSeries, read_series

from bins import BinTotals
from texture_table import evaluate_texture_bins, validation_sets

__all__ = ["class_curves", "class_names", "main", "per_class_worth", "snapshot_psnrs", "snapshot_table"]


def _points(series: SnapshotSeries, psnrs: Dict[int, Sequence[Optional[float]]], klass: int) -> List[CurvePoint]:
    """``series``' snapshots as curve points whose quality is class ``klass``'s PSNR-Y (None: no such pixels)."""
    points = []
    for index in range(series.count + 1):
        value = psnrs[index][klass]
        if value is None:
            return []
        steps = tuple(s.step for s in series.at(index))
        points.append(CurvePoint(index, steps, 0.0, 0.0, value, 0.0))
    return points


def per_class_worth(mmsr: SnapshotSeries, baseline: SnapshotSeries, mmsr_psnrs: Dict[int, Sequence[Optional[float]]],
                    baseline_psnrs: Dict[int, Sequence[Optional[float]]]) -> List[List[Optional[float]]]:
    """Per class, its steps' worth at each MMSR snapshot after the first (see the module docstring).

    Args:
        mmsr, baseline: the two runs' snapshot series (the baseline with one class).
        mmsr_psnrs, baseline_psnrs: snapshot index -> PSNR-Y per TVAT class (None where a class has no pixels).
    """
    worths = []
    for klass in range(len(mmsr.configs)):
        curve = SimpleNamespace(points=_points(mmsr, mmsr_psnrs, klass))
        reference = SimpleNamespace(points=_points(baseline, baseline_psnrs, klass))
        worths.append(worth_along(curve, reference, klass) if curve.points and reference.points else [])
    return worths


def _cell(value: Optional[float], digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def class_names(configs: Sequence[str], edges: Sequence[float]) -> List[str]:
    """Row labels of MMSR's classes, e.g. ``class 0 (4-2r, TVAT < 0.05)``."""
    bounds = [f"< {edges[0]:.4g}", *(f"{lo:.4g} – {hi:.4g}" for lo, hi in zip(edges, edges[1:])), f"≥ {edges[-1]:.4g}"]
    return [f"class {k} ({c}, TVAT {b})" for k, (c, b) in enumerate(zip(configs, bounds))]


def snapshot_psnrs(mmsr: SnapshotSeries, baseline: SnapshotSeries, table: dict
                   ) -> Tuple[Dict[int, List[Optional[float]]], Dict[int, List[Optional[float]]]]:
    """Snapshot index -> PSNR-Y per class, for MMSR and the baseline, from :func:`snapshot_table`'s ``table``."""
    psnr = {name: BinTotals.from_dict(totals).psnr() for name, totals in table["totals"].items()}
    return ({i: psnr[f"mmsr@{i}"] for i in range(mmsr.count + 1)},
            {i: psnr[f"baseline@{i}"] for i in range(baseline.count + 1)})


def snapshot_table(mmsr: SnapshotSeries, baseline: SnapshotSeries, sets: Dict[str, Path], *, device: str,
                   limit: Optional[int]) -> dict:
    """Every snapshot of both runs scored per TVAT class of MMSR's tiles on ``sets`` (texture_table's table)."""
    with tempfile.TemporaryDirectory(prefix="mmsr-class-curves-") as scratch:
        bundles, tilings = {}, {}
        for run, series in (("mmsr", mmsr), ("baseline", baseline)):
            for index in range(series.count + 1):
                bundle = series.bundle(index)
                bundles[f"{run}@{index}"] = save_bundle(bundle, Path(scratch) / f"{run}_{index:03d}.safetensors")
                tilings[run] = (bundle.tile_size, bundle.overlap)
        tile_size, overlap = tilings["mmsr"]  # the bins are MMSR's tiles
        return evaluate_texture_bins(sets, bundles, edges=list(mmsr.boundaries), threshold=mmsr.threshold,
                                     tile_size=tile_size, overlap=overlap, scale=mmsr.scale, device=device, limit=limit)


def class_curves(mmsr: SnapshotSeries, baseline: SnapshotSeries, table: dict) -> str:
    """The Markdown report from :func:`snapshot_table`'s ``table`` of both runs' snapshots."""
    edges = table["edges"]
    names = class_names(mmsr.configs, edges)
    mmsr_psnrs, baseline_psnrs = snapshot_psnrs(mmsr, baseline, table)
    pixels = BinTotals.from_dict(table["totals"]["mmsr@0"]).pixels
    lines = [
        f"PSNR-Y (dB) per TVAT class along the snapshots of `{mmsr.run_dir}` (MMSR) and `{baseline.run_dir}` "
        f"(baseline, {baseline.configs[0]}); bins from MMSR's boundaries ({', '.join(f'{e:.4g}' for e in edges)}), "
        f"pixels per class {' / '.join(str(p) for p in pixels)}.",
        "",
        "| run | snapshot | steps | " + " | ".join(names) + " |",
        "|---" * (3 + len(names)) + "|",
    ]
    for run, series, psnrs in (("MMSR", mmsr, mmsr_psnrs), ("baseline", baseline, baseline_psnrs)):
        for index in range(series.count + 1):
            steps = " · ".join(str(s.step) for s in series.at(index))
            lines.append(f"| {run} | {index}/{series.count} | {steps} | "
                         + " | ".join(_cell(v) for v in psnrs[index]) + " |")
    worths = per_class_worth(mmsr, baseline, mmsr_psnrs, baseline_psnrs)
    lines += [
        "",
        "Steps' worth per class at MMSR's snapshots 1, 2, …: the baseline's steps to reach, on the class's pixels, the "
        "PSNR-Y MMSR's class model has there, over the class's own steps (— where the baseline never reaches it).",
        "",
        "| class | worth at snapshots 1, 2, … |",
        "|---|---|",
    ]
    for name, values in zip(names, worths):
        lines.append(f"| {name} | {' · '.join(_cell(w) for w in values) or '—'} |")
    lines += [
        "",
        "- The baseline's steps are over every kind of crop, a class's over its own crops only: a worth above 1 says "
        "a step on the class's crops did more for its pixels than a step on all crops.",
        "- 0.00: the class's model is no better on its pixels than the start both runs share (the baseline's step 0 "
        "already reaches it).",
        "- Snapshot i is the same share of each class's budget; the baseline's curve is read mid-schedule.",
    ]
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="PSNR-Y per TVAT class along an MMSR run's and a baseline's snapshots, "
                                     "and each class's steps' worth.")
    parser.add_argument("--mmsr", required=True, type=Path, help="the MMSR run folder (mmsr train --snapshots K)")
    parser.add_argument("--baseline", required=True, type=Path, help="the one-class baseline's run folder")
    parser.add_argument("--val", action="append", required=True, type=Path, metavar="FOLDER",
                        help="a folder of HR validation images (repeatable)")
    parser.add_argument("--device", default="cpu", help="where the snapshots run (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="only the first N images of each folder")
    return parser


def _series(parser: argparse.ArgumentParser, option: str, folder: Path) -> SnapshotSeries:
    try:
        series = read_series(folder)
    except ValueError as err:
        parser.error(f"{option}: {err}")
    if not series.complete():
        parser.error(f"{option}: {folder} has not finished its pixel phase (no final snapshot)")
    return series


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    mmsr = _series(parser, "--mmsr", args.mmsr)
    baseline = _series(parser, "--baseline", args.baseline)
    if not mmsr.boundaries:
        parser.error(f"--mmsr: {args.mmsr} trained one class: no TVAT classes to bin by")
    if len(baseline.configs) != 1:
        parser.error(f"--baseline: {args.baseline} trained {len(baseline.configs)} classes; give a one-class run")
    if baseline.scale != mmsr.scale:
        parser.error(f"--baseline is x{baseline.scale}, --mmsr x{mmsr.scale}: compare runs of one scale")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    sets = validation_sets(parser, args.val)
    table = snapshot_table(mmsr, baseline, sets, device=args.device, limit=args.limit)
    sys.stdout.write(class_curves(mmsr, baseline, table))
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())

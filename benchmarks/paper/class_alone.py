"""One of MMSR's class models on every tile, along its snapshots, against the baseline's curve.

`class_curves.py` showed, at twice seed 1's budget, that MMSR's complex-class 16-8r is worth 1.5-1.8
baseline steps on complex tiles, while the shallow classes' models leave smooth tiles where they
started. This asks what that class's model is worth on its own: every snapshot of class K is used
alone on every tile (a one-class bundle; no routing), measured as `mmsr report --quality` measures
a curve (mean PSNR-Y, BT.601 luma, the scale cropped from every side), and the time it needs to
reach the highest PSNR-Y both reach is read against the baseline's, each run's class time up to the
snapshot, linear between snapshots.

    python benchmarks/paper/class_alone.py --mmsr runs/mmsr.run --class 2 --baseline runs/base.run \\
        --val /work/shared/data/val/set14 > class_alone.md

It is not MMSR (no routing, one model): it measures the class's data, the crops of one TVAT class,
as training material for a model meant for every tile. The baseline's scores come from its run's
quality cache when `mmsr report --quality` measured them before on the same images.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from mmsr.evaluate import bundle_method, evaluate_folder, list_images
from mmsr.evaluate_curve import CurvePoint, crossing, measure_curves
from mmsr.evaluate_training import load_run
from mmsr.train.snapshots import SnapshotSeries, read_series

__all__ = ["alone_points", "equal_quality_lines", "equal_quality_reading", "main"]


def alone_points(series: SnapshotSeries, klass: int, hr_dir: Path, *, device: str,
                 limit: Optional[int]) -> List[CurvePoint]:
    """Class ``klass``'s snapshots of an MMSR run's ``series``, each alone on every tile, as curve points."""
    snaps = [series.classes[klass][i] for i in range(series.count + 1) if i in series.classes[klass]]
    methods = [bundle_method(f"class{klass}@{s.index}", s.path, device=device) for s in snaps]
    result = evaluate_folder(hr_dir, methods, scale=series.scale, with_niqe=False, limit=limit, device=device,
                             progress=False)
    if not result.images:
        raise ValueError(f"no image of {str(hr_dir)!r} could be evaluated")
    means = result.mean()
    return [CurvePoint(s.index, (s.step,), s.elapsed_s, s.elapsed_s, means[m.name].psnr_y, means[m.name].ssim_y)
            for s, m in zip(snaps, methods)]


def equal_quality_reading(alone: Sequence[CurvePoint], baseline: Sequence[CurvePoint]) -> dict:
    """Where both curves first reach the highest PSNR-Y both reach: ``target_psnr``, and each curve's steps and
    training seconds there with the speed-up and its factors (None where a curve starts at the target)."""
    target = min(max(p.psnr_y for p in alone), max(p.psnr_y for p in baseline))
    reading = {"target_psnr": target, "alone_steps": None, "alone_s": None, "baseline_steps": None,
               "baseline_s": None, "speedup": None, "worth": None, "step_cost": None}
    where_alone, where_base = crossing(alone, target), crossing(baseline, target)
    # A curve already there at its first snapshot (step 0, whose time is only the run's set-up) has no
    # training time to compare.
    if where_alone.index == 0 or where_base.index == 0:
        return reading
    t_alone = where_alone.of(lambda p: p.one_device_s)
    t_base = where_base.of(lambda p: p.one_device_s)
    steps_alone = where_alone.of(lambda p: p.steps[0])
    steps_base = where_base.of(lambda p: p.steps[0])
    return {**reading, "alone_steps": steps_alone, "alone_s": t_alone, "baseline_steps": steps_base,
            "baseline_s": t_base, "speedup": t_base / t_alone, "worth": steps_base / steps_alone,
            "step_cost": (t_base / steps_base) / (t_alone / steps_alone)}


def equal_quality_lines(alone: Sequence[CurvePoint], baseline: Sequence[CurvePoint]) -> List[str]:
    """The equal-quality reading of the two curves, as Markdown lines."""
    r = equal_quality_reading(alone, baseline)
    lines = [f"Equal quality: **{r['target_psnr']:.2f} dB** (the highest mean PSNR-Y both curves reach).", ""]
    if r["speedup"] is None:
        return lines + ["- One curve starts at that quality: there is no training time to compare."]
    return lines + [
        f"- The class's model alone reaches it after {r['alone_steps']:.0f} steps, {r['alone_s']:.1f} s of training; "
        f"the baseline after {r['baseline_steps']:.0f} steps, {r['baseline_s']:.1f} s.",
        f"- Speed-up: **{r['speedup']:.2f}×** (steps' worth {r['worth']:.2f}, step cost {r['step_cost']:.2f}).",
    ]


def _table(name: str, points: Sequence[CurvePoint]) -> List[str]:
    return [f"| {name} | {p.index} | {p.steps[0]} | {p.one_device_s:.1f} | {p.psnr_y:.2f} | {p.ssim_y:.4f} |"
            for p in points]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="One MMSR class's model alone on every tile, along its snapshots, "
                                     "against the baseline's curve.")
    parser.add_argument("--mmsr", required=True, type=Path, help="the MMSR run folder (mmsr train --snapshots K)")
    parser.add_argument("--class", dest="klass", required=True, type=int, help="the class whose model to use")
    parser.add_argument("--baseline", required=True, type=Path, help="the one-class baseline's run folder")
    parser.add_argument("--val", required=True, type=Path, help="a folder of HR validation images")
    parser.add_argument("--device", default="cpu", help="where the models run (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="only the first N images")
    args = parser.parse_args(argv)
    if not args.val.is_dir() or not list_images(args.val):
        parser.error(f"--val {str(args.val)!r} is not a folder of images")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    try:
        series = read_series(args.mmsr)
    except ValueError as err:
        parser.error(f"--mmsr: {err}")
    if not 0 <= args.klass < len(series.configs):
        parser.error(f"--class {args.klass}: {args.mmsr} has classes 0-{len(series.configs) - 1}")
    if series.count not in series.classes[args.klass]:
        parser.error(f"--mmsr: class {args.klass} of {args.mmsr} has not finished its pixel phase")
    try:
        baseline_run = load_run(f"baseline={args.baseline}")
    except (OSError, ValueError) as err:  # no summary there: FileNotFoundError, naming the path
        parser.error(f"--baseline: {err}")
    if baseline_run.mode != "baseline":
        parser.error(f"--baseline: {args.baseline} is an {baseline_run.mode} run, not a one-class baseline")
    try:
        (base_curve,) = measure_curves([baseline_run], args.val, device=args.device, limit=args.limit, progress=False)
        alone = alone_points(series, args.klass, args.val, device=args.device, limit=args.limit)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    config = series.configs[args.klass]
    lines = [
        f"Class {args.klass} ({config}) of `{args.mmsr}` alone on every tile, against `{args.baseline}` "
        f"({baseline_run.configs[0]}), on `{args.val}` (mean PSNR-Y / SSIM-Y, `mmsr eval`'s protocol). Times are "
        "each run's class training time up to the snapshot.",
        "",
        "| model | snapshot | steps | training time (s) | PSNR-Y (dB) | SSIM-Y |",
        "|---|---|---|---|---|---|",
        *_table(f"class {args.klass} ({config}) alone", alone),
        *_table(f"baseline ({baseline_run.configs[0]})", base_curve.points),
        "",
        *equal_quality_lines(alone, base_curve.points),
        "- Not MMSR: one model on every tile, trained on one TVAT class's crops only.",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())

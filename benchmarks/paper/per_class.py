"""The harness's per-class reading: where MMSR's steps' worth comes from, class by class.

Whole-image curves (Table 3 at equal quality) mix MMSR's classes. This stage scores every snapshot of
MMSR and of the baseline per TVAT class of MMSR's tiles (class_curves.py), so each class's steps get
their own worth on their own pixels, and it uses the most textured class's model alone on every tile
(class_alone.py) against the baseline's curve at equal quality. At real size on CPU (equal_steps_cpu/)
this was where the worth sat: the complex class's 16-8r was worth 1.5-1.9 baseline steps on its
tiles, while the shallow models barely moved smooth ones.

The Markdown goes to class_curves.md in the harness's output; :func:`measure_per_class` returns the
numbers report.py draws from (kept in results.json under table3.per_class).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Dict, List, Optional

from mmsr.atomic import write_bytes_atomically
from mmsr.evaluate_curve import CurvePoint
from mmsr.train.snapshots import read_series

from class_alone import alone_points, equal_quality_lines, equal_quality_reading
from class_curves import class_curves, class_names, per_class_worth, snapshot_psnrs, snapshot_table

__all__ = ["PER_CLASS_FILE", "curve_points", "measure_per_class", "per_class_stage"]

PER_CLASS_FILE = "class_curves.md"


def curve_points(points: list) -> List[CurvePoint]:
    """Curve points as results.json keeps them (dicts of CurvePoint's fields, lists for tuples) as CurvePoints."""
    return [CurvePoint(**{**p, "steps": tuple(p["steps"]), "class_times": tuple(p.get("class_times", ()))})
            for p in points]


def measure_per_class(mmsr_run: Path, baseline_run: Path, set_name: str, hr_dir: Path, baseline_curve: list, *,
                      device: str, limit: Optional[int], out: Path) -> dict:
    """Score both runs' snapshots per TVAT class on ``hr_dir`` and read the complex class's model alone.

    Args:
        mmsr_run, baseline_run: run folders of `mmsr train --snapshots K` (MMSR with classes, a one-class baseline).
        set_name, hr_dir: the validation set the equal-quality curves were measured on.
        baseline_curve: the baseline's curve points as results.json keeps them (dicts of CurvePoint's fields).
        device, limit: where the models run; only the first ``limit`` images (None: all).
        out: the harness's output folder; class_curves.md is written there.

    Returns:
        ``set``, ``report`` (the Markdown file's name), ``classes`` (row labels), ``final`` (PSNR-Y per class at
        each run's last snapshot), ``worth`` (per class, at MMSR's snapshots 1, 2, ...) and ``alone`` (the
        complex class's model alone: its class, config, curve points and equal-quality reading).
    """
    mmsr, baseline = read_series(mmsr_run), read_series(baseline_run)
    print(f"paper: scoring {mmsr.count + baseline.count + 2} snapshots per TVAT class and class "
          f"{len(mmsr.configs) - 1}'s {mmsr.count + 1} alone on {set_name}", file=sys.stderr, flush=True)
    table = snapshot_table(mmsr, baseline, {set_name: hr_dir}, device=device, limit=limit)
    mmsr_psnrs, baseline_psnrs = snapshot_psnrs(mmsr, baseline, table)
    klass = len(mmsr.configs) - 1  # the most textured class: MMSR gives it the deepest model
    alone = alone_points(mmsr, klass, hr_dir, device=device, limit=limit)
    reference = curve_points(baseline_curve)
    reading = equal_quality_reading(alone, reference)
    text = "\n".join([
        class_curves(mmsr, baseline, table).rstrip("\n"),
        "",
        f"Class {klass}'s model ({mmsr.configs[klass]}) alone on every tile of {set_name} (no routing; mean PSNR-Y as "
        "in Table 3's curves), against the baseline's curve:",
        "",
        "| snapshot | steps | training time (s) | PSNR-Y (dB) |",
        "|---|---|---|---|",
        *(f"| {p.index} | {p.steps[0]} | {p.one_device_s:.1f} | {p.psnr_y:.2f} |" for p in alone),
        "",
        *equal_quality_lines(alone, reference),
        "- Not MMSR: one model on every tile, trained on one TVAT class's crops only.",
    ]) + "\n"
    write_bytes_atomically(out / PER_CLASS_FILE, text.encode("utf-8"))
    return {
        "set": set_name,
        "report": PER_CLASS_FILE,
        "classes": class_names(mmsr.configs, table["edges"]),
        "final": {"mmsr": mmsr_psnrs[mmsr.count], "baseline": baseline_psnrs[baseline.count]},
        "worth": per_class_worth(mmsr, baseline, mmsr_psnrs, baseline_psnrs),
        "alone": {"class": klass, "config": mmsr.configs[klass],
                  "points": [dataclasses.asdict(p) for p in alone], **reading},
    }


def per_class_stage(eq: dict, mmsr_run: Path, baseline_run: Path, sets: Dict[str, Path], **kwargs) -> dict:
    """:func:`measure_per_class` on the equal-quality stage's set and baseline curve; an ``error`` when that
    stage has none, or when the runs' snapshots cannot be read."""
    if "error" in eq:
        return {"error": f"no equal-quality curves ({eq['error']})"}
    try:
        return measure_per_class(mmsr_run, baseline_run, eq["set"], sets[eq["set"]], eq["curves"]["baseline"],
                                 **kwargs)
    except ValueError as err:
        print(f"paper: no per-class reading: {err}", file=sys.stderr, flush=True)
        return {"error": str(err)}

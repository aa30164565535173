"""Analysis only: the quality-against-time curve of MMSR with its shallow classes cut from its 16-8r.

Each point is one bundle of curve_command.sh: the 16-8r's snapshot J, and a 4-2r and an 8-6r cut from
that snapshot and fine-tuned. Its training cost on one device is the 16-8r's time to J (from the
snapshot, measured beside the baseline) plus the two fine-tunes' times (their summary.json); on
separate devices (computed) the 16-8r's time plus the longer fine-tune, since both start from the
finished 16-8r. The baseline's curve is `mmsr report --quality`'s (its snapshots, cached).

    python curve.py --val /work/shared/data/val/set14 --baseline-run base.run \\
        --point j6=mmsr_j6_s100.safetensors,ft_j6_s100.run,above.run/snapshots/class2/006.safetensors ...

Output: Markdown on stdout.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from mmsr.bundle import read_bundle_metadata
from mmsr.evaluate import bundle_method, evaluate_folder
from mmsr.evaluate_curve import CurvePoint, equal_quality, measure_curves
from mmsr.evaluate_training import load_run


@dataclass(frozen=True)
class Curve:
    """What :func:`mmsr.evaluate_curve.equal_quality` reads of a curve."""

    name: str
    points: tuple[CurvePoint, ...]

    @property
    def best_psnr(self) -> float:
        return max(p.psnr_y for p in self.points)


def _point_spec(text: str) -> tuple[str, Path, Path, Path]:
    label, _, files = text.partition("=")
    parts = files.split(",")
    if not label or len(parts) != 3:
        raise argparse.ArgumentTypeError(f"--point {text!r}: expected LABEL=BUNDLE,FINE_TUNE_RUN,DEEP_SNAPSHOT")
    return (label, *(Path(p) for p in parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", required=True, help="HR folder the curves are measured on")
    parser.add_argument("--baseline-run", required=True, help="the baseline's run folder (with --snapshots)")
    parser.add_argument("--point", type=_point_spec, action="append", required=True)
    args = parser.parse_args()

    baseline = measure_curves([load_run(f"baseline={args.baseline_run}")], args.val, progress=False)[0]
    rows, points = [], []
    for index, (label, bundle, fine_tune_run, snapshot) in enumerate(args.point):
        deep = read_bundle_metadata(snapshot)["provenance"]["snapshot"]
        classes = json.loads((fine_tune_run / "summary.json").read_text())["classes"]
        fine_tunes = [classes[k]["wall_time_s"] for k in (0, 1)]
        steps = [classes[k]["pixel_steps"] for k in (0, 1)]
        scores = evaluate_folder(args.val, [bundle_method(label, bundle)], scale=4, with_niqe=False, progress=False)
        mean = scores.mean()[label]
        psnr, ssim = mean.psnr_y, mean.ssim_y
        one = deep["elapsed_s"] + sum(fine_tunes)
        separate = deep["elapsed_s"] + max(fine_tunes)
        points.append(CurvePoint(index, (*steps, deep["step"]), one, separate, psnr, ssim))
        rows.append(f"| {label} | {deep['step']} | {deep['elapsed_s']:.1f} | {fine_tunes[0]:.1f} ({steps[0]}) | "
                    f"{fine_tunes[1]:.1f} ({steps[1]}) | {one:.1f} | {separate:.1f} | {psnr:.2f} | {ssim:.4f} |")
    ours = Curve("from-deep", tuple(sorted(points, key=lambda p: p.one_device_s)))
    eq = equal_quality(ours, baseline)

    print(f"MMSR with its shallow classes cut from its 16-8r and fine-tuned, on `{args.val}` (PSNR-Y / SSIM-Y, "
          "`mmsr eval`'s protocol).\n")
    print("| point | 16-8r steps | 16-8r time (s) | 4-2r fine-tune (s, steps) | 8-6r fine-tune (s, steps) | "
          "one device (s) | separate devices (s, computed) | PSNR-Y (dB) | SSIM-Y |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nBaseline (its snapshots):\n\n| steps | time (s) | PSNR-Y (dB) |\n|---|---|---|")
    for p in baseline.points:
        print(f"| {p.steps[0]} | {p.one_device_s:.1f} | {p.psnr_y:.2f} |")
    print(f"\nEqual quality: {eq.target_psnr:.2f} dB (set by {eq.limited_by}). The baseline reaches it at "
          f"{eq.baseline_s:.1f} s; MMSR from its 16-8r at {eq.one_device_s:.1f} s on one device "
          f"(**{eq.baseline_s / eq.one_device_s:.2f}×**) and {eq.separate_devices_s:.1f} s on separate devices "
          f"(computed, **{eq.baseline_s / eq.separate_devices_s:.2f}×**); linear between points."
          + (f" At the start: {', '.join(eq.at_start)}: no time to compare." if eq.at_start else ""))


if __name__ == "__main__":
    main()

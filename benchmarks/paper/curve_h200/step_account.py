"""The step account (mmsr.evaluate_steps) of the H200 curve runs, from what this folder keeps.

`mmsr report --quality` splits a speed-up into steps' worth, step cost and share, but needs the runs'
snapshot files, which did not come back from the device. Their measured scores did (each run's
quality_cache.json, full precision), and so did the snapshot events in the logs (step and class time
of every snapshot). This rebuilds the curves from those two and prints the same tables. The cache is
keyed by file hashes, so each snapshot's score is found by matching the report's rounded PSNR-Y and
SSIM-Y; the script stops if that match is not unique.

    python benchmarks/paper/curve_h200/step_account.py > benchmarks/paper/curve_h200/step_account.md
"""
import json
import re
import sys
from pathlib import Path

from mmsr.evaluate_curve import CurvePoint, equal_quality
from mmsr.evaluate_steps import step_account, step_table, worth_along
from mmsr.evaluate_training import load_run

HERE = Path(__file__).resolve().parent
ROW = re.compile(r"^\| (\w+) \| (\d+)/\d+ \| [^|]+\| [^|]+\| [^|]+\| ([\d.]+) \| ([\d.]+) \|$", re.M)
rounded = {(m[1], int(m[2])): (float(m[3]), float(m[4])) for m in ROW.finditer((HERE / "quality_curve.md").read_text())}


def exact(run_dir: Path, scores: tuple) -> tuple:
    entries = json.loads((run_dir / "quality_cache.json").read_text())["entries"].values()
    found = {(e["psnr_y"], e["ssim_y"]) for e in entries
             if round(e["psnr_y"], 2) == scores[0] and round(e["ssim_y"], 4) == scores[1]}  # fmt: skip
    if len(found) != 1:
        sys.exit(f"{run_dir}: {len(found)} cached scores round to {scores}")
    return found.pop()


class Curve:
    """What the curve report needs of a QualityCurve: name, run, points, best_psnr."""

    def __init__(self, name: str, folder: str) -> None:
        run_dir = HERE / folder
        self.name, self.run = name, load_run(f"{name}={run_dir}")
        snaps: dict = {}
        for log in sorted((run_dir / "logs").glob("class*.jsonl")):
            for line in log.read_text().splitlines():
                event = json.loads(line)
                if event["event"] == "snapshot":
                    snaps.setdefault(event["index"], {})[event["class"]] = (event["step"], event["elapsed_s"])
        points = []
        for index in sorted(snaps):
            classes = sorted(snaps[index])
            steps = tuple(snaps[index][k][0] for k in classes)
            times = tuple(snaps[index][k][1] for k in classes)
            one = max(times) if self.run.concurrent else sum(times)
            separate = None if self.run.concurrent else max(times)
            points.append(CurvePoint(index, steps, one, separate, *exact(run_dir, rounded[(name, index)]), times))
        self.points = tuple(points)

    @property
    def best_psnr(self) -> float:
        return max(p.psnr_y for p in self.points)


base = Curve("baseline", "baseline_curve_s0.run")
accounts, along = [], []
print("Rebuilt from the logs' snapshot events and the quality caches (`step_account.py`); times are the logs' "
      "snapshot times, so they differ from `quality_curve.md`'s by up to ~0.5 s.\n")
print("| run | equal quality (dB) | baseline reaches it (s) | run, one device (s) | speed-up | separate devices (s) | speed-up |")
print("|---|---|---|---|---|---|---|")
for name in ("mmsr_concurrent", "mmsr_sequential"):
    curve = Curve(name, f"{name}_curve_s0.run")
    eq = equal_quality(curve, base)
    sep = "— | —" if eq.separate_devices_s is None else f"{eq.separate_devices_s:.1f} | {eq.separate_devices_speedup:.2f}×"
    print(f"| {name} | {eq.target_psnr:.3f} | {eq.baseline_s:.1f} | {eq.one_device_s:.1f} | "
          f"{eq.one_device_speedup:.2f}× | {sep} |")
    account = step_account(curve, base, eq)
    accounts.append(account)
    along.append(worth_along(curve, base, account.klass))
print()
print("\n".join(step_table(accounts, along=along)))

"""The training runs of a profile, run as a user runs them: `python -m mmsr train ...` in a subprocess.

Each run writes its bundle to ``OUT/runs/NAME.safetensors`` and its run folder (logs, checkpoints,
summary.json) to ``OUT/runs/NAME.run``; the command's output goes to ``OUT/logs/train_NAME.log``.
With ``reuse``, a run whose bundle and summary.json exist is kept as it is, and one that was cut
off is continued with `mmsr train --resume`.

Example:
    >>> from profiles import PROFILES
    >>> [run.name for run in plan_runs(PROFILES["smoke"])]
    ['mmsr', 'baseline', 'depth_2-2r', 'depth_4-2r', 'depth_8-6r']
    >>> [run.name for run in plan_runs(PROFILES["smoke"], seeds=(0, 3)) if run.role != "depth"]
    ['mmsr', 'baseline', 'mmsr_seed3', 'baseline_seed3']
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from commands import mmsr_command, run_logged
from profiles import Profile

__all__ = ["TrainedRun", "TrainingRun", "mmsr_report", "plan_runs", "run_training"]

RUNS_DIR = "runs"
LOGS_DIR = "logs"


@dataclass(frozen=True)
class TrainingRun:
    """One `mmsr train` invocation of the plan.

    Attributes:
        name: file stem of its bundle and run folder.
        role: "mmsr", "baseline" or "depth" (a Table 1 one-class model).
        configs: its class models, smooth -> complex.
        arguments: the options that make it this run (classes, configs, budgets).
        seed: its `mmsr train --seed`.
    """

    name: str
    role: str
    configs: Tuple[str, ...]
    arguments: Tuple[str, ...]
    seed: int = 0

    def bundle(self, out: Path) -> Path:
        return out / RUNS_DIR / f"{self.name}.safetensors"

    def run_dir(self, out: Path) -> Path:
        return out / RUNS_DIR / f"{self.name}.run"

    def log(self, out: Path) -> Path:
        return out / LOGS_DIR / f"train_{self.name}.log"


@dataclass(frozen=True)
class TrainedRun:
    """What :func:`run_training` did: the run's files (relative to OUT), seconds, and whether it was reused."""

    name: str
    role: str
    configs: Tuple[str, ...]
    bundle: str
    run_dir: str
    log: str
    seconds: float
    reused: bool
    command: Tuple[str, ...]
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "name": self.name, "role": self.role, "configs": list(self.configs), "bundle": self.bundle,
            "run_dir": self.run_dir, "log": self.log, "seconds": self.seconds, "reused": self.reused,
            "command": list(self.command), "seed": self.seed,
        }


def plan_runs(profile: Profile, seeds: Optional[Tuple[int, ...]] = None) -> List[TrainingRun]:
    """MMSR and the baseline per seed, then one one-class run per Table 1 depth other than the baseline's.

    The baseline is the 16-8 depth run: `--baseline` trains one 16-8 on all crops with K x the
    per-class steps, which is exactly what `--classes 1 --configs 16-8` with those steps trains.
    ``seeds`` defaults to the profile's; the first seed's runs are "mmsr" and "baseline" (Table 1's
    16-8 and section 3 use them, and the depth runs share their seed), the others' "mmsr_seedS" and
    "baseline_seedS".
    """
    seeds = profile.seeds if seeds is None else tuple(seeds)
    mmsr_classes = ("--classes", str(profile.classes), "--configs", ",".join(profile.mmsr_configs))
    # One number per class; the baseline's --baseline budget is their sum, whatever the split.
    per_class = ("--pixel-steps", ",".join(map(str, profile.mmsr_pixel_steps)), "--gan-steps", str(profile.gan_steps))
    concurrent = ("--concurrent",) if profile.concurrent else ("--no-concurrent",)  # never mmsr train's default
    # MMSR and the baseline keep their quality-vs-time curves, for the time each needs at equal quality.
    snapshots = ("--snapshots", str(profile.snapshots))
    runs = []
    for seed in seeds:
        suffix = "" if seed == seeds[0] else f"_seed{seed}"
        runs += [
            TrainingRun(f"mmsr{suffix}", "mmsr", profile.mmsr_configs,
                        mmsr_classes + per_class + concurrent + snapshots, seed),
            TrainingRun(
                f"baseline{suffix}",
                "baseline",
                (profile.baseline_config,),
                mmsr_classes + per_class + ("--baseline", "--baseline-config", profile.baseline_config) + snapshots,
                seed,
            ),
        ]
    single = ("--pixel-steps", str(profile.single_pixel_steps), "--gan-steps", str(profile.single_gan_steps))
    for config in profile.depth_configs:
        if config != profile.baseline_config:
            runs.append(TrainingRun(f"depth_{config}", "depth", (config,), ("--classes", "1", "--configs", config) + single,
                                    seeds[0]))
    return runs


def _common_arguments(profile: Profile, seed: int) -> List[str]:
    arguments = [
        "--crop", str(profile.crop),
        "--batch", str(profile.batch),
        "--lr", str(profile.lr),
        "--lr-schedule", profile.lr_schedule,
        "--val-every", str(profile.val_every),
        "--val-crops", str(profile.val_crops),
        "--calib-samples", str(profile.calib_samples),
        # Every run spends its whole budget: an early stop would make the time comparison unequal.
        "--early-stop", "0",
        "--seed", str(seed),
        "--devices", profile.devices,
        "--amp", profile.amp,
        "--no-progress",
    ]
    if profile.channels_last:
        arguments.append("--channels-last")
    return arguments


def _relative(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()


def run_training(
    run: TrainingRun, profile: Profile, data: Path, out: Path, *, threads: Optional[int], reuse: bool
) -> TrainedRun:
    """Train one run with `python -m mmsr train`, or keep it when ``reuse`` and it is already complete.

    ``threads`` is the run's torch thread count (None: mmsr's default).

    Raises:
        RuntimeError: the command failed; the message holds the end of its log.
    """
    bundle, run_dir, log = run.bundle(out), run.run_dir(out), run.log(out)
    command = mmsr_command("train", str(data), "--out", str(bundle), "--run-dir", str(run_dir))
    command += list(run.arguments) + _common_arguments(profile, run.seed)
    if threads is not None:
        command += ["--threads", str(threads)]
    complete = bundle.is_file() and (run_dir / "summary.json").is_file()
    start = time.perf_counter()
    if not (reuse and complete):
        if reuse and (run_dir / "plan.json").is_file():
            command.append("--resume")  # an interrupted run: continue what is unfinished
        # One write with its newline: runs started side by side print from two threads at once.
        print(f"paper: training {run.name} ({' · '.join(run.configs)}); log: {log}\n", end="", file=sys.stderr, flush=True)
        run_logged(command, log, f"mmsr train ({run.name})", threads=threads)
    seconds = time.perf_counter() - start
    return TrainedRun(
        run.name, run.role, run.configs, _relative(bundle, out), _relative(run_dir, out), _relative(log, out),
        seconds, reuse and complete, tuple(command), run.seed,
    )


def mmsr_report(run_dirs: Sequence[Tuple[str, Path]], baseline: str, out_file: Path, log: Path) -> str:
    """`python -m mmsr report NAME=RUN ... --baseline NAME --out FILE`: the Markdown Table 3 it writes.

    Runs given one NAME are seeds of one setting (each compared with the baseline of its seed).

    Raises:
        RuntimeError: the command failed; the message holds the end of its log.
    """
    command = mmsr_command("report", *(f"{name}={path}" for name, path in run_dirs))
    command += ["--baseline", baseline, "--out", str(out_file)]
    run_logged(command, log, "mmsr report")
    return out_file.read_text(encoding="utf-8")

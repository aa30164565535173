"""Where a run's speed-up at equal quality comes from: how much its steps are worth, and what they cost.

A run's separate-devices time at equal quality is its longest class's time, so its speed-up there is
the baseline's time over that class's time. That ratio splits exactly into two factors:

    speed-up, separate devices = steps' worth x step cost

- **steps' worth** = the baseline's steps to reach the quality / the longest class's steps to reach
  it: how many of the baseline's steps one step of that class stands for. Training on one texture
  class can only pay off here. A class that trains a model as deep as the baseline's, on a third of
  the crops, at the baseline's cost per step, reaches the paper's 2.9x on three devices only if each
  of its steps is worth ~2.9 of the baseline's.
- **step cost** = the baseline's seconds per step / the class's seconds per step: ~1 for a class with
  the baseline's model, batch and device; above 1 for a shallower model. For a ``--concurrent`` run
  the class's seconds were measured while sharing the device.

On one device the speed-up is that product times the longest class's **share** of the one-device time
(1 for a ``--concurrent`` run, whose one-device time is its longest class's time): the time the other
classes add.

All of it is read at the crossing :mod:`mmsr.evaluate_curve` uses (each curve's first reach of the
equal quality, linear between snapshots), so the product reproduces that module's speed-ups.

Example:
    >>> eq = equal_quality(run_curve, baseline_curve)                      # doctest: +SKIP
    >>> account = step_account(run_curve, baseline_curve, eq)               # doctest: +SKIP
    >>> account.worth, account.step_cost, account.share                     # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from .evaluate_curve import EqualQuality, _cell, crossing

__all__ = ["StepAccount", "step_account", "step_table", "worth_along"]


@dataclass(frozen=True)
class StepAccount:
    """A run's longest class and the baseline, at the crossing of the equal quality.

    Attributes:
        run: the run's name.
        target_psnr: the equal quality, in dB.
        klass, config: the run's longest class (the one that sets its separate-devices time) and its model.
        class_steps, class_s: that class's steps and training seconds when the run reaches the quality.
        baseline_steps, baseline_s: the baseline's steps and seconds when it reaches the quality.
        one_device_s: the run's one-device time when it reaches the quality.
        concurrent: the run's classes shared the device, so ``class_s`` was measured while sharing.
    """

    run: str
    target_psnr: float
    klass: int
    config: str
    class_steps: float
    class_s: float
    baseline_steps: float
    baseline_s: float
    one_device_s: float
    concurrent: bool

    @property
    def worth(self) -> float:
        """Baseline steps per step of the longest class, to reach the equal quality."""
        return self.baseline_steps / self.class_steps

    @property
    def step_cost(self) -> float:
        """The baseline's seconds per step over the longest class's seconds per step."""
        return (self.baseline_s / self.baseline_steps) / (self.class_s / self.class_steps)

    @property
    def share(self) -> float:
        """The longest class's share of the run's one-device time."""
        return self.class_s / self.one_device_s

    @property
    def separate_devices_speedup(self) -> Optional[float]:
        """``worth * step_cost``: the baseline's time over the longest class's; None for a concurrent run."""
        return None if self.concurrent else self.worth * self.step_cost

    @property
    def one_device_speedup(self) -> float:
        return self.worth * self.step_cost * self.share


def step_account(curve, baseline, eq: EqualQuality) -> Optional[StepAccount]:
    """``curve``'s longest class against ``baseline`` at ``eq``'s quality; None where it cannot be split.

    ``curve`` and ``baseline`` are :class:`mmsr.evaluate_curve.QualityCurve` or seed-averaged
    :class:`mmsr.evaluate_seeds.MeanCurve`. None when either curve starts at the quality (no training
    to compare), or when the points lack per-class times or steps (seeds that disagree on them).
    """
    if eq.at_start:
        return None
    mine, theirs = crossing(curve.points, eq.target_psnr), crossing(baseline.points, eq.target_psnr)
    if mine is None or theirs is None:
        return None
    reached = curve.points[mine.index]
    if not reached.class_times or len(reached.steps) != len(reached.class_times):
        return None
    if any(len(p.class_times) != len(reached.class_times) or len(p.steps) != len(reached.steps) for p in curve.points):
        return None
    if any(len(p.steps) != 1 for p in baseline.points):
        return None
    klass = max(range(len(reached.class_times)), key=lambda k: reached.class_times[k])
    class_steps = mine.of(lambda p: p.steps[klass])
    baseline_steps = theirs.of(lambda p: p.steps[0])
    if class_steps <= 0 or baseline_steps <= 0:
        return None
    configs = curve.run.configs if hasattr(curve, "run") else curve.configs  # a QualityCurve or a MeanCurve
    return StepAccount(
        run=curve.name,
        target_psnr=eq.target_psnr,
        klass=klass,
        config=configs[klass] if klass < len(configs) else "?",
        class_steps=class_steps,
        class_s=mine.of(lambda p: p.class_times[klass]),
        baseline_steps=baseline_steps,
        baseline_s=eq.baseline_s,
        one_device_s=eq.one_device_s,
        concurrent=eq.separate_devices_s is None,
    )


def worth_along(curve, baseline, klass: int) -> list[Optional[float]]:
    """Steps' worth of class ``klass`` at each of ``curve``'s snapshots after the first: the baseline's
    steps to reach that snapshot's PSNR-Y over the class's steps there (None where the baseline never
    reaches it, or the class has no steps yet).

    Each snapshot is read against the baseline's curve as it stands mid-schedule; only the last
    snapshots of both have their learning rate annealed.
    """
    if any(len(p.steps) <= klass for p in curve.points) or any(len(p.steps) != 1 for p in baseline.points):
        return []
    worths: list[Optional[float]] = []
    for point in curve.points[1:]:
        where = crossing(baseline.points, point.psnr_y)
        steps = point.steps[klass]
        worths.append(None if where is None or steps <= 0 else where.of(lambda p: p.steps[0]) / steps)
    return worths


def _per_step(seconds: float) -> str:
    return f"{1000 * seconds:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def step_table(
    accounts: Sequence[StepAccount], title: str = "Where the speed-up comes from", along: Sequence[Sequence] = ()
) -> list[str]:
    """Markdown lines: the accounts' table and what its columns mean (nothing for no accounts)."""
    if not accounts:
        return []
    lines = [
        f"#### {title}: steps' worth and step cost",
        "",
        "| run | equal quality (dB) | longest class | its steps to reach it | baseline's steps to reach it "
        "| steps' worth | s per step: class / baseline | step cost | class's share of one device "
        "| = speed-up, one device | = separate devices |",
        "|" + "---|" * 11,
    ]
    for a in accounts:
        separate = "—" if a.separate_devices_speedup is None else f"{a.separate_devices_speedup:.2f}×"
        shared = " (sharing)" if a.concurrent else ""
        lines.append(
            f"| {_cell(a.run)} | {a.target_psnr:.2f} | {a.klass} ({_cell(a.config)}) | {a.class_steps:.0f} | "
            f"{a.baseline_steps:.0f} | {a.worth:.2f} | {_per_step(a.class_s / a.class_steps)}{shared} / "
            f"{_per_step(a.baseline_s / a.baseline_steps)} | {a.step_cost:.2f} | {a.share:.2f} | "
            f"{a.one_device_speedup:.2f}× | {separate} |"
        )
    lines += [
        "",
        "- **longest class**: the class with the most training time when the run reaches the equal quality; "
        "on separate devices it alone sets the run's time.",
        "- **steps' worth** = the baseline's steps ÷ that class's steps, each read where its curve first "
        "reaches the equal quality: how many baseline steps one of the class's steps stands for. A class that "
        "trains the baseline's model on a third of the crops, at its cost per step, needs a worth of ~2.9 for "
        "the paper's 2.9× on three devices.",
        "- **step cost** = the baseline's time per step ÷ the class's (above 1: the class's steps are "
        "cheaper). \"(sharing)\": a `--concurrent` run's class time, measured while the classes shared the device.",
        "- **speed-up** = worth × step cost on separate devices, × the class's share of the one-device time on "
        "one device: the equal-quality table's speed-ups split into their factors (they differ only where "
        "another class was the longest at the snapshot before the crossing).",
        "",
    ]
    if any(along):
        lines += [
            "Steps' worth along the way: at each of the run's snapshots, the baseline's steps to reach its PSNR-Y "
            "over the longest class's steps there (— where the baseline never reaches it).",
            "",
            "| run | worth at snapshots 1, 2, … |",
            "|---|---|",
        ]
        for a, worths in zip(accounts, along):
            if worths:
                cells = " · ".join("—" if w is None else f"{w:.2f}" for w in worths)
                lines.append(f"| {_cell(a.run)} | {cells} |")
        lines += [
            "",
            "- Each snapshot is the same share of its own run's schedule; the baseline's curve is read mid-schedule, "
            "where its learning rate has not yet fallen. Equal quality sits at the flat end of the curves, where "
            "the worth is read least steadily.",
            "",
        ]
    return lines

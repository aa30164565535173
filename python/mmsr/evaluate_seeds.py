"""Several seeds of one setting: their mean curve, and the speed-up at equal quality over the seeds.

At the budgets mmsr's CPU experiments can afford, the seed (the hold-out split, the initial weights,
the training crops) moves a run's final Set14 score by ~0.15 dB, as much as the gap between MMSR and
the baseline being measured; one run per setting showed a 1.42x speed-up that the next two seeds
reversed (0.60x, 0.64x; see benchmarks/README.md). Given several seeds per setting (runs sharing a
name in ``mmsr report``, :func:`mmsr.evaluate_training.label_seeds`), this module reports:

- per setting, the final PSNR-Y over its seeds: the mean, the lowest and the highest;
- each seed's speed-up at equal quality against the baseline trained with the same seed (or the
  only baseline, which the report then names), and their geometric mean (the mean of ratios that
  does not depend on which way the ratio is taken). A seed without a speed-up (its curve or its
  baseline's starts at equal quality, or it has no baseline) is left out of the mean, and the
  report counts and names it;
- the **mean curve**: each snapshot's training times and PSNR-Y averaged over the seeds (snapshot i
  is the same share of the same budget in every seed), and its speed-up at equal quality against
  the baseline's mean curve. Reading one crossing of two averaged curves is steadier than reading
  each seed's, where the flat ends of two noisy curves decide where they cross.

Example:
    >>> curves = measure_curves(label_seeds(runs), "data/val/set14")          # doctest: +SKIP
    >>> print(seed_report(curves, [c for c in curves if c.run.is_baseline]))  # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from .evaluate_curve import CurvePoint, EqualQuality, QualityCurve, baseline_curve_for, equal_quality
from .evaluate_steps import step_account, step_table, worth_along
# The curve report's cell formats, so that both tables read alike (seconds as Table 3 writes them).
from .evaluate_curve import _cell, _speedup
from .evaluate_training import _seconds

__all__ = ["MeanCurve", "SeedComparison", "compare_seeds", "geometric_mean", "mean_curve", "seed_report"]


@dataclass(frozen=True)
class MeanCurve:
    """A setting's curve averaged over its seeds.

    Attributes:
        name: the setting's name.
        seeds: the seeds averaged, in the order given.
        points: per snapshot index, the mean of the seeds' times (also per class), PSNR-Y and SSIM-Y
            (steps are the seeds' when they agree, else empty; no separate-devices time when a seed
            has none).
        psnr_range: per snapshot index, the lowest and highest PSNR-Y among the seeds.
        configs: each class's model, when the seeds agree; else empty.
    """

    name: str
    seeds: tuple[Optional[int], ...]
    points: tuple[CurvePoint, ...]
    psnr_range: tuple[tuple[float, float], ...]
    configs: tuple[str, ...] = ()

    @property
    def best_psnr(self) -> float:
        return max(p.psnr_y for p in self.points)


def mean_curve(curves: Sequence[QualityCurve], name: Optional[str] = None) -> MeanCurve:
    """The mean of several seeds' curves, snapshot by snapshot.

    Raises:
        ValueError: no curves, or curves with different snapshot counts (not seeds of one setting).

    Example:
        >>> from mmsr.evaluate_training import RunTimes
        >>> def curve(seed, psnrs):
        ...     run = RunTimes("w", "w", "mmsr", ("4-2",), ("cpu",), ("finished",), (2,), (20.0,), 20.0, seed=seed)
        ...     pts = [CurvePoint(i, (i,), 10.0 * i, 10.0 * i, p, 0.5) for i, p in enumerate(psnrs)]
        ...     return QualityCurve(run, None, tuple(pts))
        >>> m = mean_curve([curve(0, [20.0, 25.0, 26.0]), curve(1, [20.0, 24.0, 27.0])])
        >>> [p.psnr_y for p in m.points], m.psnr_range[2]
        ([20.0, 24.5, 26.5], (26.0, 27.0))
    """
    if not curves:
        raise ValueError("mean_curve needs at least one curve")
    name = name or curves[0].run.setting
    counts = {len(c.points) for c in curves}
    if len(counts) != 1:
        listed = ", ".join(f"{c.name}: {len(c.points) - 1}" for c in curves)
        raise ValueError(f"the seeds of {name!r} have different snapshot counts ({listed}); "
                         "seeds of one setting are trained with the same --snapshots")
    points, ranges = [], []
    for index in range(counts.pop()):
        at = [c.points[index] for c in curves]
        steps = at[0].steps if all(p.steps == at[0].steps for p in at) else ()
        separate = [p.separate_devices_s for p in at]
        classes = {len(p.class_times) for p in at}
        class_times = tuple(map(_mean, zip(*(p.class_times for p in at)))) if len(classes) == 1 else ()
        points.append(CurvePoint(
            index, steps,
            _mean([p.one_device_s for p in at]), None if None in separate else _mean(separate),
            _mean([p.psnr_y for p in at]), _mean([p.ssim_y for p in at]), class_times,
        ))  # fmt: skip
        ranges.append((min(p.psnr_y for p in at), max(p.psnr_y for p in at)))
    configs = curves[0].run.configs if all(c.run.configs == curves[0].run.configs for c in curves) else ()
    return MeanCurve(name, tuple(c.run.seed for c in curves), tuple(points), tuple(ranges), tuple(configs))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def geometric_mean(values: Sequence[float]) -> Optional[float]:
    """The mean of ratios that does not depend on which way they are taken; None for no values.

    Example:
        >>> round(geometric_mean([2.0, 0.5]), 6), geometric_mean([])
        (1.0, None)
    """
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


@dataclass(frozen=True)
class SeedComparison:
    """A setting's seeds, each against the baseline of its seed, and their mean curves.

    Attributes:
        pairs: (seed's curve, its baseline's curve), for the seeds that have a baseline.
        per_seed: each pair at equal quality.
        run_mean, baseline_mean: the mean curves of the paired seeds and of their baselines.
        mean: ``run_mean`` against ``baseline_mean`` at equal quality.
    """

    pairs: tuple[tuple[QualityCurve, QualityCurve], ...]
    per_seed: tuple[EqualQuality, ...]
    run_mean: MeanCurve
    baseline_mean: MeanCurve
    mean: EqualQuality


def compare_seeds(
    members: Sequence[QualityCurve], baselines: Sequence[QualityCurve], setting: Optional[str] = None
) -> Optional[SeedComparison]:
    """Each of a setting's seeds against the baseline of its seed, and the mean curve against the mean
    of those same baselines (so a setting measured on fewer seeds is not set against other seeds'
    baselines); None when no seed has a baseline."""
    pairs = tuple((m, b) for m in members if (b := baseline_curve_for(m, baselines)) is not None)
    if not pairs:
        return None
    run_mean = mean_curve([m for m, _ in pairs], setting)
    baseline_mean = mean_curve([b for _, b in pairs], "baseline")
    return SeedComparison(
        pairs, tuple(equal_quality(m, b) for m, b in pairs), run_mean, baseline_mean,
        equal_quality(run_mean, baseline_mean),
    )  # fmt: skip


def _left_out(members: Sequence[QualityCurve], comparison: SeedComparison) -> list[str]:
    """Why each seed without a per-seed speed-up has none: "seed S left out: ..."."""
    paired = {id(m): eq for (m, _), eq in zip(comparison.pairs, comparison.per_seed)}
    reasons = []
    for member in members:
        eq = paired.get(id(member))
        if eq is None:
            reasons.append(f"seed {_seed(member)} left out: no baseline of its seed")
        elif eq.one_device_speedup is None:
            reasons.append(f"seed {_seed(member)} left out: {' and '.join(eq.at_start)} at the start")
    return reasons


def _seed(curve: QualityCurve) -> str:
    return "?" if curve.run.seed is None else str(curve.run.seed)


def _ratios(values: Sequence[float], total: int, left_out: Sequence[str]) -> str:
    text = "—" if not values else f"{geometric_mean(values):.2f}×"
    if len(values) > 1:
        text += f" ({min(values):.2f}–{max(values):.2f})"
    if left_out:
        text += f"; geometric mean over {len(values)} of {total} seeds; {'; '.join(left_out)}"
    return text


def seed_report(curves: Sequence[QualityCurve], baselines: Sequence[QualityCurve]) -> str:
    """Markdown: the settings measured with several seeds, over their seeds (empty if there are none).

    ``baselines`` are the baseline's curves (one, or one per seed); each seed of a setting is compared
    with the baseline of its seed, and the setting's mean curve with the mean curve of those baselines.
    """
    groups: dict[str, list[QualityCurve]] = {}
    for curve in curves:
        groups.setdefault(curve.run.setting, []).append(curve)
    if all(len(members) < 2 for members in groups.values()):
        return ""
    base_ids = {id(b) for b in baselines}
    other_seed: list[tuple[QualityCurve, QualityCurve]] = []
    lines = [
        "### Over seeds",
        "",
        "Runs given one name are seeds of one setting. Mean curve: each snapshot's times and PSNR-Y averaged "
        "over the seeds.",
        "",
        "| setting | seeds | final PSNR-Y: mean (lowest–highest) | speed-up per seed, one device: geometric mean "
        "(lowest–highest) | mean curves: equal quality (dB) | baseline reaches it (s) | run, one device (s) "
        "| speed-up | separate devices (s, computed) | speed-up |",
        "|" + "---|" * 10,
    ]
    means, accounts = [], []
    for setting, members in groups.items():
        means.append(mean_curve(members, setting))
        finals = [m.points[-1].psnr_y for m in members]
        final = f"{sum(finals) / len(finals):.2f} ({min(finals):.2f}–{max(finals):.2f})"
        seeds = ", ".join("?" if s is None else str(s) for s in means[-1].seeds)
        if any(id(m) in base_ids for m in members):
            lines.append(f"| {_cell(setting)} | {seeds} | {final} | (baseline) | | | | | | |")
            continue
        comparison = compare_seeds(members, baselines, setting)
        if comparison is None:
            lines.append(f"| {_cell(setting)} | {seeds} | {final} | — no baseline of these seeds | | | | | | |")
            continue
        per_seed = [e.one_device_speedup for e in comparison.per_seed if e.one_device_speedup is not None]
        other_seed += [(m, b) for m, b in comparison.pairs if m.run.seed != b.run.seed]
        eq = comparison.mean
        account = step_account(comparison.run_mean, comparison.baseline_mean, eq)
        if account is not None:
            accounts.append((account, worth_along(comparison.run_mean, comparison.baseline_mean, account.klass)))
        lines.append(
            f"| {_cell(setting)} | {seeds} | {final} | "
            f"{_cell(_ratios(per_seed, len(members), _left_out(members, comparison)))} | "
            f"{eq.target_psnr:.2f} | {eq.baseline_s:.1f} | {eq.one_device_s:.1f} | "
            f"{_speedup(eq, eq.one_device_speedup)} | "
            f"{_seconds(eq.separate_devices_s)} | {_speedup(eq, eq.separate_devices_speedup)} |"
        )
    lines += [
        "",
        "| setting | snapshot | one device (s, mean) | separate devices (s, computed, mean) | PSNR-Y mean (dB) "
        "| lowest–highest |",
        "|" + "---|" * 6,
    ]
    for mean in means:
        for point, (low, high) in zip(mean.points, mean.psnr_range):
            lines.append(
                f"| {_cell(mean.name)} | {point.index} | {point.one_device_s:.1f} | "
                f"{_seconds(point.separate_devices_s)} | {point.psnr_y:.2f} | {low:.2f}–{high:.2f} |"
            )
    which = ("the baseline it was compared with in the table above (the one trained with its seed, else the only "
             "baseline, named below)") if other_seed else "the baseline trained with the same seed (the table above)"
    lines += [
        "",
        f"- **speed-up per seed**: each seed's speed-up at equal quality against {which}; "
        "geometric mean, and the lowest and highest. A seed whose curve or baseline already starts at equal "
        "quality has no speed-up and is left out of the mean; the cell counts and names it.",
        "- **mean curves**: the setting's mean curve against the mean curve of "
        + ("the baselines its seeds were compared with" if other_seed else "the baselines of the same seeds")
        + ", at the highest mean PSNR-Y both reach. A seed's own curve can reach more or less; the spread column "
        "says how far apart the seeds are.",
    ]
    for member, baseline in other_seed:
        lines.append(f"- {_cell(member.name)} has no baseline trained with its seed {_seed(member)}: it is compared "
                     f"with {_cell(baseline.name)} (seed {_seed(baseline)}), the only baseline.")
    lines.append("")
    lines += step_table([a for a, _ in accounts], title="Mean curves: where the speed-up comes from",
                        along=[w for _, w in accounts])
    return "\n".join(lines)

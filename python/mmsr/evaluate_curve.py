"""Quality against training time, and the training time each run needs to reach equal quality.

The paper claims MMSR trains faster than one 16-8 SRGAN *at about the same quality*. Training both
with the same crops and comparing wall times (the Table 3 of :mod:`mmsr.evaluate_training`) answers
that only when both end at the same quality; when one ends lower, its shorter time proves little.
This module answers it directly from runs trained with ``mmsr train --snapshots K``:

1. every snapshot of every run is assembled into a bundle (:mod:`mmsr.train.snapshots`) and
   measured on an HR folder with ``mmsr eval``'s protocol (mean PSNR-Y / SSIM-Y over the images,
   crop border = scale; no NIQE). Snapshots cover the **pixel phase only**: a run with a GAN phase
   ships the post-GAN bundle, which is no point of the curve; it is measured alongside and reported
   on a line of its own (:class:`ShippedBundle`);
2. each snapshot's training cost is its classes' training times up to it: on **one device** the
   classes' times added up (one class after another), or the longest class's time for a run whose
   classes trained at the same time sharing the device (``--concurrent``); on **separate devices**
   the longest class's time, computed, not measured, and not given for a ``--concurrent`` run (its
   class times were measured while sharing the device);
3. **equal quality** is the highest PSNR-Y that both a run and the baseline reach on their curves;
   the time each needed to first reach it is read off its curve, interpolating linearly between
   snapshots, and the speed-up is the baseline's time over the run's.

Example:
    >>> curves = measure_curves([load_run("runs/mmsr.run"), load_run("runs/base.run")],
    ...                         "data/val/set14")                                    # doctest: +SKIP
    >>> print(curve_report(curves, find_baseline([c.run for c in curves])))          # doctest: +SKIP
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import torch

from .evaluate import bundle_method, evaluate_folder, file_sha256
from .evaluate_training import RunTimes, baseline_for
from .train.snapshots import SnapshotSeries, read_series, snapshot_path

__all__ = [
    "Crossing",
    "CurvePoint",
    "EqualQuality",
    "QualityCurve",
    "ShippedBundle",
    "baseline_curve_for",
    "crossing",
    "curve_report",
    "equal_quality",
    "measure_curves",
    "time_to_quality",
]


@dataclass(frozen=True)
class CurvePoint:
    """One snapshot of a run: its steps, its training cost so far and its quality.

    ``separate_devices_s`` is None for a ``--concurrent`` run (see :attr:`RunTimes.separate_devices_s`).
    ``class_times`` are each class's training seconds up to the snapshot (empty when not known).
    """

    index: int
    steps: tuple[int, ...]
    one_device_s: float
    separate_devices_s: Optional[float]
    psnr_y: float
    ssim_y: float
    class_times: tuple[float, ...] = ()


@dataclass(frozen=True)
class ShippedBundle:
    """The bundle a run with a GAN phase ships: after its GAN steps, so no point of the pixel-phase curve.

    Attributes:
        path: the bundle file (the one the run's summary names, checked by its sha256); None if none is.
        gan_steps: per class, the GAN steps it trained after its pixel phase.
        psnr_y, ssim_y: its mean scores, measured like the snapshots; None when it was not measured.
        missing: why it was not measured (no file, or a file the run did not write), else None.
    """

    path: Optional[str]
    gan_steps: tuple[Optional[int], ...]
    psnr_y: Optional[float] = None
    ssim_y: Optional[float] = None
    missing: Optional[str] = None


@dataclass(frozen=True)
class QualityCurve:
    """A run's snapshots, measured.

    Attributes:
        run, series, points: the run, its snapshots and their measured points.
        shipped: for a run with a GAN phase, the bundle it ships (no point of the curve); else None.
        skipped: ``(image, reason)`` of the images that could not be measured for this curve (its
            means cover the others).
    """

    run: RunTimes
    series: SnapshotSeries
    points: tuple[CurvePoint, ...]
    shipped: Optional[ShippedBundle] = None
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def best_psnr(self) -> float:
        return max(p.psnr_y for p in self.points)


def _point(series: SnapshotSeries, index: int, concurrent: bool, psnr_y: float, ssim_y: float) -> CurvePoint:
    # The costs as RunTimes.one_device_s / separate_devices_s, on the class times up to the snapshot.
    snaps = series.at(index)
    times = tuple(s.elapsed_s for s in snaps)
    one_device = max(times) if concurrent else sum(times)
    separate = None if concurrent else max(times)
    return CurvePoint(index, tuple(s.step for s in snaps), one_device, separate, psnr_y, ssim_y, times)


def _check_trained(run: RunTimes) -> None:
    """A class that never started (e.g. Ctrl-C during an earlier class) has no snapshots because it did not
    train, not because the run lacked ``--snapshots``: say so, and how to finish the run."""
    run_dir = Path(run.path).parent
    for k, (config, status, steps) in enumerate(zip(run.configs, run.statuses, run.steps)):
        if status == "finished" or (status != "not run" and steps != 0):
            continue
        if not any(snapshot_path(run_dir, k, 0).parent.glob("*.safetensors")):
            raise ValueError(
                f"run {run.name!r} ({run_dir}): class {k} ({config}) did not train (status: {status}), so it has no "
                f"snapshots; the run was stopped before the class started. Finish the run ({run.resume_hint()}), "
                "then measure it"
            )


def _shipped_file(run: RunTimes) -> tuple[Optional[Path], Optional[str]]:
    """The bundle file the run's summary names, if it is there and still the run's (same sha256); else
    None and why not."""
    info = run.bundle
    if not info or not isinstance(info.get("sha256"), str):
        return None, "the run's summary names no bundle file"
    # A run folder may have moved with its bundle: the relative path finds it then.
    candidates = []
    if isinstance(info.get("path"), str):
        candidates.append(Path(info["path"]))
    if isinstance(info.get("relative"), str):
        candidates.append(Path(run.path).parent / info["relative"])
    present = [p for p in candidates if p.is_file()]
    for path in present:
        if file_sha256(path) == info["sha256"]:
            return path, None
    if present:
        return None, f"`{present[0]}` is no longer the bundle the run wrote (its sha256 differs)"
    return None, f"the bundle file is not there (`{candidates[0] if candidates else '?'}`)"


def measure_curves(
    runs: Sequence[RunTimes],
    hr_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    limit: Optional[int] = None,
    batch_size: int = 64,
    progress: bool = True,
    cache: bool = True,
) -> list[QualityCurve]:
    """Measure every snapshot of every run on ``hr_dir`` (all in one pass over the images).

    A run with a GAN phase also has the bundle it ships measured in the same pass
    (:attr:`QualityCurve.shipped`), when its file is there and still the one the run wrote.
    With ``cache`` (the default) a snapshot measured before with the same files, images and settings
    is read from its run folder instead (:mod:`mmsr.quality_cache`), and new results are stored there.
    Images that cannot be measured are skipped, named on stderr and in :attr:`QualityCurve.skipped`.

    Raises:
        ValueError: a run without snapshots, with a class that did not train or has not finished its
            pixel phase, runs of different scales, or bad evaluation settings (the message names the
            run or setting).
    """
    from . import __version__
    from .evaluate import list_images
    from .quality_cache import QualityCache, snapshot_key

    for run in runs:
        _check_trained(run)
    series = [read_series(Path(run.path).parent) for run in runs]
    for run, s in zip(runs, series):
        if not s.complete():
            raise ValueError(f"run {run.name!r} ({s.run_dir}): a class has not finished its pixel phase, so the "
                             f"run has no final snapshot; finish the run ({run.resume_hint()})")
    scales = {s.scale for s in series}
    if len(scales) != 1:
        raise ValueError(f"the runs upscale by different factors {sorted(scales)}; compare runs of one scale")
    scale = scales.pop()
    if limit is not None and limit < 1:  # checked here too: a fully cached report never reaches evaluate_folder
        raise ValueError(f"--limit must be >= 1, got {limit}")
    images = list_images(hr_dir)[:limit]
    caches = [QualityCache(s.run_dir) if cache else None for s in series]
    scores: dict[str, tuple[float, float]] = {}
    keys: dict[str, tuple[QualityCache, str]] = {}
    to_measure = []
    shipped: dict[str, ShippedBundle] = {}

    def measure(label: str, method, files: Sequence[Path], store: Optional[QualityCache]) -> None:
        if store is not None:
            key = snapshot_key(files, images, method.describe(), version=__version__, crop_border=scale)
            hit = store.get(key)
            if hit is not None:
                scores[label] = (hit["psnr_y"], hit["ssim_y"])
                return
            keys[label] = (store, key)
        to_measure.append(method)

    for run, s, store in zip(runs, series, caches):
        for index in range(s.count + 1):
            method = bundle_method(f"{run.name}@{index}", s.bundle(index), device=device, batch_size=batch_size)
            measure(method.name, method, [c.path for c in s.at(index)], store)
        if run.gan_phase:
            path, missing = _shipped_file(run)
            shipped[run.name] = ShippedBundle(None if path is None else str(path), run.gan_steps, missing=missing)
            if path is not None:
                method = bundle_method(f"{run.name}@shipped", path, device=device, batch_size=batch_size)
                measure(method.name, method, [path], store)
    skipped: tuple[tuple[str, str], ...] = ()
    if to_measure:
        result = evaluate_folder(
            hr_dir, to_measure, scale=scale, with_niqe=False, limit=limit, device=device, progress=progress
        )
        if not result.images:
            raise ValueError(f"no image of {str(hr_dir)!r} could be evaluated")
        skipped = tuple(result.failed)
        means = result.mean()
        for method in to_measure:
            m = means[method.name]
            scores[method.name] = (m.psnr_y, m.ssim_y)
            # Only a result over every image stands for the folder next time.
            if method.name in keys and not result.failed:
                store, key = keys[method.name]
                store.put(key, psnr_y=m.psnr_y, ssim_y=m.ssim_y, images=len(result.images))
        for store in caches:
            if store is not None:
                try:
                    store.save()
                except OSError as err:  # a read-only run folder: the report still stands, uncached
                    print(f"mmsr: could not keep the measured scores in {store.path}: {err}", file=sys.stderr)
    measured = {m.name for m in to_measure}
    curves = []
    for run, s in zip(runs, series):
        points = []
        for index in range(s.count + 1):
            points.append(_point(s, index, run.concurrent, *scores[f"{run.name}@{index}"]))
        ship = shipped.get(run.name)
        if ship is not None and ship.path is not None:
            psnr_y, ssim_y = scores[f"{run.name}@shipped"]
            ship = replace(ship, psnr_y=psnr_y, ssim_y=ssim_y)
        labels = {f"{run.name}@{i}" for i in range(s.count + 1)} | {f"{run.name}@shipped"}
        curves.append(QualityCurve(run, s, tuple(points), ship, skipped if labels & measured else ()))
    return curves


def time_to_quality(points: Sequence[CurvePoint], target: float, cost: str = "one_device_s") -> Optional[float]:
    """The training time at which a curve first reaches ``target`` dB, linear between snapshots.

    ``cost`` is ``"one_device_s"`` or ``"separate_devices_s"``. None if the curve never reaches it, or
    has no such cost (a ``--concurrent`` run's separate-devices time).

    Example:
        >>> pts = [CurvePoint(0, (0,), 0.0, 0.0, 20.0, 0.5), CurvePoint(1, (10,), 100.0, 100.0, 26.0, 0.7)]
        >>> time_to_quality(pts, 23.0)
        50.0
    """
    if any(getattr(point, cost) is None for point in points):
        return None
    where = crossing(points, target)
    return None if where is None else where.of(lambda point: getattr(point, cost))


@dataclass(frozen=True)
class Crossing:
    """Where a curve first reaches a quality: ``share`` of the way from snapshot ``index - 1`` to ``index``.

    ``share`` is 1 when the snapshot itself is the first to reach it (always at index 0).
    """

    points: tuple[CurvePoint, ...]
    index: int
    share: float

    def of(self, value) -> float:
        """``value(point)`` at the crossing, linear between the two snapshots."""
        after = value(self.points[self.index])
        if self.index == 0 or self.share == 1.0:
            return after
        before = value(self.points[self.index - 1])
        return before + self.share * (after - before)


def crossing(points: Sequence[CurvePoint], target: float) -> Optional[Crossing]:
    """Where ``points`` first reach ``target`` dB, linear in PSNR-Y between snapshots; None if never.

    Only each point's ``psnr_y`` is read, so other records with that attribute work too.

    Example:
        >>> pts = [CurvePoint(0, (0,), 0.0, 0.0, 20.0, 0.5), CurvePoint(1, (10,), 100.0, 100.0, 26.0, 0.7)]
        >>> where = crossing(pts, 23.0)
        >>> where.index, where.share, where.of(lambda p: p.steps[0])
        (1, 0.5, 5.0)
    """
    points = tuple(points)
    for index, point in enumerate(points):
        if point.psnr_y >= target:
            if index == 0:
                return Crossing(points, 0, 1.0)
            previous = points[index - 1]
            return Crossing(points, index, (target - previous.psnr_y) / (point.psnr_y - previous.psnr_y))
    return None


@dataclass(frozen=True)
class EqualQuality:
    """A run against the baseline at the highest PSNR-Y both reach."""

    run: str
    target_psnr: float
    limited_by: str
    baseline_s: float
    one_device_s: float
    separate_devices_s: Optional[float]  # None for a --concurrent run
    # A curve that starts at or above the target (a warm start, or a target set low by the other
    # run) reaches it at its first snapshot: there is no training time to compare.
    at_start: tuple[str, ...] = ()

    @property
    def one_device_speedup(self) -> Optional[float]:
        return None if self.at_start else self.baseline_s / self.one_device_s

    @property
    def separate_devices_speedup(self) -> Optional[float]:
        if self.at_start or self.separate_devices_s is None:
            return None
        return self.baseline_s / self.separate_devices_s


def equal_quality(curve, baseline) -> EqualQuality:
    """``curve`` against ``baseline`` at the highest PSNR-Y both curves reach.

    Either may be a :class:`QualityCurve` or a seed-averaged curve (:class:`mmsr.evaluate_seeds.MeanCurve`):
    anything with ``name``, ``points`` and ``best_psnr``.
    """
    target = min(curve.best_psnr, baseline.best_psnr)
    limited_by = curve.name if curve.best_psnr <= baseline.best_psnr else baseline.name
    at_start = tuple(c.name for c in (curve, baseline) if c.points[0].psnr_y >= target)
    # Both curves reach their own best, so neither time can be None.
    return EqualQuality(
        run=curve.name,
        target_psnr=target,
        limited_by=limited_by,
        baseline_s=time_to_quality(baseline.points, target),
        one_device_s=time_to_quality(curve.points, target),
        separate_devices_s=time_to_quality(curve.points, target, "separate_devices_s"),
        at_start=at_start,
    )


def baseline_curve_for(curve: QualityCurve, baselines: Sequence[QualityCurve]) -> Optional[QualityCurve]:
    """The baseline curve ``curve`` is compared with: its seed's, or the only one (see
    :func:`mmsr.evaluate_training.baseline_for`); None if neither."""
    chosen = baseline_for(curve.run, [b.run for b in baselines])
    return next((b for b in baselines if b.run is chosen), None)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _speedup(eq: EqualQuality, value: Optional[float]) -> str:
    if value is not None:
        return f"{value:.2f}×"
    return f"— ({' and '.join(eq.at_start)} at the start)" if eq.at_start else "—"


def _seconds(value: Optional[float]) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if value >= 10 else f"{value:.3g}"


def _steps_text(steps: Sequence[Optional[int]]) -> str:
    if len(set(steps)) == 1 and steps[0] is not None:
        return f"{steps[0]} GAN steps per class"
    return "GAN steps per class " + " · ".join("?" if n is None else str(n) for n in steps)


def _shipped_line(curve: QualityCurve) -> str:
    name = _cell(curve.name)
    ship = curve.shipped
    if ship is None:
        return f"- **{name}**: no GAN phase, so its last snapshot holds the generators the run ships."
    line = (f"- **{name}**: after its pixel phase the run trained {_steps_text(ship.gan_steps)} (Table 3's times "
            "include them, the curve's do not); the bundle it ships is the post-GAN one and is not a point of this "
            "curve")
    if ship.psnr_y is None:
        return line + f" (not measured: {ship.missing})."
    return line + (f": `{ship.path}`, measured like the snapshots: PSNR-Y {ship.psnr_y:.2f} dB, "
                   f"SSIM-Y {ship.ssim_y:.4f}.")


def _skipped_lines(curves: Sequence[QualityCurve]) -> list[str]:
    skipped = dict(pair for curve in curves for pair in curve.skipped)
    if not skipped:
        return []
    lines = [f"#### Skipped images ({len(skipped)})", "",
             "These images could not be measured and are left out of every mean above:", ""]
    return lines + [f"- `{name}`: {reason}" for name, reason in skipped.items()] + [""]


def curve_report(
    curves: Sequence[QualityCurve], baseline, hr_dir: str = "", images: Optional[tuple[int, int]] = None
) -> str:
    """Markdown: each run's curve, what each run ships, then each run against the baseline at equal quality.

    ``baseline`` is one curve, the curves of a baseline's seeds (each run is then compared with the
    baseline of its seed, :func:`mmsr.evaluate_training.baseline_for`), or None. ``images`` is
    ``(measured, in the folder)``: when fewer were measured (``--limit``) the heading says so.
    Images that could not be measured (:attr:`QualityCurve.skipped`) are listed.

    Example:
        >>> curve_report([], None, "val/set5", images=(1, 5)).splitlines()[0]
        '### Quality against training time on `val/set5` (the first 1 of its 5 images only)'
    """
    from .evaluate_steps import step_account, step_table, worth_along  # here: that module builds on this one

    baselines = [] if baseline is None else [baseline] if isinstance(baseline, QualityCurve) else list(baseline)
    where = f" on `{hr_dir}`" if hr_dir else ""
    if images is not None and images[0] < images[1]:
        where += f" (the first {images[0]} of its {images[1]} images only)"
    lines = [
        f"### Quality against training time{where}",
        "",
        "Each snapshot is every class's generator at the same share of its pixel-phase budget (0: the start; "
        "the last: the end of the pixel phase). The curve covers the pixel phase only: its times are the "
        "classes' pixel-phase training times up to the snapshot, while Table 3's class times also hold any "
        "GAN phase.",
        "",
        "| run | snapshot | steps per class | one device (s) | separate devices (s, computed) | PSNR-Y (dB) | SSIM-Y |",
        "|---|---|---|---|---|---|---|",
    ]
    for curve in curves:
        for p in curve.points:
            lines.append(
                f"| {_cell(curve.run.name)} | {p.index}/{curve.series.count} | {' · '.join(map(str, p.steps))} | "
                f"{_seconds(p.one_device_s)} | {_seconds(p.separate_devices_s)} | {p.psnr_y:.2f} | {p.ssim_y:.4f} |"
            )
    lines += ["", "What each run ships:", ""] + [_shipped_line(curve) for curve in curves] + [""]
    lines += _skipped_lines(curves)
    other_seed = []
    accounts = []
    if not baselines:
        lines.append("No baseline run among the inputs, so no equal-quality comparison.")
    else:
        names = ", ".join(_cell(b.name) for b in baselines)
        lines += [
            f"### Training time at equal quality (baseline: {names})",
            "",
            "| run | equal quality: PSNR-Y (dB) | set by | baseline reaches it (s) | run reaches it, one device (s) "
            "| speed-up | separate devices (s, computed) | speed-up |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for curve in curves:
            if any(curve is b for b in baselines):
                continue
            chosen = baseline_curve_for(curve, baselines)
            if chosen is None:
                lines.append(f"| {_cell(curve.name)} | — no baseline trained with seed {curve.run.seed} | | | | | | |")
                continue
            if None not in (curve.run.seed, chosen.run.seed) and curve.run.seed != chosen.run.seed:
                other_seed.append((curve, chosen))
            eq = equal_quality(curve, chosen)
            account = step_account(curve, chosen, eq)
            if account is not None:
                accounts.append((account, worth_along(curve, chosen, account.klass)))
            lines.append(
                f"| {_cell(eq.run)} | {eq.target_psnr:.2f} | {_cell(eq.limited_by)} | {_seconds(eq.baseline_s)} | "
                f"{_seconds(eq.one_device_s)} | {_speedup(eq, eq.one_device_speedup)} | "
                f"{_seconds(eq.separate_devices_s)} | {_speedup(eq, eq.separate_devices_speedup)} |"
            )
    lines += [
        "",
        "- **one device**: the classes' training times up to the snapshot added up (one class after another); "
        "for a run trained with `--concurrent` (classes at the same time, sharing the device) the longest "
        "class's time, measured, as Table 3 gives it.",
        "- **separate devices (computed)**: the longest class's time up to the snapshot, as if each class had a "
        "device of its own; computed from the per-class timings, not measured. None (—) for a `--concurrent` "
        "run: its class times were measured while sharing the device, so none says what a class takes alone.",
        "- **equal quality**: the highest mean PSNR-Y both the run and the baseline reach (\"set by\": the run "
        "whose best it is). The time to first reach it is read off each curve, linear between snapshots; "
        "speed-up = the baseline's time ÷ the run's. A curve that already starts at that quality (a warm "
        "start) leaves nothing to compare, and the speed-up says so.",
        "- PSNR-Y / SSIM-Y: BT.601 luma, the scale cropped from every side, mean over the images "
        "(`mmsr eval`'s protocol); curves are not smooth where BatchNorm statistics move between snapshots.",
    ]
    if len(baselines) > 1:
        lines.append("- **seeds**: each run is compared with the baseline trained with its `--seed`.")
    for curve, chosen in other_seed:
        lines.append(f"- {_cell(curve.name)} has no baseline trained with its seed {curve.run.seed}: it is compared "
                     f"with {_cell(chosen.name)} (seed {chosen.run.seed}), the only baseline.")
    lines.append("")
    lines += step_table([a for a, _ in accounts], along=[w for _, w in accounts])
    return "\n".join(lines)

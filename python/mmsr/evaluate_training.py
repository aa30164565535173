"""The paper's Table 3 from training summaries: each run's training time and its ratio to the 16-8 baseline.

`mmsr train` writes ``summary.json`` into its run folder (:mod:`mmsr.train.report`). From each
summary this module takes the run's measured wall time and every class's own training time, and
tabulates three times per run, each with its ratio to the baseline's time in the same column:

- **wall time (measured)**: the ``mmsr train`` invocation, start to end, as the summary records it
  (after ``--resume``, the last session only);
- **one device**: the classes' training times added up, i.e. one device training one class after
  another. A run trained with ``--concurrent`` trained its classes at the same time, sharing the
  device, so its one-device cost is measured: the longest class's time, which spans all of them
  (the wall time also holds the set-up the class times leave out);
- **separate devices (computed)**: the longest class's time, as if each class had a device of its
  own. It is computed from the per-class times, not measured, and the table says so. A
  ``--concurrent`` run gets none: its class times were measured while sharing the device, so none
  of them says what a class takes on a device of its own.

A ratio is only given where both times are whole: none for the wall time of a resumed run (or
against a resumed baseline), and none at all for a run (or against a baseline) with an unfinished
class, whose times are partial. The table shows those times and says why their ratios are "—".

The baseline is the run whose summary has ``mode == "baseline"`` (``mmsr train --baseline``), or
else the one run with a single 16-8 class; ``baseline=`` picks one by name.

**Seeds.** Runs given one name (``mmsr_w=runs/s1/mmsr_w.run mmsr_w=runs/s2/mmsr_w.run``) are seeds
of one setting (:func:`label_seeds` names them "mmsr_w (seed 1)", ...), and so may the baselines
be; each run's ratios are then taken against the baseline trained with its seed
(:func:`baseline_for`). Runs sharing a name must be seeds of one setting: the same mode, models
and step budgets (:func:`label_seeds` refuses others, naming what differs).

Example:
    >>> runs = [load_run("base=runs/srgan.run"), load_run("runs/mmsr.run")]  # doctest: +SKIP
    >>> print(training_table(runs, find_baseline(runs)))                     # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import os
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Tuple

from .models import ModelConfig

__all__ = ["RunTimes", "baseline_for", "find_baseline", "find_baselines", "label_seeds", "load_run", "training_table"]

_SUMMARY = "summary.json"


@dataclass(frozen=True)
class RunTimes:
    """One training run's timings, as read from its summary.json.

    Attributes:
        name: the run's name in the table.
        path: the summary file.
        mode: "mmsr" or "baseline".
        configs, devices, statuses, steps: per class, smooth -> complex.
        class_times: per class, its training time in seconds over all sessions; None if unknown.
        wall_time_s: the invocation that wrote the summary, start to end; None if unknown.
        resumed: the invocation resumed an earlier one, so ``wall_time_s`` covers only its last session.
        concurrent: the classes trained at the same time, sharing the devices (``--concurrent``).
        seed: the run's ``--seed``; None if the summary does not say.
        group: the name shared by several seeds of one setting (see :func:`label_seeds`); None for a
            run on its own.
        pixel_budget, gan_budget: per class, the pixel and GAN steps it was given (``--pixel-steps``,
            ``--gan-steps``); None if the summary does not say.
        gan_steps: per class, the GAN steps it trained; empty if the summary does not say.
        bundle: the summary's ``bundle`` entry (``path``, ``relative``, ``sha256``); None when the run
            wrote none.
        command, cwd: the ``mmsr train`` command as typed and where it ran; None if unknown.
        class_crops: ``--class-crops`` ("own", the paper's, also for summaries older than the option).
    """

    name: str
    path: str
    mode: str
    configs: Tuple[str, ...]
    devices: Tuple[str, ...]
    statuses: Tuple[str, ...]
    steps: Tuple[Optional[int], ...]
    class_times: Tuple[Optional[float], ...]
    wall_time_s: Optional[float]
    resumed: bool = False
    concurrent: bool = False
    seed: Optional[int] = None
    group: Optional[str] = None
    pixel_budget: Optional[Tuple[int, ...]] = None
    gan_budget: Optional[Tuple[int, ...]] = None
    gan_steps: Tuple[Optional[int], ...] = ()
    bundle: Optional[dict] = None
    command: Optional[Tuple[str, ...]] = None
    cwd: Optional[str] = None
    class_crops: str = "own"

    @property
    def mode_text(self) -> str:
        """The mode as the tables show it: an MMSR run's classes on more than their own crops say so."""
        return f"{self.mode}, class crops {self.class_crops}" if self.class_crops != "own" else self.mode

    @property
    def setting(self) -> str:
        """The name of the setting this run is a seed of (its own name for a run on its own)."""
        return self.group or self.name

    @property
    def complete(self) -> bool:
        """Every class has a training time."""
        return all(t is not None for t in self.class_times)

    @property
    def finished(self) -> bool:
        """Every class finished, so its times are whole (an interrupted class's are partial)."""
        return all(s == "finished" for s in self.statuses)

    @property
    def sum_s(self) -> Optional[float]:
        """The classes' times added up (one device, one class after another); None if any is missing."""
        return sum(self.class_times) if self.complete else None

    @property
    def max_s(self) -> Optional[float]:
        """The longest class's time; None if any is missing."""
        return max(self.class_times) if self.complete else None

    @property
    def one_device_s(self) -> Optional[float]:
        """The cost of training every class on one device: the class times added up (one class after
        another), or for a ``concurrent`` run the longest class's time (they trained at the same time,
        sharing it: measured). None if any class time is missing."""
        return self.max_s if self.concurrent else self.sum_s

    @property
    def separate_devices_s(self) -> Optional[float]:
        """The longest class's time, as if each class had a device of its own (computed); None for a
        ``concurrent`` run, whose class times were measured while sharing the device, or if any is missing."""
        return None if self.concurrent else self.max_s

    @property
    def gan_phase(self) -> bool:
        """Some class trained GAN steps after its pixel phase, so the bundle it ships is the post-GAN one."""
        return any(n for n in self.gan_steps)

    def resume_hint(self) -> str:
        """How to finish this run: its ``mmsr train`` command again with ``--resume``, from where it ran.

        Example:
            >>> run = RunTimes("m", "m.run/summary.json", "mmsr", ("4-2",), ("cpu",), ("interrupted",), (3,),
            ...                (None,), 5.0, command=("/usr/bin/mmsr", "train", "data", "--out", "m.safetensors"),
            ...                cwd="/work")
            >>> run.resume_hint()
            'run `mmsr train data --out m.safetensors --resume` from /work'
        """
        if not self.command:
            return "run the `mmsr train` command that started it again with --resume"
        words = list(self.command)
        if os.path.basename(words[0]) == "mmsr":
            words[0] = "mmsr"
        if "--resume" not in words:
            words.append("--resume")
        return f"run `{shlex.join(words)}`" + (f" from {self.cwd}" if self.cwd else "")

    @property
    def is_baseline(self) -> bool:
        """A baseline run: ``mode == "baseline"``, or a single class whose model is 16-8 (any width)."""
        if self.mode == "baseline":
            return True
        if len(self.configs) != 1:
            return False
        try:
            config = ModelConfig.parse(self.configs[0])
        except ValueError:
            return False
        return (config.blocks, config.disc_layers) == (16, 8)


def _time(value, where: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} should be a number of seconds >= 0 or null, got {value!r}")
    return float(value)


def _default_name(path: Path) -> str:
    # `mmsr train --out NAME.safetensors` keeps its run in NAME.run/: the table shows NAME.
    folder = path.parent.name or str(path)
    return folder[: -len(".run")] if folder.endswith(".run") and len(folder) > len(".run") else folder


def load_run(spec: str | os.PathLike) -> RunTimes:
    """Read one run's timings from ``[NAME=]PATH``, PATH being a run folder or its summary.json.

    The name defaults to the run folder's name without its ``.run`` suffix.

    Raises:
        FileNotFoundError: no summary.json at PATH; for a run folder that holds ``mmsr train``'s other
            files (plan.json, logs) the message says the run did not finish and how to resume it.
        ValueError: the file is not JSON or lacks the per-class timings (the message names it).

    Example:
        >>> load_run("base=runs/srgan.run").name                            # doctest: +SKIP
        'base'
    """
    text = str(spec)
    name, sep, rest = text.partition("=")
    named = bool(sep and name and "/" not in name and os.sep not in name)
    path = Path(rest if named else text)
    if path.is_dir():
        path = path / _SUMMARY
    if not path.is_file():
        raise FileNotFoundError(_missing_summary(path))
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not a JSON training summary: {err}") from None
    classes = summary.get("classes") if isinstance(summary, dict) else None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, dict) for c in classes):
        raise ValueError(f"{str(path)!r} has no per-class entries ('classes'); is it a summary.json from mmsr train?")
    settings = summary.get("settings") if isinstance(summary.get("settings"), dict) else {}
    seed = settings.get("seed")
    command = summary.get("command") or settings.get("command")
    return RunTimes(
        name=name if named else _default_name(path),
        path=str(path),
        mode=str(summary.get("mode", "mmsr")),
        configs=tuple(str(c.get("config", "?")) for c in classes),
        devices=tuple(str(c.get("device", "?")) for c in classes),
        statuses=tuple(str(c.get("status", "?")) for c in classes),
        steps=tuple(c.get("steps") for c in classes),
        class_times=tuple(
            _time(c.get("wall_time_s"), f"{path}: classes[{i}].wall_time_s") for i, c in enumerate(classes)
        ),
        wall_time_s=_time(summary.get("wall_time_s"), f"{path}: wall_time_s"),
        resumed=bool(settings.get("resume", False)),
        concurrent=bool(settings.get("concurrent", False)),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        pixel_budget=_budget(settings.get("pixel_steps")),
        gan_budget=_budget(settings.get("gan_steps")),
        gan_steps=tuple(_count(c.get("gan_steps")) for c in classes),
        bundle=summary.get("bundle") if isinstance(summary.get("bundle"), dict) else None,
        command=tuple(map(str, command)) if isinstance(command, list) and command else None,
        cwd=str(summary["cwd"]) if isinstance(summary.get("cwd"), str) else None,
        class_crops=str(settings.get("class_crops") or "own"),
    )


def _count(value) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _budget(value) -> Optional[Tuple[int, ...]]:
    # Per-class step budgets as settings records them (a list); a bare number is every class's.
    if isinstance(value, list) and all(_count(v) is not None for v in value):
        return tuple(value)
    return (value,) if _count(value) is not None else None


def _missing_summary(path: Path) -> str:
    """Why there is no summary.json at ``path``, and what to do about it."""
    folder = path.parent
    found = [name for name in ("plan.json", "logs", "checkpoints", "snapshots") if (folder / name).exists()]
    if not found:
        return f"{str(path)!r}: no training summary here (expected an `mmsr train` run folder or its {_SUMMARY})"
    return (
        f"{str(folder)!r} is an `mmsr train` run folder ({', '.join(found)}) without {_SUMMARY}: the run did not "
        "finish. `mmsr train` writes the summary when it ends, also on Ctrl-C, so it was killed before that "
        "(kill -9, out of memory, the machine went down), unless it is still training. Finish it by running the "
        "same `mmsr train` command again with --resume; it continues from the last checkpoints and writes the summary"
    )


def label_seeds(runs: Sequence[RunTimes]) -> list[RunTimes]:
    """Runs that share a name become seeds of one setting: named "NAME (seed S)", grouped as NAME.

    Runs with names of their own are returned as they are.

    Raises:
        ValueError: runs sharing a name whose seeds are unknown or the same, or that are not one
            setting: their mode (baseline or not), class crops, models or step budgets differ (the message names
            the field and the runs).

    Example:
        >>> a = RunTimes("w", "a", "mmsr", ("4-2",), ("cpu",), ("finished",), (1,), (1.0,), 1.0, seed=1)
        >>> [r.name for r in label_seeds([a, replace(a, path="b", seed=2)])]
        ['w (seed 1)', 'w (seed 2)']
    """
    names = [r.name for r in runs]
    out = []
    for run in runs:
        if names.count(run.name) == 1:
            out.append(run)
            continue
        same = [r for r in runs if r.name == run.name]
        _check_one_setting(run.name, same)
        seeds = [r.seed for r in same]
        if None in seeds or len(set(seeds)) != len(seeds):
            listed = ", ".join(f"{r.path} (seed {r.seed if r.seed is not None else 'unknown'})" for r in same)
            raise ValueError(
                f"several runs are named {run.name!r}: runs that share a name are seeds of one setting and need "
                f"distinct known seeds, got {listed}; give them names of their own with NAME=RUN"
            )
        out.append(replace(run, name=f"{run.name} (seed {run.seed})", group=run.name))
    return out


# What makes runs seeds of one setting: (what a message calls it, its value as text).
_SETTING_FIELDS = (
    ("modes (baseline or not)", lambda r: r.mode),
    ("class crops (--class-crops)", lambda r: r.class_crops),
    ("models", lambda r: " · ".join(r.configs)),
    ("pixel-step budgets (--pixel-steps)", lambda r: _steps_text(r.pixel_budget)),
    ("GAN-step budgets (--gan-steps)", lambda r: _steps_text(r.gan_budget)),
)


def _steps_text(steps: Optional[Tuple[int, ...]]) -> str:
    return "unknown" if steps is None else " · ".join(map(str, steps))


def _check_one_setting(name: str, same: Sequence[RunTimes]) -> None:
    for label, value in _SETTING_FIELDS:
        values = [value(r) for r in same]
        if len(set(values)) > 1:
            listed = ", ".join(f"{r.path} ({v})" for r, v in zip(same, values))
            raise ValueError(
                f"several runs are named {name!r}, so they would be seeds of one setting, but their {label} differ: "
                f"{listed}; give them names of their own with NAME=RUN"
            )


def find_baselines(runs: Sequence[RunTimes], name: Optional[str] = None) -> list[RunTimes]:
    """The baseline runs: one run, or the seeds of one setting (see :func:`label_seeds`).

    Args:
        runs: the runs of the table.
        name: pick the run, or the setting whose seeds these are, by name; by default the runs that
            are baselines (:attr:`RunTimes.is_baseline`), which must all be seeds of one setting.

    Returns:
        the baselines (empty when no run is one).

    Raises:
        ValueError: ``name`` is not a run or setting, or baselines of several settings and none named.
    """
    if name is not None:
        chosen = [r for r in runs if name in (r.name, r.group)]
        if not chosen:
            raise ValueError(f"--baseline {name!r} is not one of the runs ({', '.join(r.name for r in runs)})")
        return chosen
    baselines = [r for r in runs if r.is_baseline]
    settings = sorted({r.setting for r in baselines})
    if len(settings) > 1:
        raise ValueError(
            f"several runs are baselines ({', '.join(r.name for r in baselines)}); pick one with --baseline NAME"
        )
    return baselines


def baseline_for(run: RunTimes, baselines: Sequence[RunTimes]) -> Optional[RunTimes]:
    """The baseline ``run`` is compared with: the one of its seed, or the only one; None if neither.

    Example:
        >>> b1 = RunTimes("b", "b1", "baseline", ("16-8",), ("cpu",), ("finished",), (1,), (1.0,), 1.0, seed=1)
        >>> b2 = replace(b1, path="b2", seed=2)
        >>> baseline_for(replace(b1, name="m", mode="mmsr", seed=2), [b1, b2]) is b2
        True
    """
    if run.seed is not None:
        for baseline in baselines:
            if baseline.seed == run.seed:
                return baseline
    return baselines[0] if len(baselines) == 1 else None


def find_baseline(runs: Sequence[RunTimes], name: Optional[str] = None) -> Optional[RunTimes]:
    """The one run that ratios are taken against (:func:`find_baselines` for seeds of one setting).

    Returns:
        the baseline, or None when no run is one.

    Raises:
        ValueError: ``name`` is not a run, several runs are baselines and none was named, or the
            baseline has several seeds.

    Example:
        >>> find_baseline([], None) is None
        True
    """
    baselines = find_baselines(runs, name)
    if len(baselines) > 1:
        raise ValueError(
            f"several runs are baselines ({', '.join(r.name for r in baselines)}); pick one with --baseline NAME"
        )
    return baselines[0] if baselines else None


def _seconds(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.1f}"


def _ratio(value: Optional[float], reference: Optional[float]) -> str:
    if value is None or reference is None or reference <= 0:
        return "—"
    return f"{value / reference:.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def training_table(runs: Sequence[RunTimes], baseline: RunTimes | Sequence[RunTimes] | None) -> str:
    """The Markdown Table 3: one row per run, then one per class, then what each column means.

    Each ratio divides a run's time by the baseline's time in the same column; the per-class ratio
    divides by the baseline's one-device time. ``baseline`` may be the seeds of one setting
    (:func:`find_baselines`): each run is then divided by the baseline of its seed
    (:func:`baseline_for`), and a run without one gets no ratios. Partial times get no ratio: a
    resumed run's wall time (its last session), and every time of an unfinished run or class, on
    either side of the ratio; the notes under the table say which and why. A ``--concurrent`` run's
    one-device time is its longest class's, and it has no separate-devices time
    (:attr:`RunTimes.one_device_s`, :attr:`RunTimes.separate_devices_s`).

    Example:
        >>> base = RunTimes("base", "b.json", "baseline", ("16-8",), ("cpu",), ("finished",), (100,), (50.0,), 55.0)
        >>> mmsr = RunTimes("mmsr", "m.json", "mmsr", ("2-2", "8-6"), ("cpu", "cpu"), ("finished",) * 2,
        ...                 (50, 50), (10.0, 20.0), 33.0)
        >>> training_table([base, mmsr], base).splitlines()[7]
        '| mmsr | mmsr | 2-2 · 8-6 | cpu | 33.0 | 0.60 | 30.0 | 0.60 | 20.0 | 0.40 |'
        >>> shared = replace(mmsr, name="shared", concurrent=True)
        >>> training_table([base, shared], base).splitlines()[7]
        '| shared | mmsr | 2-2 · 8-6 | cpu | 33.0 | 0.60 | 20.0 ‡ | 0.40 | — | — |'

    Raises:
        ValueError: two runs share a name.
    """
    names = [r.name for r in runs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"run names must be distinct, got {', '.join(repeated)} more than once (use NAME=PATH)")
    baselines = [] if baseline is None else [baseline] if isinstance(baseline, RunTimes) else list(baseline)
    lines = ["# Training time (the paper's Table 3)", ""]
    if not baselines:
        lines += ["No baseline run among these (mode \"baseline\" or a single 16-8 class), so no ratios.", ""]
    elif len(baselines) == 1:
        lines += [f"Baseline: **{_cell(baselines[0].name)}** ({' · '.join(baselines[0].configs)}). "
                  "Each ratio is the run's time ÷ the baseline's time in the same column.", ""]
    else:
        lines += [f"Baselines: {', '.join(f'**{_cell(b.name)}**' for b in baselines)} "
                  f"({' · '.join(baselines[0].configs)}). Each ratio is the run's time ÷ the time of the baseline "
                  "trained with the run's seed, in the same column.", ""]

    partial_wall, partial_all = [], []

    def reference(run: RunTimes) -> tuple:
        # The baseline's times of each column, None where a ratio against them would mislead.
        chosen = baseline_for(run, baselines)
        if chosen is None:
            return None, None, None
        if not (run.finished and chosen.finished):
            partial_all.append(run.name)
            return None, None, None
        if run.resumed or chosen.resumed:
            partial_wall.append(run.name)
            return None, chosen.one_device_s, chosen.separate_devices_s
        return chosen.wall_time_s, chosen.one_device_s, chosen.separate_devices_s

    lines += [
        "| run | mode | models | devices | wall time (s, measured) | × baseline | one device (s) "
        "| × baseline | separate devices (s, computed) | × baseline |",
        "|" + "---|" * 10,
    ]
    for run in runs:
        wall = _seconds(run.wall_time_s) + (" †" if run.resumed else "")
        one_device = _seconds(run.one_device_s) + (" ‡" if run.concurrent else "")
        ref = reference(run)
        lines.append(
            "| "
            + " | ".join(
                [
                    _cell(run.name),
                    run.mode_text,
                    " · ".join(run.configs),
                    ", ".join(sorted(set(run.devices))),
                    wall,
                    _ratio(run.wall_time_s, ref[0]),
                    one_device,
                    _ratio(run.one_device_s, ref[1]),
                    _seconds(run.separate_devices_s),
                    _ratio(run.separate_devices_s, ref[2]),
                ]
            )
            + " |"
        )
    lines += ["", "## Per class", "", "| run | class | model | device | status | steps | time (s) | × baseline |",
              "|" + "---|" * 8]
    for run in runs:
        chosen = baseline_for(run, baselines)
        base_time = chosen.one_device_s if chosen is not None and chosen.finished else None
        for k, (config, device, status, steps, seconds) in enumerate(
            zip(run.configs, run.devices, run.statuses, run.steps, run.class_times)
        ):
            whole = status == "finished"
            cells = [_cell(run.name), str(k), config, device, status, "—" if steps is None else str(steps),
                     _seconds(seconds), _ratio(seconds if whole else None, base_time)]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "- **wall time (measured)**: the `mmsr train` invocation that wrote the summary, start to end, "
        "including data loading and set-up. † marks a resumed run: the last session only.",
        "- **one device**: each class's own training time (all sessions) added up: the cost of training the "
        "classes one after another on one device.",
        "- **separate devices (computed)**: the longest class's training time, as if each class had a device "
        "of its own. Computed from the per-class timings, not measured.",
        "- — : not available (a class that did not finish or was not timed).",
    ]
    for run in (r for r in runs if r.concurrent):
        devices = sorted(set(run.devices))
        where = (f"on {devices[0]}" if len(devices) == 1 else
                 f"sharing {', '.join(devices)}: the cost on those {len(devices)} devices, not on one")
        lines.append(
            f"- ‡ {_cell(run.name)} trained its classes concurrently (`--concurrent`) {where}. Its one-device time "
            "is measured, not summed: the longest class's training time, which spans the training of all of them "
            "(the wall time adds the set-up). It has no separate-devices time: each class's time was measured "
            "while the others shared its device, so the longest of them is not what a class takes on a device of "
            "its own, and nothing measured says what that would be. Its per-class times are measured while sharing."
        )
    unfinished = [f"{r.name} class {k}" for r in runs for k, s in enumerate(r.statuses) if s != "finished"]
    if unfinished:
        lines.append(f"- Not finished, so their times are partial and get no ratio: {', '.join(unfinished)}.")
    if partial_all:
        lines.append(f"- No ratios for {', '.join(map(_cell, partial_all))}: the run or its baseline has an "
                     "unfinished class, so its times are partial, not a whole training's.")
    if partial_wall:
        lines.append(f"- No wall-time ratio for {', '.join(map(_cell, partial_wall))}: the run or its baseline was "
                     "resumed (†), so its wall time covers the last session only; the class times cover all "
                     "sessions and keep their ratios.")
    return "\n".join(lines) + "\n"

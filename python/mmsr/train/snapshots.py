"""Snapshots of the pixel phase: each class's generator at evenly spaced points of its budget.

The paper's speed claim is about training time *at equal quality*. One final bundle per run says
what quality a run reached, not how long it took to get there; `mmsr train --snapshots K` keeps the
curve. Each class writes its generator at K + 1 points of its pixel-phase budget:

- index 0: the starting weights (random, or the ``--init`` bundle's), at 0 s;
- index i (1 <= i < K): after ``ceil(i * P / K)`` steps of its P planned pixel steps, the weights
  as they are at that step;
- index K: the generator the pixel phase hands on (the best-validated one), when the phase ends,
  early stopped or not. A class that stopped early has no snapshots between its stop and K.

Snapshot i of a run is every class's snapshot i, so it is the same share of every class's budget,
and its cost is the sum of the classes' training times up to it (one device, one class after
another) or their maximum (a device per class, computed). A class without snapshot i because it
stopped early contributes its snapshot K: at that share of the budget it had already finished.

Each snapshot is a one-class model bundle (:mod:`mmsr.bundle`, weights in float16 like a shipped
bundle), written atomically to ``RUN/snapshots/class{k}/{i:03d}.safetensors``; its provenance holds
``snapshot``: ``{class, config, index, count, step, elapsed_s}``. ``elapsed_s`` is the class's
training time (all sessions, validation included) when the snapshot was taken; writing one takes
milliseconds and is counted too.

Example:
    >>> snapshot_steps(1000, 4)
    [0, 250, 500, 750, 1000]
    >>> series = read_series("runs/mmsr.run")                          # doctest: +SKIP
    >>> bundle = series.bundle(2)   # every class halfway through its pixel steps   # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..bundle import Bundle, BundleError, load_bundle, read_bundle_metadata, save_trained_bundle
from ..models import Generator

__all__ = ["ClassSnapshot", "SnapshotSeries", "read_series", "snapshot_path", "snapshot_steps", "write_snapshot"]

SNAPSHOT_DIR = "snapshots"
_NAME = re.compile(r"([0-9]{3,})\.safetensors")


def snapshot_steps(pixel_budget: int, count: int) -> list[int]:
    """The step of each snapshot index 0..count for a pixel phase of ``pixel_budget`` steps."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return [math.ceil(i * pixel_budget / count) for i in range(count + 1)]


def snapshot_path(run_dir: str | os.PathLike, klass: int, index: int) -> Path:
    return Path(run_dir) / SNAPSHOT_DIR / f"class{klass}" / f"{index:03d}.safetensors"


def write_snapshot(
    run_dir: str | os.PathLike,
    *,
    klass: int,
    config: str,
    generator: Generator,
    index: int,
    count: int,
    step: int,
    elapsed_s: float,
    threshold: float,
    tile_size: int,
    overlap: int,
) -> Path:
    """Save ``generator`` as snapshot ``index`` of class ``klass`` (atomically; replaces an older one)."""
    bundle = Bundle.from_generators(
        [generator],
        [config],
        threshold=threshold,
        boundaries=[],
        tile_size=tile_size,
        overlap=overlap,
        provenance={
            "snapshot": {
                "class": klass,
                "config": config,
                "index": index,
                "count": count,
                "step": step,
                "elapsed_s": elapsed_s,
            }
        },
    )
    path = snapshot_path(run_dir, klass, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    # float32 where a weight is past float16's range: a snapshot is measured, never shipped.
    save_trained_bundle(bundle, path)
    return path


@dataclass(frozen=True)
class ClassSnapshot:
    """One class's snapshot: where it is and when it was taken."""

    path: Path
    index: int
    step: int
    elapsed_s: float


@dataclass(frozen=True)
class SnapshotSeries:
    """A run's snapshots, with what is needed to assemble them into bundles.

    Attributes:
        run_dir: the run folder.
        mode: "mmsr" or "baseline" (from the run's plan.json).
        configs: each class's "X-Y".
        scale, threshold, boundaries: from the run's plan.json.
        count: K, the index of the final snapshot.
        classes: per class, its snapshots by index.
    """

    run_dir: Path
    mode: str
    configs: tuple[str, ...]
    scale: int
    threshold: float
    boundaries: tuple[float, ...]
    count: int
    classes: tuple[dict[int, ClassSnapshot], ...]

    def complete(self) -> bool:
        """Whether every class has its final snapshot (its pixel phase ended)."""
        return all(self.count in snaps for snaps in self.classes)

    def at(self, index: int) -> list[ClassSnapshot]:
        """Each class's snapshot standing for ``index`` (its final one where it stopped early)."""
        if not 0 <= index <= self.count:
            raise ValueError(f"snapshot index must be in [0, {self.count}], got {index}")
        chosen = []
        for k, snaps in enumerate(self.classes):
            if index in snaps:
                chosen.append(snaps[index])
            elif self.count in snaps:
                chosen.append(snaps[self.count])
            else:
                raise ValueError(
                    f"{self.run_dir}: class {k} has no snapshot {index} and no final one "
                    f"({SNAPSHOT_DIR}/class{k}/{self.count:03d}.safetensors): it has not finished its pixel phase"
                )
        return chosen

    def bundle(self, index: int) -> Bundle:
        """Snapshot ``index`` of every class as one model bundle, routed as the run's bundle is."""
        parts = [load_bundle(s.path) for s in self.at(index)]
        return Bundle(
            scale=self.scale,
            threshold=self.threshold,
            boundaries=self.boundaries,
            configs=tuple(p.configs[0] for p in parts),
            state_dicts=tuple(p.state_dicts[0] for p in parts),
            tile_size=parts[0].tile_size,
            overlap=parts[0].overlap,
            provenance={"snapshot_of": str(self.run_dir), "index": index},
        )


def _read_plan(run_dir: Path) -> dict:
    path = run_dir / "plan.json"
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{run_dir}: no plan.json; not an mmsr train run folder") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable ({err})") from None
    missing = [key for key in ("mode", "configs", "boundaries", "threshold", "scale") if key not in plan]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}; written by another mmsr version?")
    return plan


def _read_class(folder: Path, klass: int, config: str) -> tuple[dict[int, ClassSnapshot], Optional[int]]:
    snaps: dict[int, ClassSnapshot] = {}
    counts = set()
    if not folder.is_dir():
        return snaps, None
    for path in sorted(folder.iterdir()):
        match = _NAME.fullmatch(path.name)
        if match is None:
            continue  # temp files of an interrupted write, or anything else
        try:
            info = read_bundle_metadata(path)["provenance"]["snapshot"]
            index, count, step, elapsed = int(info["index"]), int(info["count"]), int(info["step"]), float(info["elapsed_s"])
        except (BundleError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: not a snapshot of this run ({err})") from None
        if index != int(match.group(1)) or info.get("class") != klass or info.get("config") != config:
            raise ValueError(f"{path}: holds class {info.get('class')} ({info.get('config')}) snapshot {index}, "
                             f"not class {klass} ({config}) snapshot {int(match.group(1))}")
        snaps[index] = ClassSnapshot(path, index, step, elapsed)
        counts.add(count)
    if len(counts) > 1:
        raise ValueError(f"{folder}: snapshots of different --snapshots counts {sorted(counts)}; "
                         "a resumed run changed --snapshots")
    return snaps, counts.pop() if counts else None


def _check_contiguous(run_dir: Path, klass: int, snaps: dict[int, ClassSnapshot], count: int) -> None:
    # A class takes its snapshots in order from index 0, and only an early stop (or a phase still
    # running) leaves a gap, which runs up to the final index. Any other gap (e.g. --snapshots
    # added on --resume) would let a later snapshot stand in for a missing earlier one: refused.
    taken = sorted(i for i in snaps if i != count)
    if taken != list(range(len(taken))):
        missing = sorted(set(range(max(taken, default=0) + 1)) - set(taken))
        raise ValueError(
            f"{run_dir}: class {klass} lacks snapshot(s) {', '.join(map(str, missing))} but has later ones "
            "(was --snapshots added or changed on --resume?); the curve would be wrong, so it is not measured"
        )


def read_series(run_dir: str | os.PathLike) -> SnapshotSeries:
    """Read a training run's snapshots (headers only; weights load in :meth:`SnapshotSeries.bundle`).

    Raises:
        ValueError: the folder is not a run, has no snapshots (trained without ``--snapshots``),
            or holds snapshots that do not belong to its plan; the message names the file.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run folder {str(run_dir)!r} does not exist")
    plan = _read_plan(run_dir)
    configs = tuple(str(c) for c in plan["configs"])
    classes, counts = [], set()
    for k, config in enumerate(configs):
        snaps, count = _read_class(run_dir / SNAPSHOT_DIR / f"class{k}", k, config)
        if count is None:
            raise ValueError(
                f"{run_dir}: class {k} has no snapshots; train with `mmsr train --snapshots K` to record the "
                "quality-vs-time curve"
            )
        _check_contiguous(run_dir, k, snaps, count)
        classes.append(snaps)
        counts.add(count)
    if len(counts) > 1:
        raise ValueError(f"{run_dir}: classes were snapshotted with different counts {sorted(counts)}")
    return SnapshotSeries(
        run_dir=run_dir,
        mode=str(plan["mode"]),
        configs=configs,
        scale=int(plan["scale"]),
        threshold=float(plan["threshold"]),
        boundaries=tuple(float(b) for b in plan["boundaries"]),
        count=counts.pop(),
        classes=tuple(classes),
    )

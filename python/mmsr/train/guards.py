"""Before a run trains: what it may write over, and what a ``--resume`` may change.

- An existing ``--out`` is replaced only with ``--overwrite``, or by a ``--resume`` of the run that
  wrote it (summary.json records the bundle's path and sha256), and never when it is the
  ``--init`` bundle (refused in :mod:`mmsr.train.config`).
- ``--out`` and the run directory must be writable before the first step, so a run never trains
  for hours and then fails to save.
- A ``--resume`` keeps the interrupted run's training options (plan.json's ``settings``); only
  the options in ``_RESUME_FREE`` may change, and a class without checkpoints may change its own
  per-class budget and learning rate.
- A class with checkpoints resumes on as many ranks as wrote them (:func:`check_resume_ranks`).

A run directory may move, with its bundle beside it: the bundle's place is recorded relative to
the run directory as well as absolutely.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

try:  # POSIX; elsewhere runs are not locked (see run_lock)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from .checkpoint import CheckpointError, list_checkpoints, load_latest
from .config import TrainSettings
from .schedule import assign_ranks
from .trainer import class_dir

__all__ = [
    "bundle_record",
    "check_outputs",
    "check_resume",
    "check_resume_ranks",
    "check_resumable",
    "check_run_dir",
    "data_fingerprint",
    "finished_earlier",
    "read_json",
    "run_lock",
    "training_record",
]

# Options that --resume may change: where the outputs go, what runs the steps and how fast, how
# often the run logs and checkpoints, and the bundle's default tiling. None of them changes what a
# class learns (devices and speed options change float rounding only, as resuming on another
# machine does). Every other option must be the interrupted run's, or the classes would mix
# budgets, learning rates or seeds and the records would describe none of them.
_RESUME_FREE = frozenset(
    {
        "out",
        "run_dir",
        "overwrite",
        "resume",
        "command",
        "progress",
        "devices",
        "concurrent",
        "threads",
        "channels_last",
        "compile",
        "log_every",
        "checkpoint_every",
        "checkpoint_minutes",
        "keep_checkpoints",
        "tile_size",
        "overlap",
        "init_provenance",  # read from the --init bundle, which "init" compares
        "baseline_origin",  # why the baseline has its model; "configs" compares the model
        "boundaries",  # the run's own (maybe calibrated) boundaries are in plan.json, compared apart
    }
)
# Per-class options a class without any checkpoint may change on --resume: it trains from its
# start, so nothing mixes (the way to retrain a class that diverged with a lower --lr).
_PER_CLASS = ("pixel_steps", "gan_steps", "batch", "lr")
_OPTION_NAMES = {
    "data": "DATA",
    "data_files": "DATA's image files (names and sizes)",
    "mmsr_classes": "--classes",
    "vgg19": "--vgg19 (the VGG19 file used)",
}


def check_run_dir(settings: TrainSettings) -> None:
    run_dir = Path(settings.run_dir)
    existing = any(list_checkpoints(p) for p in (run_dir / "checkpoints").glob("class*")) if run_dir.is_dir() else False
    if existing and not settings.resume:
        raise ValueError(
            f"run directory {run_dir} holds checkpoints of an earlier run; pass --resume to continue it, "
            "or choose another --run-dir / --out"
        )


def check_resumable(settings: TrainSettings) -> None:
    """Refuse ``--resume`` where there is no run to resume: a mistyped --out or --run-dir would
    otherwise silently start a new run from scratch."""
    run_dir = Path(settings.run_dir)
    if not settings.resume:
        return
    started = (run_dir / "plan.json").is_file() or any(
        list_checkpoints(p) for p in (run_dir / "checkpoints").glob("class*")
    )
    if not started:
        raise ValueError(
            f"--resume: there is no run in {run_dir} (no plan.json, no checkpoints); check --out / --run-dir, "
            "or drop --resume to start a new run"
        )


def read_json(path: Path) -> Optional[dict]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path} of the run in {path.parent}: {err}") from None
    return value if isinstance(value, dict) else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _relative(path: str, run_dir: str) -> Optional[str]:
    try:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(run_dir))
    except ValueError:  # another drive (Windows): no relative path
        return None


def bundle_record(path: str, run_dir: str) -> dict:
    """summary.json's record of the bundle a run wrote: where (absolutely, and relative to the run
    directory, which finds it when both moved) and its sha256."""
    return {"path": os.path.abspath(path), "relative": _relative(path, run_dir), "sha256": _sha256(Path(path))}


def _recorded_places(run_dir: Path, summary: dict) -> set[str]:
    """Where the bundle of the run in ``run_dir`` may be: its recorded absolute path, and the same place
    relative to ``run_dir`` (the run directory may have moved with it)."""
    recorded = summary["bundle"]
    places = {str(recorded.get("path"))}
    relative = recorded.get("relative")
    if "relative" not in recorded:
        # Records from before "relative": the run directory was the one summary.json names, from where it ran.
        settings = summary.get("settings") if isinstance(summary.get("settings"), dict) else {}
        then = os.path.join(str(summary.get("cwd", "")), str(settings.get("run_dir", "")))
        if isinstance(recorded.get("path"), str) and os.path.isabs(then):
            relative = _relative(recorded["path"], then)
    if isinstance(relative, str):
        places.add(os.path.normpath(os.path.join(os.path.abspath(run_dir), relative)))
    return places


def _own_bundle(settings: TrainSettings, summary: Optional[dict]) -> bool:
    """Whether --out is, unchanged, the bundle the run in --run-dir wrote."""
    out = Path(settings.out)
    if not isinstance((summary or {}).get("bundle"), dict) or not out.is_file():
        return False
    if os.path.abspath(out) not in _recorded_places(Path(settings.run_dir), summary):
        return False
    return summary["bundle"].get("sha256") == _sha256(out)


def _check_writable(option: str, folder: Path) -> None:
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option}: cannot create {folder}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: cannot write in {existing} (permission denied)")


def check_outputs(settings: TrainSettings) -> None:
    """Refuse, before any training, an --out that would replace a file or cannot be written."""
    out = Path(settings.out)
    summary = read_json(Path(settings.run_dir) / "summary.json") if settings.resume else None
    if out.exists() and not settings.overwrite and not (settings.resume and _own_bundle(settings, summary)):
        raise ValueError(
            f"--out {out} already exists and is not the bundle this run wrote; pass --overwrite to replace it, "
            "or choose another --out"
        )
    _check_writable("--out", out.parent)
    _check_writable("--run-dir", Path(settings.run_dir))


def training_record(settings: TrainSettings, vgg19: Optional[str]) -> dict:
    """The options that shape what the classes learn, as JSON values (what --resume must keep)."""
    record = {k: v for k, v in settings.to_dict().items() if k not in _RESUME_FREE}
    record["data"] = os.path.abspath(settings.data)
    record["data_files"] = data_fingerprint(settings.data)
    record["vgg19"] = vgg19  # the file actually used (an explicit --vgg19 or the hub cache's); None: off
    return json.loads(json.dumps(record))


def _recorded_options(run_dir: Path, plan: dict) -> dict:
    """The training options the run in ``run_dir`` recorded; runs from before plan.json held them all
    give what their plan.json and summary.json have."""
    if isinstance(plan.get("settings"), dict):
        return plan["settings"]
    recorded = {}
    summary = read_json(run_dir / "summary.json") or {}
    if isinstance(summary.get("settings"), dict):
        # Their data and vgg19 were recorded as typed, not resolved: not comparable.
        skip = _RESUME_FREE | {"data", "vgg19"}
        recorded.update({k: v for k, v in summary["settings"].items() if k not in skip})
    if "mode" in plan:
        recorded["baseline"] = plan["mode"] == "baseline"
    recorded.update({k: plan[k] for k in ("configs", "threshold", "scale", "crop", "init") if k in plan})
    return recorded


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        # A per-class option given once shows as it was given.
        if value and value.count(value[0]) == len(value):
            return _shown(value[0])
        return ",".join(_shown(v) for v in value)
    return "none" if value is None else str(value)


def check_resume(settings: TrainSettings, vgg19: Optional[str]) -> Optional[tuple[float, ...]]:
    """Refuse a --resume whose options differ from the run's; returns the run's boundaries (None: no plan)."""
    run_dir = Path(settings.run_dir)
    plan = read_json(run_dir / "plan.json") if settings.resume else None
    if plan is None:
        return None
    recorded = _recorded_options(run_dir, plan)
    started = {k for k in range(settings.classes) if list_checkpoints(class_dir(run_dir, k))}
    differences = []
    for key, now in training_record(settings, vgg19).items():
        if key not in recorded:
            continue
        then = recorded[key]
        if key in _PER_CLASS and isinstance(then, list) and isinstance(now, list) and len(then) == len(now):
            same = all(then[k] == now[k] for k in started)
        else:
            same = then == now
        if not same:
            name = _OPTION_NAMES.get(key, "--" + key.replace("_", "-"))
            differences.append(f"  {name}: {_shown(then)} (the run) vs {_shown(now)} (this command)")
    if differences:
        raise ValueError(
            f"--resume: this command's options differ from those of the run in {run_dir}:\n"
            + "\n".join(differences)
            + "\nresume with the run's options (its command is in summary.json), or start a new run with another "
            "--out or --run-dir. (--resume may change only where outputs go, devices and speed options, logging and "
            "checkpoint intervals, the bundle's tiling, and the per-class options of a class without checkpoints)"
        )
    # A --baseline-class run's bundle routes nothing; the split its crops came from is kept apart.
    boundaries = tuple(float(b) for b in plan.get("crop_boundaries", plan.get("boundaries", ())))
    splits = not settings.baseline or settings.baseline_class is not None
    if settings.boundaries is not None and splits and tuple(settings.boundaries) != boundaries:
        raise ValueError(f"--resume: the run used boundaries {list(boundaries)}, but --boundaries gives {list(settings.boundaries)}")
    return boundaries


def _checkpoint_ranks(settings: TrainSettings) -> dict[int, int]:
    """Class -> how many ranks wrote its latest checkpoint, for the unfinished classes that have a
    loadable one (an unloadable one is the trainer's to report, naming the file; a finished class is
    not trained again, so any number of ranks may take it)."""
    ranks = {}
    for k in range(settings.classes):
        try:
            loaded = load_latest(class_dir(settings.run_dir, k))
        except CheckpointError:
            continue
        if loaded is not None and not loaded[0].get("finished"):
            ranks[k] = int(loaded[0].get("ranks", 1))
    return ranks


def _count(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def check_resume_ranks(settings: TrainSettings, costs: Sequence[float], world: Optional[int]) -> None:
    """Refuse, before any training, a --resume that would train a class on another number of ranks
    than its checkpoints were written by (a DDP group's checkpoint does not resume on one rank, nor one
    rank's in a group). ``costs`` are the classes' :func:`~mmsr.train.schedule.job_cost`; ``world`` is
    torchrun's rank count, None for ``mmsr train`` (every class in one process).

    A fresh start takes any rank count: fewer ranks than classes share them out, more join the
    costliest classes. A resume takes any rank count that gives each class with checkpoints the
    ranks it had; classes without checkpoints may train on any number.
    """
    if not settings.resume:
        return
    recorded = _checkpoint_ranks(settings)
    if not recorded:
        return

    def ranks_of(size: Optional[int]) -> list[int]:
        return [1] * len(costs) if size is None else [len(r) for r in assign_ranks(costs, size)]

    def fits(size: int) -> bool:
        ranks = ranks_of(size)
        return all(ranks[k] == r for k, r in recorded.items())

    now = ranks_of(world)
    wrong = sorted(k for k, r in recorded.items() if now[k] != r)
    if not wrong:
        return
    classes = "; ".join(
        f"class {k} ({settings.configs[k]}) has checkpoints of {_count(recorded[k], 'rank', 'ranks')} and would "
        f"now train on {_count(now[k], 'rank', 'ranks')}"
        for k in wrong
    )
    if world is None:
        given = "mmsr train runs each class in one process"
    else:
        given = f"this torchrun has {_count(world, 'rank', 'ranks')}"
    # A rank count that gives every class with checkpoints its ranks: one per class if it does, else the fewest.
    sizes = [len(costs), *range(1, 8 * len(costs) * max(recorded.values()) + 1)]
    fit = next((w for w in sizes if fits(w)), None)
    folders = " and ".join(str(class_dir(settings.run_dir, k)) for k in wrong)
    which = "that class from its start" if len(wrong) == 1 else "those classes from their start"
    if fit is not None:
        advice = (
            f"Start torchrun with {_count(fit, 'rank', 'ranks')} in all (--nnodes x --nproc-per-node; this run "
            f"has {_count(len(costs), 'class', 'classes')}), or delete {folders} to retrain {which}"
        )
    else:
        advice = f"No rank count gives each class the ranks of its checkpoints; delete {folders} to retrain {which}"
    raise ValueError(f"--resume: {given}, but {classes}. {advice}")


def finished_earlier(settings: TrainSettings) -> bool:
    """Whether --resume finds a run whose every class finished and whose bundle --out still is."""
    summary = read_json(Path(settings.run_dir) / "summary.json") if settings.resume else None
    classes = (summary or {}).get("classes")
    if not isinstance(classes, list) or not classes or any(c.get("status") != "finished" for c in classes):
        return False
    return _own_bundle(settings, summary)


def data_fingerprint(data: str) -> str:
    """``"N files, sha256 …"`` of the image files under ``data`` (relative names and sizes): a
    resume on a folder whose images were added, removed or replaced would mix classes trained on
    different data and move images between training and validation."""
    from ..data import IMAGE_EXTENSIONS

    root = Path(data)
    if not root.is_dir():
        return "no folder"
    entries = sorted(
        f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}"
        for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
    )
    digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]
    return f"{len(entries)} files, sha256 {digest}"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``RUN_DIR/.lock`` exclusively while a run lives, so a second ``mmsr train`` (or a
    ``--resume``) on the same run directory is refused instead of interleaving checkpoints, plans and
    bundles with this one. The lock dies with the process, even on ``kill -9``. A run directory
    this made and the run left empty (it failed before training) is removed again.
    """
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise ValueError(
                    f"run directory {run_dir} is in use by another mmsr train (pid {holder}); wait for it to end, "
                    "or choose another --out / --run-dir"
                ) from None
            except OSError as err:
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                # A file system without locks (some network mounts): run unlocked rather than not at all.
                print(f"mmsr: note: {run_dir} cannot be locked ({err.strerror}); do not start two runs on it",
                      file=sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
        if created and {p.name for p in run_dir.iterdir()} <= {".lock"}:
            path.unlink(missing_ok=True)
            run_dir.rmdir()

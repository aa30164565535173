"""Run a training: data, boundaries, class -> device plan, worker processes or torchrun ranks, bundle.

Two ways in, one set of options (:mod:`mmsr.train.config`):

- ``mmsr train DATA --out B --devices cpu | cuda:0,cuda:1,...``: this process decodes the data
  once and starts one worker process per device entry (``torch.multiprocessing``, spawn); the
  images reach the workers through shared memory, not a copy per worker. Classes go to workers
  longest-first (:mod:`mmsr.train.schedule`); a worker runs its classes one after another.
  ``--concurrent`` (the default with ``--amp bf16`` on GPUs when classes outnumber devices) gives every class its own
  worker instead. With a single worker, training runs
  in this process.
- ``torchrun ... -m mmsr.train DATA --out B``: every rank runs :mod:`mmsr.train.torchrun`, which
  uses this module's checks, preparation and results; rank r trains class r, and ranks beyond the
  number of classes join the costliest classes (DDP). Rank 0 writes the summary and the bundle from
  the reports the other ranks send it.

A class that fails or diverges is reported with its class, model and error; the other classes go
on (under torchrun the failing rank exits with status 1 and torchrun stops the rest). The run then
exits non-zero, and ``--resume`` retrains only what is unfinished, with the options of the run it
resumes (plan.json records them; :mod:`mmsr.train.guards` lists the few that may change), on any
number of ranks that gives each class with checkpoints as many ranks as wrote them.

Ctrl-C or SIGTERM stops every class at its step's end with a checkpoint, and summary.json records
how far each got (exit status 130). Workers have process groups of their own: a signal reaches the
launcher alone, which passes it on at once (and Ctrl-Z pauses them with it); torchrun passes it to
every rank.

Everything that can fail without training is checked before the first step: the options, the
data, that ``--out`` is not an existing file (unless ``--overwrite``, or a ``--resume`` replacing
the bundle its own run wrote) and that ``--out`` and the run directory can be written (see
:mod:`mmsr.train.guards`). The run
directory is created only once that has passed, so a run that fails early leaves nothing behind.

Example:
    >>> from mmsr.train.config import add_arguments, settings_from_args       # doctest: +SKIP
    >>> run(settings)  # 0 on success                                            # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import ctypes
import datetime
import json
import os
import signal
import queue as queue_module
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.multiprocessing as mp

from ..bundle import Bundle, read_bundle_metadata, save_trained_bundle
from ..data import ImageSet, class_range, load_folder, sample_scores, split_holdout
from ..models import Generator, ModelConfig
from .calibrate import calibrate, class_fractions
from ..atomic import write_bytes_atomically
from .checkpoint import CheckpointError, load_checkpoint, load_latest
from .config import ClassJob, TrainSettings
from .guards import (
    bundle_record,
    check_outputs,
    check_resume,
    check_resume_ranks,
    check_resumable,
    check_run_dir,
    finished_earlier,
    read_json,
    run_lock,
    training_record,
)
from .losses import VGG19_MIN_CROP, VGG19Features, find_vgg19_weights
from .report import summarise, write_summary
from .schedule import assign_slots, job_cost
from .trainer import PARENT_DIED_SIGNAL, ClassResult, ClassTrainer, TrainingDiverged, class_dir, hangups_stop

__all__ = ["is_torchrun", "run"]

# Seconds the launcher lets workers finish their step and checkpoint after it passed a signal on, before SIGKILL.
_KILL_AFTER_S = 60.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

def _note(message: str) -> None:
    print(f"mmsr: {message}", file=sys.stderr, flush=True)


def is_torchrun() -> bool:
    """True when this process was started by torchrun (or another launcher that sets its variables)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def _mmsr_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmsr")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class _Prepared:
    """Everything the workers need besides the settings.

    ``boundaries`` split the training crops into classes. The bundle routes by them too, except for a
    baseline, whose one model takes every tile: with --baseline-class it trains on one class's crops
    (see :func:`routing_boundaries`).
    """

    train: ImageSet
    val: Optional[ImageSet]
    data: dict
    boundaries: tuple[float, ...]
    shares: Optional[list[float]]
    jobs: list[ClassJob]
    costs: list[float]
    vgg19: Optional[str]  # the VGG19 file of the perceptual loss; None when it is off


def routing_boundaries(settings: TrainSettings, prepared: _Prepared) -> tuple[float, ...]:
    """The bundle's class edges: none for a baseline (one model for every tile), else the training split's."""
    return () if settings.baseline else prepared.boundaries


# -- preparation ---------------------------------------------------------------------------------


def _choose_boundaries(
    settings: TrainSettings, train: ImageSet, resumed: Optional[tuple[float, ...]]
) -> tuple[tuple[float, ...], Optional[list[float]]]:
    if settings.baseline and settings.baseline_class is None:
        return (), None
    # --baseline-class splits the crops as the K-class run would, though it trains one model.
    classes = settings.mmsr_classes if settings.baseline else settings.classes
    if classes == 1:
        return (), [1.0]
    common = dict(crop=settings.crop, scale=settings.scale, threshold=settings.threshold)
    if resumed is not None or settings.boundaries is not None:
        boundaries = resumed if resumed is not None else tuple(settings.boundaries)
        scores = sample_scores(train, samples=settings.calib_samples, seed=settings.seed, **common)
        shares = class_fractions(scores, boundaries)
        if resumed is not None:
            origin = "from the run being resumed"
        elif settings.init is not None:  # explicit --boundaries must equal the bundle's
            origin = "from the --init bundle"
        else:
            origin = "given"
    else:
        try:
            calibration = calibrate(train, classes=classes, samples=settings.calib_samples, seed=settings.seed, **common)
        except ValueError as err:
            raise ValueError(
                f"cannot calibrate {classes} TVAT classes on --calib-samples {settings.calib_samples} crops "
                f"of --crop {settings.crop}: {err}"
            ) from None
        boundaries, shares, scores = calibration.boundaries, list(calibration.fractions), calibration.scores
        origin = f"calibrated on {settings.calib_samples} crops"
    rare = [k for k, share in enumerate(shares) if share < settings.min_class_fraction]
    if rare:
        listing = ", ".join(f"class {k}: {shares[k]:.2%}" for k in range(len(shares)))
        low, high = (float(q) for q in scores.quantile(torch.tensor([0.01, 0.99])))
        raise ValueError(
            f"TVAT boundaries {list(boundaries)} leave class(es) {rare} below --min-class-fraction "
            f"{settings.min_class_fraction:.2%} of the crops ({listing}). On this data TVAT runs from {low:.4g} to "
            f"{high:.4g} (1st-99th percentile) in mmsr's units (pixels in [0, 1]; the paper's 2 and 4 are in other "
            f"units); see `mmsr calibrate {settings.data}`"
        )
    shown = ", ".join(f"{b:.6g}" for b in boundaries)
    _note(f"TVAT boundaries ({origin}): {shown}; class shares " + " / ".join(f"{s:.0%}" for s in shares))
    return boundaries, shares


def _vgg19_path(settings: TrainSettings) -> Optional[str]:
    """The VGG19 file the GAN phase's perceptual loss will use; None when it is off or there is no GAN phase."""
    if not any(settings.gan_steps):
        return None
    path = find_vgg19_weights(settings.vgg19)
    return None if path is None else str(Path(path).absolute())


def _load_vgg19(path: Optional[str], settings: TrainSettings) -> None:
    if not any(settings.gan_steps):
        return
    if path is None:
        _note(
            "perceptual loss off: no VGG19 weights (give --vgg19 FILE, a torchvision vgg19 state_dict; none in "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'}). The GAN phase uses pixel + adversarial loss."
        )
        return
    if settings.crop < VGG19_MIN_CROP:
        raise ValueError(
            f"--crop {settings.crop} is too small for the perceptual loss: VGG19 pools 4 times before its conv5_4 "
            f"features, so it needs HR crops of at least {VGG19_MIN_CROP}x{VGG19_MIN_CROP} ({path}); use --crop "
            f"{VGG19_MIN_CROP} or more"
        )
    VGG19Features.from_file(path)  # fail here, once, rather than in every worker
    _note(f"perceptual loss: VGG19 conv5_4 features from {path}")


def _prepare(settings: TrainSettings, resumed: Optional[tuple[float, ...]], vgg19: Optional[str]) -> _Prepared:
    if settings.baseline:
        _note(f"baseline: one {settings.configs[0]} model ({settings.baseline_origin}); --baseline-config changes it")
    folder = load_folder(settings.data, min_size=settings.crop, log=_note)
    train, val = split_holdout(folder.images, settings.holdout, seed=settings.seed)
    if val is None and settings.holdout > 0:
        _note("only one usable image: nothing held out; validation uses fixed crops of the training image")
    boundaries, shares = _choose_boundaries(settings, train, resumed)
    if settings.baseline_class is not None:
        k = settings.baseline_class
        _note(f"baseline: trained on TVAT class {k}'s crops only ({class_range(boundaries, k)}, "
              f"{shares[k]:.0%} of random crops); its bundle uses the model on every tile")
    if settings.crops_and_above and len(boundaries) > 0:
        cumulative = [sum(shares[k:]) for k in range(len(shares))]
        _note("class crops: each class trains on its own TVAT class's crops and the more textured classes' "
              "(--class-crops and-above; validation on its own class's): " + " / ".join(f"{share:.0%}" for share in cumulative)
              + " of random crops")
    data = {
        "path": os.path.abspath(settings.data),
        "images": len(folder.images),
        "train_images": len(train),
        "val_images": 0 if val is None else len(val),
        "skipped": [{"path": s.path, "reason": s.reason} for s in folder.skipped],
    }
    return _Prepared(train, val, data, boundaries, shares, settings.jobs(), _costs(settings), vgg19)


def _costs(settings: TrainSettings) -> list[float]:
    s = settings
    return [job_cost(j, scale=s.scale, crop=s.crop, disc_width=s.disc_width) for j in s.jobs()]


def _losses(settings: TrainSettings, vgg19: Optional[str]) -> dict:
    """The losses the run trained with; ``gan`` is None without a GAN phase."""
    gan = None
    if any(settings.gan_steps):
        gan = {
            "pixel_weight": settings.pixel_weight,
            "perceptual": vgg19 is not None,
            "perceptual_weight": settings.perceptual_weight if vgg19 is not None else None,
            "vgg19": vgg19,
            "adv_weight": settings.adv_weight,
            "lr": settings.gan_lr,
        }
    return {"pixel_loss": settings.pixel_loss, "gan": gan}


# -- workers -------------------------------------------------------------------------------------


def _train_classes(
    indices: list[int],
    device: str,
    position: int,
    settings: TrainSettings,
    prepared: _Prepared,
    report: Callable[[tuple], None],
) -> None:
    """Train ``indices`` one after another on ``device``, reporting ("start" | "done" | "failed" |
    "diverged" | "interrupted", class, payload...) through ``report``. A failed class does not stop the
    others. Unfinished classes report where they stopped (:meth:`ClassTrainer.result`) when they got
    that far."""
    for k in indices:
        report(("start", k, device))
        trainer, finished = None, False
        try:
            trainer = ClassTrainer(
                prepared.jobs[k],
                settings,
                prepared.train,
                prepared.val,
                prepared.boundaries,
                device,
                position=position,
                vgg19=prepared.vgg19,
                log=_note,
            )
            report(("done", k, trainer.run().to_dict()))
            finished = True
            if trainer.stop_requested:
                # Ctrl-C or SIGTERM came while the class was finishing: it is saved; start no other.
                raise KeyboardInterrupt(trainer.stop_requested)
        except KeyboardInterrupt:
            if finished:
                raise
            report(("interrupted", k, _where(trainer, "interrupted")))
            return
        except TrainingDiverged as err:
            report(("diverged", k, str(err), _where(trainer, "diverged", str(err))))
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
            report(("failed", k, error, traceback.format_exc(), _where(trainer, "failed", error)))


def _where(trainer: Optional[ClassTrainer], status: str, error: Optional[str] = None) -> Optional[dict]:
    # How far an unfinished class got; None when it failed before its trainer existed.
    return None if trainer is None else trainer.result(status, error).to_dict()


def _die_with_parent(parent: int) -> None:
    """Have the kernel send this worker PARENT_DIED_SIGNAL when its launcher dies (even by
    ``kill -9``): a training worker then checkpoints at its step's end and exits, one that has not
    started training ends at once, instead of training on as an orphan that a ``--resume`` would race.

    Neither SIGTERM nor SIGHUP (see PARENT_DIED_SIGNAL): the kernel can deliver the parent-death
    signal more than once (strace showed two, as the dying launcher's threads went), which a second
    SIGTERM would escalate to "stop at once", and ``nohup`` makes every process ignore SIGHUP."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, PARENT_DIED_SIGNAL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the launcher died before prctl took effect
        os.kill(os.getpid(), PARENT_DIED_SIGNAL)


def _worker(slot: int, device: str, indices, settings, prepared, threads: Optional[int], results, parent: int) -> None:
    if hasattr(os, "setpgid"):
        # A process group of its own: a terminal's Ctrl-C reaches the launcher alone, which passes it on
        # (see _wait_for_workers), so every worker gets one signal however it was sent.
        os.setpgid(0, 0)
    _die_with_parent(parent)
    if threads:
        torch.set_num_threads(threads)
    try:
        _train_classes(indices, device, slot, settings, prepared, results.put)
    except KeyboardInterrupt:
        # Ctrl-C between classes: the classes already reported; nothing more to save.
        pass


def progress_from_checkpoint(entry: ClassResult, run_dir: str | os.PathLike) -> bool:
    """Fill ``entry``'s steps and checkpoint from its class's latest checkpoint, for a class whose
    process ended without reporting; False when there is none (or none that loads)."""
    try:
        loaded = load_latest(class_dir(run_dir, entry.index))
    except CheckpointError:
        return False
    if loaded is None:
        return False
    fill_progress(entry, *loaded, run_dir)
    return True


def fill_progress(entry: ClassResult, state: dict, path: Path, run_dir: str | os.PathLike) -> None:
    """Set ``entry``'s steps and checkpoint from a loaded checkpoint ``state`` of file ``path``."""
    entry.steps = int(state["step"])
    pixel_end = int(state.get("pixel_end", entry.steps))
    entry.pixel_steps, entry.gan_steps = min(entry.steps, pixel_end), max(0, entry.steps - pixel_end)
    entry.checkpoint = path.relative_to(run_dir).as_posix()


class _Tracker:
    """Per-class results as worker messages arrive."""

    def __init__(self, jobs: list[ClassJob], slots: list[tuple[str, list[int]]], run_dir: str) -> None:
        self.slot_of = {k: slot for slot, (_, ks) in enumerate(slots) for k in ks}
        self.results = {j.index: ClassResult(j.index, j.config, slots[self.slot_of[j.index]][0], "not run") for j in jobs}
        self.planned = {j.index: j.pixel_steps + j.gan_steps for j in jobs}
        self.run_dir = run_dir
        self.interrupted = False

    def _progress(self, k: int, payload: Optional[dict]) -> ClassResult:
        if payload is not None:
            self.results[k] = ClassResult(**payload)
        return self.results[k]

    def handle(self, message: tuple) -> None:
        kind, k = message[0], message[1]
        if kind == "start":
            self.results[k].status = "running"
        elif kind == "done":
            self.results[k] = ClassResult(**message[2])
        elif kind == "failed":
            result = self._progress(k, message[4])
            result.status, result.error = "failed", message[2]
            _note(f"class {k} ({result.config}) on {result.device} failed: {message[2]}\n{message[3]}")
        elif kind == "diverged":
            result = self._progress(k, message[3])
            result.status, result.error = "diverged", message[2]
            _note(f"class {k} ({result.config}) on {result.device} diverged {message[2]}")
        elif kind == "interrupted":
            self._progress(k, message[2]).status = "interrupted"
            self.interrupted = True

    def died(self, slot: int, exitcode: Optional[int]) -> None:
        """Mark the class a worker was training when its process ended abnormally."""
        for result in self.results.values():
            if result.status == "running" and self.slot_of[result.index] == slot:
                # It sent nothing more: how far it got is what its last checkpoint says. The status
                # changes last, so that a signal arriving in between leaves this to be done again.
                result.planned_steps = self.planned[result.index]
                progress_from_checkpoint(result, self.run_dir)
                result.error = f"worker process {slot} on {result.device} died (exit code {exitcode}) while training this class"
                result.status = "failed"
                _note(f"class {result.index} ({result.config}) on {result.device} failed: {result.error}")


def _run_local(settings: TrainSettings, prepared: _Prepared) -> tuple[list[ClassResult], bool]:
    devices = list(settings.devices)
    if settings.concurrent:
        per_device = assign_slots(prepared.costs, len(devices))
        slots = [(devices[d], [k]) for d, ks in enumerate(per_device) for k in ks]
    else:
        slots = [(devices[d], ks) for d, ks in enumerate(assign_slots(prepared.costs, len(devices))) if ks]
    if len(slots) < len(devices):
        _note(f"--devices lists {len(devices)} devices for {len(prepared.jobs)} classes: {len(devices) - len(slots)} stay idle")
    for device, ks in slots:
        plan = ", ".join(f"class {k} ({prepared.jobs[k].config}, {prepared.jobs[k].steps} steps)" for k in ks)
        _note(f"{device}: {plan}")
    tracker = _Tracker(prepared.jobs, slots, settings.run_dir)

    if len(slots) == 1:
        device, ks = slots[0]
        if settings.threads:
            torch.set_num_threads(settings.threads)
        try:
            _train_classes(ks, device, 0, settings, prepared, tracker.handle)
        except KeyboardInterrupt:
            tracker.interrupted = True
        return [tracker.results[j.index] for j in prepared.jobs], tracker.interrupted

    cpu_slots = sum(1 for device, _ in slots if device == "cpu")
    threads = settings.threads or (max(1, torch.get_num_threads() // cpu_slots) if cpu_slots else None)
    context = mp.get_context("spawn")
    results = context.Queue()
    processes = []
    for slot, (device, ks) in enumerate(slots):
        process = context.Process(
            target=_worker,
            args=(slot, device, ks, settings, prepared, threads if device == "cpu" else settings.threads, results, os.getpid()),
            name=f"mmsr-train-{slot}",
        )
        process.start()
        processes.append((slot, device, process))
    _wait(processes, results, tracker)
    return [tracker.results[j.index] for j in prepared.jobs], tracker.interrupted


def _drain(results, tracker: _Tracker, timeout: float) -> None:
    try:
        tracker.handle(results.get(timeout=timeout))
        while True:
            tracker.handle(results.get_nowait())
    except queue_module.Empty:
        pass


class _PassOn(KeyboardInterrupt):
    """SIGTERM or SIGHUP (its terminal closed) to the launcher: the workers did not get it and must be
    told the same."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


def _raise_pass_on(signum, frame) -> None:
    raise _PassOn(signum)


def _pause_with_workers(processes) -> Callable:
    """A SIGTSTP handler: Ctrl-Z pauses the workers with the launcher, and ``fg`` / ``bg`` continue them.
    Their own process groups keep the terminal's SIGTSTP and SIGCONT from them."""

    def pause(signum, frame) -> None:
        live = [process.pid for _, _, process in processes if process.exitcode is None]
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # the launcher stops here, until SIGCONT
        signal.signal(signal.SIGTSTP, pause)
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    return pause


def _wait(processes, results, tracker: _Tracker) -> None:
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_pass_on),
        # Python keeps SIGINT ignored when it started so (a background job of a script); an explicit
        # `kill -INT` must still stop the run, as it does with one device (the trainer's own handler).
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
    }
    if hasattr(signal, "SIGTSTP"):
        previous[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, _pause_with_workers(processes))
    # A hang-up stops the workers at their step's end and the launcher writes the summary, as SIGTERM
    # does; by default it would kill the launcher alone. Under `nohup` (SIGHUP ignored) it stays ignored.
    if hangups_stop():
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, _raise_pass_on)
    try:
        _wait_for_workers(processes, results, tracker)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_for_workers(processes, results, tracker: _Tracker) -> None:
    reported: set[int] = set()
    deadline: Optional[float] = None
    while True:
        try:
            _drain(results, tracker, timeout=0.5)
            for slot, _, process in processes:
                if process.exitcode is not None and slot not in reported:
                    _drain(results, tracker, timeout=0.5)
                    if process.exitcode != 0:
                        tracker.died(slot, process.exitcode)
                    # Only now: a Ctrl-C during the lines above must not leave a dead worker's class "running".
                    reported.add(slot)
            if len(reported) == len(processes):
                return
            if deadline is not None and time.monotonic() > deadline:
                for _, _, process in processes:
                    if process.exitcode is None:
                        process.kill()
                deadline = None
        except KeyboardInterrupt as interrupt:
            tracker.interrupted = True
            _note("interrupted: waiting for the workers to checkpoint")
            # The workers' own process groups kept the signal from them: pass it on now. They stop at their
            # step's end; one that already did takes a second SIGINT or SIGTERM as "stop now", and still
            # checkpoints (a second SIGHUP asks again, gently).
            signum = interrupt.signum if isinstance(interrupt, _PassOn) else signal.SIGINT
            for _, _, process in processes:
                if process.exitcode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signum)
            deadline = time.monotonic() + _KILL_AFTER_S


# -- results -------------------------------------------------------------------------------------


def _final_generator(result: ClassResult, settings: TrainSettings, state: Optional[dict]) -> Generator:
    if state is None:
        state = load_checkpoint(Path(settings.run_dir) / result.checkpoint)["generator"]
    generator = Generator.from_config(ModelConfig.parse(result.config), settings.scale)
    generator.load_state_dict(state)
    return generator


def _provenance(settings: TrainSettings, prepared: _Prepared, results: list[ClassResult], wall: float) -> dict:
    return {
        "mode": "baseline" if settings.baseline else "mmsr",
        "crops": _crops(settings, prepared),
        "baseline_class": settings.baseline_class,
        "class_crops": None if settings.baseline else settings.class_crops,
        "data": prepared.data["path"],
        "images": prepared.data["images"],
        "train_images": prepared.data["train_images"],
        "val_images": prepared.data["val_images"],
        "crop": settings.crop,
        "batch": list(settings.batch),
        "seed": settings.seed,
        "losses": _losses(settings, prepared.vgg19),
        "classes": [
            {
                "config": r.config,
                "iterations": r.steps,
                "pixel_steps": r.pixel_steps,
                "gan_steps": r.gan_steps,
                "wall_time_s": r.wall_time_s,
                "device": r.device,
                "val_psnr": r.val_psnr,
            }
            for r in results
        ],
        "wall_time_s": wall,
        "devices": list(settings.devices),
        "mmsr_version": _mmsr_version(),
        "torch_version": torch.__version__,
        "command": " ".join(settings.command),
        # The warm start's bundle and its own provenance: a fine-tuned bundle tells its whole history.
        "init": None
        if settings.init is None
        else {"bundle": settings.init, "provenance": settings.init_provenance},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _crops(settings: TrainSettings, prepared: _Prepared) -> str:
    """Which crops the bundle's models trained on, in words (its provenance)."""
    if settings.baseline_class is None:
        if settings.baseline:
            return "every crop"
        if settings.crops_and_above:
            return "each class's own TVAT class and the more textured ones (--class-crops and-above)"
        return "each class's own TVAT class"
    k = settings.baseline_class
    return f"TVAT class {k} of {settings.mmsr_classes} only ({class_range(prepared.boundaries, k)})"


def _outcome(r: ClassResult) -> str:
    if r.status == "finished":
        timing = f"{r.steps} steps, {r.wall_time_s:.1f} s" if r.wall_time_s is not None else f"{r.steps} steps"
        psnr = f", val PSNR {r.val_psnr:.2f} dB (RGB, validation crops)" if r.val_psnr is not None else ""
        return f"finished, {timing}{psnr}"
    if not r.planned_steps:
        return r.status
    saved = f"checkpoint {r.checkpoint}" if r.checkpoint else "no checkpoint"
    if r.status == "diverged":
        # The step it diverged at is in its own line above; losses are checked only where the loop
        # syncs, so it ran on to this step before the divergence was found.
        return f"diverged; stopped at step {r.steps} of {r.planned_steps}, where that was found ({saved})"
    return f"{r.status} at step {r.steps} of {r.planned_steps} ({saved})"


def _unfinished_advice(settings: TrainSettings, unfinished: list[ClassResult]) -> None:
    names = ", ".join(f"class {r.index} ({r.config}): {r.status}" for r in unfinished)
    _note(f"no bundle written; unfinished: {names}.")
    unknown = [str(r.index) for r in unfinished if r.status == "unknown"]
    if unknown:
        _note(
            f"class(es) {', '.join(unknown)}: no report reached rank 0; their rank's own output says why it stopped, "
            "and summary.json gives the last checkpoint rank 0 could see"
        )
    if any(r.status != "diverged" for r in unfinished):
        _note(f"Run the same command with --resume, from {os.getcwd()}, to finish them.")
    diverged = [r for r in unfinished if r.status == "diverged"]
    if diverged:
        kept = " ".join(str(class_dir(settings.run_dir, r.index)) for r in diverged if r.checkpoint)
        restart = f"delete {kept} and " if kept else ""
        _note(
            "--resume with the same options would diverge again. Start a new run (another --out or --run-dir) with "
            f"the lower value, or {restart}--resume with a lower per-class --lr for the diverged class(es): a class "
            "without checkpoints trains from its start, so it may change its --lr, --batch, --pixel-steps and "
            "--gan-steps."
        )


def _write_summary(settings: TrainSettings, prepared: _Prepared, results: list[ClassResult], wall: float) -> dict:
    """Write summary.json with ``results``; returns what it wrote."""
    summary_path = Path(settings.run_dir) / "summary.json"
    try:
        previous = read_json(summary_path) if settings.resume else None
    except ValueError:  # read fine before training; whatever happened since, the new summary replaces it
        previous = None
    idle = all(r.status == "finished" and r.session_steps == 0 for r in results)
    if idle and previous is not None and all(c.get("status") == "finished" for c in previous.get("classes", [])):
        # Nothing was trained now: the summary of the sessions that trained stays, times included;
        # it names the bundle this command writes, and the command, where that is another one.
        summary = previous
        _note("every class finished earlier; writing the bundle again from their checkpoints")
        if isinstance(summary.get("settings"), dict):
            summary["settings"]["out"] = str(settings.out)
        summary["bundle_command"] = list(settings.command)
    else:
        summary = summarise(
            mode="baseline" if settings.baseline else "mmsr",
            settings=dict(settings.to_dict(), vgg19=prepared.vgg19),
            data=prepared.data,
            boundaries=list(routing_boundaries(settings, prepared)),
            threshold=settings.threshold,
            class_shares=prepared.shares,
            classes=[r.to_dict() for r in results],
            wall_time_s=wall,
            mmsr_version=_mmsr_version(),
            losses=_losses(settings, prepared.vgg19),
        )
        if settings.baseline_class is not None:  # class_shares are then this split's
            summary["crop_boundaries"] = list(prepared.boundaries)
    write_summary(summary_path, summary)
    return summary


def _conclude(
    settings: TrainSettings,
    prepared: _Prepared,
    results: list[ClassResult],
    wall: float,
    interrupted: bool,
    states: Optional[dict[int, dict]] = None,
) -> int:
    """Write summary.json and, when every class finished, the bundle; returns the exit status.

    ``states`` holds generator state_dicts by class where they did not come from checkpoint files.
    """
    summary_path = Path(settings.run_dir) / "summary.json"
    summary = _write_summary(settings, prepared, results, wall)
    for r in results:
        _note(f"class {r.index} ({r.config}) on {r.device}: {_outcome(r)}")
    unfinished = [r for r in results if r.status != "finished"]
    if unfinished:
        _unfinished_advice(settings, unfinished)
        _note(f"summary: {summary_path}")
        return 130 if interrupted and all(r.status in ("interrupted", "not run") for r in unfinished) else 1
    states = states or {}
    generators = [_final_generator(r, settings, states.get(r.index)) for r in results]
    bundle = Bundle.from_generators(
        generators,
        list(settings.configs),
        threshold=settings.threshold,
        boundaries=list(routing_boundaries(settings, prepared)),
        tile_size=settings.tile_size,
        overlap=settings.overlap,
        provenance=_provenance(settings, prepared, results, wall),
    )
    Path(settings.out).parent.mkdir(parents=True, exist_ok=True)
    overflow = save_trained_bundle(bundle, settings.out)
    if overflow is not None:
        _note(f"{overflow.name} reaches {overflow.largest:.4g}, past float16's range (65504): {settings.out} stores "
              "its weights in float32, twice the size. Weights that large usually mean a --lr too high for the model")
    # The record that lets a later --resume tell its own bundle from a file it must not replace.
    summary["bundle"] = bundle_record(settings.out, settings.run_dir)
    write_summary(summary_path, summary)
    _note(f"wrote {settings.out}; summary: {summary_path}")
    return 0


def _save_plan(settings: TrainSettings, prepared: _Prepared) -> None:
    # The routing at the top is what snapshots.read_series reads; "settings" is what --resume keeps.
    record = {
        "mode": "baseline" if settings.baseline else "mmsr",
        "configs": list(settings.configs),
        "boundaries": list(routing_boundaries(settings, prepared)),
        "threshold": settings.threshold,
        "scale": settings.scale,
        "crop": settings.crop,
        "init": settings.init,
        "settings": training_record(settings, prepared.vgg19),
    }
    if settings.baseline_class is not None:  # the split its crops came from, which --resume keeps
        record["crop_boundaries"] = list(prepared.boundaries)
    Path(settings.run_dir).mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(Path(settings.run_dir) / "plan.json", (json.dumps(record, indent=2) + "\n").encode())


def _checks(settings: TrainSettings, world: Optional[int]) -> tuple[Optional[tuple[float, ...]], Optional[str], bool]:
    """Every check that needs no data: ``(the resumed run's boundaries, the VGG19 file, finished earlier)``.

    ``world`` is torchrun's rank count; None for ``mmsr train``, which trains each class in one process.
    """
    vgg19 = _vgg19_path(settings)
    check_run_dir(settings)
    check_resumable(settings)
    check_outputs(settings)
    resumed = check_resume(settings, vgg19)
    finished = finished_earlier(settings)
    if not finished:
        check_resume_ranks(settings, _costs(settings), world)
        _load_vgg19(vgg19, settings)
    return resumed, vgg19, finished


def _note_finished(settings: TrainSettings) -> None:
    _note(
        f"the run in {settings.run_dir} finished earlier and wrote {settings.out}, which is unchanged; nothing to "
        "resume (the bundle and summary.json are left as they are)"
    )
    # --tile-size and --overlap may differ on --resume, but an unchanged bundle keeps its own.
    header = read_bundle_metadata(settings.out)
    kept = [f"{option} {header[key]}" for option, key, asked in (("--tile-size", "tile_size", settings.tile_size),
                                                                  ("--overlap", "overlap", settings.overlap))
            if header.get(key) != asked]  # fmt: skip
    if kept:
        _note(f"the bundle keeps its {' and '.join(kept)}: `mmsr upscale --tile` / `--overlap` tile it otherwise, or "
              f"move {settings.out} aside and --resume again to write it anew with the options given")


def _end_rank(status: int) -> None:
    """End a torchrun rank's process with ``status`` now, without the interpreter's shutdown.

    Everything the rank writes is written and its process group destroyed by then. But gloo's worker
    threads may still be releasing the tensors of a finished collective (a broadcast), which takes
    the GIL; during the interpreter's shutdown that aborts the process (SIGABRT, "terminate called
    without an active exception"), and torchrun then reports the rank as failed with signal 6 instead
    of its status. It happened to rank 0 about one exit in seven on this 2-core machine.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def run(settings: TrainSettings) -> int:
    """Train every class of ``settings`` and write the bundle; returns the process exit status.

    0: the bundle was written. 1: a class failed (the others finished or checkpointed). 130: interrupted.
    Under torchrun (see :func:`is_torchrun`) this is the per-rank entry and rank 0 writes the outputs;
    the rank's process then ends here with that status (see :func:`_end_rank`).
    """
    if is_torchrun():
        from .torchrun import run_torchrun  # it builds on this module's preparation and results

        _end_rank(run_torchrun(settings))
    start = time.perf_counter()
    resumed, vgg19, finished = _checks(settings, None)
    # The checks above ran without the lock (they create nothing); those that another live run
    # could invalidate run again under it.
    with run_lock(Path(settings.run_dir)):
        check_run_dir(settings)
        if finished:
            _note_finished(settings)
            return 0
        prepared = _prepare(settings, resumed, vgg19)
        _save_plan(settings, prepared)
        results, interrupted = _run_local(settings, prepared)
        return _conclude(settings, prepared, results, time.perf_counter() - start, interrupted)

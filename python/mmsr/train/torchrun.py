"""``torchrun ... -m mmsr.train``: every rank runs :func:`run_torchrun` (via :func:`mmsr.train.launch.run`).

Rank r trains class r; with fewer ranks than classes, ranks take several classes, and ranks beyond
the number of classes join the costliest classes, which then train with DDP on a process group of
their own. Rank 0 runs the checks, calibrates the boundaries and holds the run directory's lock;
every rank then uses its answer. When their classes end, ranks send their reports (results and,
for finished classes, the generator's weights) to rank 0, which writes summary.json and the bundle,
so no rank needs to see another's disk.

Stopping: torchrun passes a Ctrl-C or SIGTERM to every rank; ranks of one DDP class agree on the
stop (see :meth:`~mmsr.train.trainer.ClassTrainer.run`), checkpoint, and report. A rank whose class
fails or diverges says so in one line and exits 1; torchrun then stops the others, and rank 0
writes what it knows, reading classes it heard nothing from off their checkpoints and logs.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import signal
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from ..data import load_folder, split_holdout
from .checkpoint import CheckpointError, load_checkpoint, load_latest
from .config import ClassJob, TrainSettings
from .guards import run_lock
from .launch import (
    _checks,
    _conclude,
    _costs,
    _note,
    _note_finished,
    _prepare,
    _Prepared,
    _save_plan,
    _write_summary,
    fill_progress,
)
from .schedule import assign_ranks
from .trainer import ClassResult, ClassTrainer, DDPGroup, TrainingDiverged, class_dir, stop_signals_to

__all__ = ["run_torchrun"]

# Collective waits under torchrun include waiting for other classes to finish training.
_DIST_TIMEOUT = datetime.timedelta(days=7)

def run_torchrun(settings: TrainSettings) -> int:
    """This rank's part of a torchrun training; returns its exit status (0, 1: a class failed, 2: refused, 130)."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and not all(d == "cpu" for d in settings.devices)
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    else:
        device = "cpu"
        torch.set_num_threads(settings.threads or max(1, (os.cpu_count() or 1) // local_world))
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=_DIST_TIMEOUT)
    try:
        with contextlib.ExitStack() as held:  # rank 0's run lock, for as long as the run lives
            return _torchrun_body(settings, rank, world, local_rank, device, held)
    except KeyboardInterrupt:
        # Ctrl-C while this rank prepared (loading the data, calibrating): nothing was trained or written yet.
        _note(f"rank {rank}: interrupted before training; nothing to resume from this rank")
        return 130
    finally:
        dist.destroy_process_group()


def _torchrun_body(
    settings: TrainSettings, rank: int, world: int, local_rank: int, device: str, held: contextlib.ExitStack
) -> int:
    start = time.perf_counter()
    settings = replace(settings, devices=(device,))
    # Rank 0 decides the boundaries (calibration, resume checks); every rank then uses its answer.
    box: list = [None]
    if rank == 0:
        try:
            # As `mmsr train` does: a second run on this run directory is refused, not interleaved.
            held.enter_context(run_lock(Path(settings.run_dir)))
            resumed, vgg19, finished = _checks(settings, world)
            if finished:
                _note_finished(settings)
                box[0] = ("finished",)
            else:
                prepared = _prepare(settings, resumed, vgg19)
                box[0] = ("ok", prepared.boundaries, prepared.shares, prepared.vgg19)
                _save_plan(settings, prepared)
        except Exception as err:
            # A ValueError or OSError is a refusal whose message says it all, as `mmsr train` prints it.
            plain = isinstance(err, (ValueError, OSError))
            box[0] = ("error", str(err) if plain else f"{type(err).__name__}: {err}")
    dist.broadcast_object_list(box, src=0)
    if box[0][0] == "finished":
        return 0
    if box[0][0] == "error":
        if rank == 0:
            _note(f"error: {box[0][1]}")
        return 2
    _, boundaries, shares, vgg19 = box[0]
    if rank != 0:
        folder = load_folder(settings.data, min_size=settings.crop, log=None)
        train, val = split_holdout(folder.images, settings.holdout, seed=settings.seed)
        prepared = _Prepared(train, val, {}, boundaries, shares, settings.jobs(), _costs(settings), vgg19)

    ranks_of_class = assign_ranks(prepared.costs, world)
    groups = {}
    for k, ranks in enumerate(ranks_of_class):
        if len(ranks) > 1:
            # Every rank must create every group, in the same order.
            groups[k] = dist.new_group(ranks)
    mine = sorted((k for k, ranks in enumerate(ranks_of_class) if rank in ranks), key=lambda k: -prepared.costs[k])
    if rank == 0:
        for k, ranks in enumerate(ranks_of_class):
            _note(f"class {k} ({prepared.jobs[k].config}): ranks {ranks}")

    with stop_signals_to(_raise_interrupt):
        reports, interrupted, failure = _train_on_rank(
            settings, prepared, mine, ranks_of_class, groups, rank, local_rank, device
        )

    def conclude(received: dict[int, dict], missing: str) -> int:
        results = _gathered_results(settings, prepared, ranks_of_class, received, missing)
        states = {k: state for part in received.values() for k, (_, state) in part.items() if state is not None}
        stopped = interrupted or any(r.status == "interrupted" for r in results)
        concluded = replace(settings, devices=tuple(r.device for r in results))
        return _conclude(concluded, prepared, results, time.perf_counter() - start, stopped, states)

    if failure is not None:
        # This rank exits, and torchrun stops the others (they checkpoint at their step's end). Rank 0
        # first writes what it knows: it cannot hear from ranks that are still training.
        if rank == 0:
            reports[failure.index] = (failure.to_dict(), None)
            conclude({0: reports}, "rank {rank} had not reported when rank 0's class ended the run")
        return 1
    # Ranks that finished wait here for the others, maybe for hours. A signal must not cut that short: a
    # rank that stopped is about to report, and torchrun's SIGKILL ends a wait for one that never will.
    with stop_signals_to(signal.SIG_IGN):
        if rank != 0:
            try:
                dist.send_object_list([reports], dst=0)
            except RuntimeError as err:
                _note(f"rank {rank}: could not report to rank 0: {err}")
                return 1
            return 130 if interrupted else 0
        if interrupted and world > 1:
            # The summary as it stands, should a report never come (a rank hung, or killed on another node).
            results = _gathered_results(
                settings, prepared, ranks_of_class, {0: reports}, "rank {rank} had not reported when rank 0 stopped"
            )
            wall = time.perf_counter() - start
            _write_summary(replace(settings, devices=tuple(r.device for r in results)), prepared, results, wall)
        received = {0: reports}
        for source in range(1, world):
            box = [None]
            try:
                dist.recv_object_list(box, src=source)
            except RuntimeError:  # it exited (failed, or killed) before reporting
                continue
            received[source] = box[0]
    return conclude(received, "rank {rank} sent no report (it exited or could not be reached; its output says why)")


def _raise_interrupt(signum, frame) -> None:
    # SIGTERM, like Ctrl-C, then stops a rank between classes or while one starts, as it does in training.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _train_on_rank(
    settings: TrainSettings,
    prepared: _Prepared,
    mine: list[int],
    ranks_of_class: list[list[int]],
    groups: dict,
    rank: int,
    local_rank: int,
    device: str,
) -> tuple[dict[int, tuple[dict, Optional[dict]]], bool, Optional[ClassResult]]:
    """Train this rank's classes (``mine``, in order). Returns ``(reports, interrupted, failure)``: by
    class, the result and, once finished, the generator's state of each class this rank leads;
    whether a signal stopped it; the result of the class that failed or diverged, which ends its
    training."""
    reports: dict[int, tuple[dict, Optional[dict]]] = {}
    for k in mine:
        ranks, job = ranks_of_class[k], prepared.jobs[k]
        ddp = DDPGroup(groups[k], ranks.index(rank), len(ranks), ranks[0]) if k in groups else None
        leads = ddp is None or ddp.rank == 0
        where = f"{device} (rank {rank})" if ddp is None else f"{device} x{len(ranks)} (ranks {ranks})"
        trainer, result = None, None
        try:
            trainer = ClassTrainer(
                job,
                settings,
                prepared.train,
                prepared.val,
                prepared.boundaries,
                device,
                ddp=ddp,
                position=local_rank,
                vgg19=prepared.vgg19,
                log=_note,
            )
            result = trainer.run()
            result.device = where
            if leads:
                # The bundle is built from the states sent to rank 0, so no rank needs to see another's disk.
                state = load_checkpoint(Path(settings.run_dir) / result.checkpoint)["generator"]
                reports[k] = (result.to_dict(), state)
            if trainer.stop_requested:
                # The signal came while the class was finishing: it is saved; start no other.
                raise KeyboardInterrupt(trainer.stop_requested)
        except KeyboardInterrupt:
            if leads and k not in reports:
                stopped = result if result is not None else _stopped(trainer, job, "interrupted")
                reports[k] = (replace(stopped, device=where).to_dict(), None)
            return reports, True, None
        except TrainingDiverged as err:
            _note(f"class {k} ({job.config}) on {where} diverged {err}")
            return reports, False, replace(_stopped(trainer, job, "diverged", str(err)), device=where)
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
            _note(f"class {k} ({job.config}) on {where} failed: {error}\n{traceback.format_exc()}")
            return reports, False, replace(_stopped(trainer, job, "failed", error), device=where)
    return reports, False, None


def _stopped(trainer: Optional[ClassTrainer], job: ClassJob, status: str, error: Optional[str] = None) -> ClassResult:
    # How far an unfinished class got; only which class it is when its trainer never started.
    if trainer is None:
        return ClassResult(job.index, job.config, "", status, error=error)
    return trainer.result(status, error)


def _rank_label(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {ranks}"


def _gathered_results(
    settings: TrainSettings,
    prepared: _Prepared,
    ranks_of_class: list[list[int]],
    received: dict[int, dict],
    missing: str,
) -> list[ClassResult]:
    """Every class's result on rank 0, from the ``received`` reports by rank. A class its leading rank
    reported without did not start ("not run"); one whose leading rank sent nothing is read from disk
    (:func:`_unreported`, with ``missing`` formatted with that ``rank`` as the reason)."""
    results = []
    for job, ranks in zip(prepared.jobs, ranks_of_class):
        part = received.get(ranks[0])
        if part is None:
            results.append(_unreported(settings, job, ranks, missing.format(rank=ranks[0])))
        elif job.index in part:
            results.append(ClassResult(**part[job.index][0]))
        else:
            results.append(ClassResult(job.index, job.config, _rank_label(ranks), "not run", ranks=len(ranks)))
    return results


def _unreported(settings: TrainSettings, job: ClassJob, ranks: list[int], reason: str) -> ClassResult:
    """Class ``job``'s entry when rank 0 has no report of it: what its latest checkpoint says, if rank 0
    can see it (on several nodes, the run directory may not be shared). Its status is "unknown", as rank
    0 cannot tell an interrupted class from one whose rank failed or was killed, unless that checkpoint
    is the class's finished one, or the class's log ends with its divergence ("diverged", with the
    log's message). ``reason`` (why there is no report) starts its error."""
    folder = class_dir(settings.run_dir, job.index)
    try:
        loaded = load_latest(folder)
    except CheckpointError:
        loaded = None
    if loaded is not None and loaded[0].get("finished") and isinstance(loaded[0].get("result"), dict):
        state, path = loaded
        entry = ClassResult(**{**state["result"], "checkpoint": path.relative_to(settings.run_dir).as_posix()})
        together = "" if len(ranks) == 1 else f" x{len(ranks)}"
        entry.device = f"{entry.device}{together} ({_rank_label(ranks)})"  # as the rank would have reported it
        return entry
    planned = sum(math.ceil(steps / len(ranks)) for steps in (job.pixel_steps, job.gan_steps))
    entry = ClassResult(job.index, job.config, _rank_label(ranks), "unknown", planned_steps=planned, ranks=len(ranks))
    divergence = _logged_divergence(settings, job.index)
    if divergence is not None:
        entry.status = "diverged"
    if loaded is None:
        entry.error = divergence or f"{reason}; rank 0 sees no checkpoint of it in {folder}"
        return entry
    fill_progress(entry, *loaded, settings.run_dir)  # the checkpoint loaded above, not read again
    entry.error = divergence or f"{reason}; its last checkpoint that rank 0 sees is of step {entry.steps}"
    return entry


def _logged_divergence(settings: TrainSettings, index: int) -> Optional[str]:
    """The message of the divergence class ``index``'s log ends with, if rank 0 can read that log."""
    log = Path(settings.run_dir) / "logs" / f"class{index}.jsonl"
    try:
        last = log.read_text().strip().splitlines()[-1]
        record = json.loads(last)
    except (OSError, IndexError, ValueError):
        return None
    return record.get("error") if record.get("event") == "diverged" else None

"""Per-class training checkpoints: atomic, checksummed, loaded without unpickling code.

A checkpoint is two files in the class's folder:

- ``step00001000.pt``: ``torch.save`` of a dict of tensors, numbers, strings and state_dicts;
- ``step00001000.json``: its sha256, size and step, written after the ``.pt`` is durable.

Each file is written to a temp file, fsynced and renamed over the target, so a crash leaves
either the old file or the new one. The sidecar is the commit record: a ``.pt`` without one was
never completed and is ignored. Loading checks the sha256 before ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers, so a damaged or foreign file is reported
and never run.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = save_checkpoint(folder, 10, {"step": 10, "w": torch.ones(2)}, keep=2)
    >>> state, path = load_latest(folder)
    >>> state["step"], path.name
    (10, 'step00000010.pt')
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Callable, Optional

import torch

from ..atomic import write_bytes_atomically

__all__ = ["CheckpointError", "list_checkpoints", "load_checkpoint", "load_latest", "remove_debris", "save_checkpoint"]

_NAME = re.compile(r"step([0-9]{8,})\.pt")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what is wrong with it."""


def _sidecar(pt: Path) -> Path:
    return pt.with_suffix(".json")


def save_checkpoint(directory: Path, step: int, state: dict, *, keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``step`` in ``directory``; keep the newest ``keep`` ones.

    Returns:
        The ``.pt`` path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    pt = directory / f"step{step:08d}.pt"
    write_bytes_atomically(pt, data)
    record = {"step": step, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    write_bytes_atomically(_sidecar(pt), json.dumps(record).encode())
    for _, old in list_checkpoints(directory)[keep:]:
        # Sidecar first: an interrupted prune leaves an ignored .pt, never a record without data.
        _sidecar(old).unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return pt


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Completed checkpoints (those with a sidecar) in ``directory``, newest first: ``[(step, path)]``."""
    if not directory.is_dir():
        return []
    found = []
    for pt in directory.glob("step*.pt"):
        match = _NAME.fullmatch(pt.name)
        if match and _sidecar(pt).is_file():
            found.append((int(match.group(1)), pt))
    return sorted(found, reverse=True)


def remove_debris(directory: Path) -> list[Path]:
    """Delete what a run killed while saving left in ``directory``: temporary files of unfinished
    writes, and ``.pt`` files whose sidecar (the commit record) was never written. Only call this
    while holding the run's lock (:func:`mmsr.train.guards.run_lock`): another live run's files in
    flight look the same. Returns the removed paths.
    """
    if not directory.is_dir():
        return []
    removed = [p for p in directory.glob(".*.tmp") if p.is_file()]
    removed += [pt for pt in directory.glob("step*.pt") if _NAME.fullmatch(pt.name) and not _sidecar(pt).is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def load_checkpoint(path: Path) -> dict:
    """Verify and load one checkpoint (tensors on CPU).

    Raises:
        CheckpointError: the sidecar is missing or malformed, the size or sha256 does not match,
            or ``torch.load(weights_only=True)`` refuses the file.
    """
    try:
        record = json.loads(_sidecar(path).read_text())
        expected_sha, expected_bytes = str(record["sha256"]), int(record["bytes"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt: unreadable sidecar {_sidecar(path).name} ({err})") from None
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read: {err}") from None
    if len(data) != expected_bytes:
        raise CheckpointError(f"checkpoint {path} is corrupt: {len(data)} bytes, its sidecar says {expected_bytes}")
    if hashlib.sha256(data).hexdigest() != expected_sha:
        raise CheckpointError(f"checkpoint {path} is corrupt: sha256 mismatch with its sidecar")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types; all mean "not a usable checkpoint" here.
        # Only torch's reason: its advice to retry with weights_only=False would run code from the file.
        reason = re.search(r"WeightsUnpickler error: ([^\n]*)", str(err))
        detail = reason.group(1) if reason else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded safely: it holds more than tensors and plain containers ({detail})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict")
    return state


def load_latest(directory: Path, log: Optional[Callable[[str], None]] = None) -> Optional[tuple[dict, Path]]:
    """The newest loadable checkpoint in ``directory`` as ``(state, path)``, or None if there is none.

    A corrupt checkpoint is reported through ``log`` and skipped in favour of an older one.

    Raises:
        CheckpointError: checkpoints exist but none of them loads.
    """
    problems = []
    for _, path in list_checkpoints(directory):
        try:
            return load_checkpoint(path), path
        except CheckpointError as err:
            problems.append(str(err))
            if log is not None:
                log(f"{err}; not loaded")
    if problems:
        raise CheckpointError(
            f"no usable checkpoint in {directory}: {'; '.join(problems)}. "
            f"Delete {directory} to retrain this class from scratch."
        )
    return None

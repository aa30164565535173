"""Training records: a JSONL log per class and the run's summary.json.

summary.json is what the evaluation tools read to print the paper's Table 3 (training time of a
run and its ratio to the 16-8 baseline). Its top level holds:

- ``mode`` ("mmsr" or "baseline"), ``mmsr_version``, ``command`` (as typed) and ``cwd`` (where), ``settings`` (every option;
  ``vgg19`` is the VGG19 file the perceptual loss used, wherever it was found, null when it was off);
- ``losses``: the pixel loss, and for the GAN phase (null without one) its weights, learning rate,
  whether the perceptual loss was on and its VGG19 file;
- ``data``: folder, image counts, skipped files; ``boundaries`` (the bundle's), ``threshold``,
  ``class_shares``; a ``--baseline-class`` baseline also has ``crop_boundaries``, the split of the
  training crops that ``class_shares`` describe (its bundle routes nothing);
- ``classes``: per class ``index``, ``config``, ``device``, ``status`` ("finished", "failed",
  "diverged", "interrupted", "not run", or under torchrun "unknown": its rank sent rank 0 no report,
  and the entry holds what the last checkpoint rank 0 could see says), ``steps`` (done so far, also
  for an unfinished class), ``planned_steps``, ``pixel_steps``, ``gan_steps``, ``early_stopped_at``, ``wall_time_s`` (training
  time over all sessions; null until the class finished), ``val_psnr`` and ``best_val_psnr`` (RGB
  PSNR on the class's validation crops, not eval's PSNR-Y), ``crops_per_s``,
  ``generator_parameters``, ``checkpoint`` (the last one, relative to the run directory), ``error``;
- ``wall_time_s``: the last invocation that trained, start to end (a ``--resume`` with nothing left
  to train keeps the earlier one);
- ``sequential_wall_time_s``: the sum of the classes' times (all on one device, one after another);
- ``predicted_wall_time_separate_devices_s``: the max of the classes' times, i.e. each class on a
  device of its own, marked by ``predicted_note`` as computed from the per-class timings, not measured;
- ``bundle``: the bundle the run wrote (absolute path, ``relative`` path from the run directory, and
  sha256), null until it wrote one; a later ``--resume`` may replace that file, and no other (found at
  either path: a run directory may move with its bundle).

Example:
    >>> import tempfile
    >>> log = JsonlLog(Path(tempfile.mkdtemp()) / "class0.jsonl")
    >>> log.write({"step": 1, "phase": "pixel", "loss_pixel": 0.1})
    >>> log.path.read_text().count("\\n")
    1
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Optional

from ..atomic import write_bytes_atomically

__all__ = ["JsonlLog", "summarise", "write_summary"]

PREDICTED_NOTE = "computed: the longest class's wall time, as if each class had a device of its own; not measured"


def _plain(value: Any) -> Any:
    # JSON has no NaN or inf; a missing measurement is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class JsonlLog:
    """Append-only JSON-lines log; each :meth:`write` is one flushed line (resumed runs append)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_plain(record)) + "\n")


def summarise(
    *,
    mode: str,
    settings: dict,
    data: dict,
    boundaries: Optional[list],
    threshold: float,
    class_shares: Optional[list],
    classes: list[dict],
    wall_time_s: float,
    mmsr_version: str,
    losses: Optional[dict] = None,
) -> dict:
    """The summary.json dict (see the module docstring for its fields)."""
    times = [c.get("wall_time_s") for c in classes]
    complete = bool(times) and all(isinstance(t, (int, float)) and c.get("status") == "finished" for t, c in zip(times, classes))
    return _plain(
        {
            "mode": mode,
            "mmsr_version": mmsr_version,
            "command": settings.get("command"),
            "cwd": os.getcwd(),  # the command's relative paths (DATA, --out) are relative to this
            "losses": losses,
            "data": data,
            "boundaries": boundaries,
            "threshold": threshold,
            "class_shares": class_shares,
            "classes": classes,
            "wall_time_s": wall_time_s,
            "sequential_wall_time_s": sum(times) if complete else None,
            "predicted_wall_time_separate_devices_s": max(times) if complete else None,
            "predicted_note": PREDICTED_NOTE,
            "bundle": None,
            "settings": settings,
        }
    )


def write_summary(path: Path, summary: dict) -> None:
    """Write summary.json atomically (a reader never sees half of it)."""
    write_bytes_atomically(path, (json.dumps(summary, indent=2) + "\n").encode())

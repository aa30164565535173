"""Snapshot scores kept in each run folder, so ``mmsr report --quality`` measures a snapshot once.

Measuring a run's curve means upscaling the whole HR folder once per snapshot: about 50 s per
snapshot for Set14 on a 2-core CPU, so ten minutes and more for a run, paid again on every
report. Comparing several seeds (``mmsr report`` with one name given to several runs) multiplies
it. The mean PSNR-Y / SSIM-Y of each measured snapshot (and of the bundle a run with a GAN phase
ships) is therefore stored in the run folder (``RUN/quality_cache.json``) under a key that covers
everything the number depends on:

- the snapshot files (path, size and modification time of each class's file), or the bundle file;
- the HR images measured (path, size and modification time, after ``--limit``);
- the method as :meth:`mmsr.evaluate.Method.describe` states it (configs, routing, tiling, device
  type) and the mmsr version, so a change of defaults or of the code measures again.

A result is only stored when every image was measured. A missing, unreadable or foreign cache file
is ignored (the snapshots are measured again and the file rewritten); it is written atomically.

Example:
    >>> cache = QualityCache("runs/mmsr.run")                                    # doctest: +SKIP
    >>> cache.get(key) or cache.put(key, psnr_y=26.8, ssim_y=0.73, images=14)    # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional, Sequence

from .atomic import write_bytes_atomically

__all__ = ["CACHE_FILE", "QualityCache", "file_fingerprint", "snapshot_key"]

CACHE_FILE = "quality_cache.json"
_FORMAT = "mmsr-quality-cache-1"


def file_fingerprint(paths: Sequence[str | os.PathLike]) -> list[list]:
    """``[absolute path, size, mtime_ns]`` per file: changes when a file is replaced or rewritten."""
    out = []
    for path in paths:
        path = Path(path)
        stat = path.stat()
        out.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return out


def snapshot_key(
    snapshot_files: Sequence[str | os.PathLike],
    images: Sequence[str | os.PathLike],
    method: dict,
    *,
    version: str,
    crop_border: int,
) -> str:
    """A hex digest of everything a snapshot's measured score depends on.

    ``method`` is :meth:`Method.describe`; its ``name``, ``path`` and ``path_given`` (labels, not
    behaviour; the files are in ``snapshot_files``) are left out, and its device is reduced to the
    device type (CPU and CUDA results differ in the last digits; two GPUs of one kind do not).
    """
    facts = {k: v for k, v in method.items() if k not in ("name", "path", "path_given")}
    if "device" in facts:
        facts["device"] = str(facts["device"]).split(":")[0]
    payload = {
        "snapshots": file_fingerprint(snapshot_files),
        "images": file_fingerprint(images),
        "method": facts,
        "crop_border": crop_border,
        "mmsr": version,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class QualityCache:
    """The measured snapshot scores of one run folder."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / CACHE_FILE
        self.entries: dict[str, dict] = {}
        self._dirty = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return  # none yet, or unreadable: everything is measured again and the file rewritten
        if isinstance(data, dict) and data.get("format") == _FORMAT and isinstance(data.get("entries"), dict):
            self.entries = {k: v for k, v in data["entries"].items() if _valid(v)}

    def get(self, key: str) -> Optional[dict]:
        """``{"psnr_y", "ssim_y", "images"}`` stored under ``key``, or None."""
        return self.entries.get(key)

    def put(self, key: str, *, psnr_y: float, ssim_y: float, images: int) -> None:
        self.entries[key] = {"psnr_y": float(psnr_y), "ssim_y": float(ssim_y), "images": int(images)}
        self._dirty = True

    def save(self) -> None:
        """Write the file atomically if anything was added."""
        if not self._dirty:
            return
        text = json.dumps({"format": _FORMAT, "entries": self.entries}, indent=1, sort_keys=True)
        write_bytes_atomically(self.path, text.encode())
        self._dirty = False


def _valid(entry) -> bool:
    return (
        isinstance(entry, dict)
        and all(isinstance(entry.get(k), (int, float)) and not isinstance(entry.get(k), bool)
                for k in ("psnr_y", "ssim_y", "images"))
    )

"""Run one mmsr command (`python -m mmsr ...`) as a subprocess, its output kept in a log file.

Example:
    >>> run_logged(mmsr_command("build-info"), Path("/tmp/build_info.log"), "mmsr build-info")  # doctest: +SKIP
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["mmsr_command", "run_logged"]

_LOG_TAIL_LINES = 25  # shown when a command fails


def mmsr_command(*arguments: str) -> list:
    """``python -m mmsr ARGUMENTS...`` with this interpreter, so the run uses the mmsr it imports."""
    return [sys.executable, "-m", "mmsr", *arguments]


def run_logged(command: Sequence[str], log: Path, what: str, *, threads: Optional[int] = None) -> None:
    """Run ``command`` with stdout and stderr written to ``log`` (after a ``$ command`` line).

    ``threads`` sets OMP_NUM_THREADS, which torch takes as its thread count at start-up: one way that
    sizes every command alike, whatever its own options (`mmsr train --threads` is per worker).

    Raises:
        RuntimeError: a non-zero exit status; the message holds the end of the log.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as f:
        f.write("$ " + shlex.join(command) + "\n")
        f.flush()
        env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
        result = subprocess.run(list(command), stdout=f, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        raise RuntimeError(f"{what} failed (exit status {result.returncode}); end of {log}:\n" + "\n".join(tail))

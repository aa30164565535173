"""Atomic file writes: a reader sees the old file or the whole new one, never a part of it.

Every file mmsr writes for the user (images, bundles, checkpoints, reports) goes through here. The
data goes to a temporary file in the destination's directory, is fsynced, and is renamed over
the destination with ``os.replace``, which is atomic within one filesystem; then the directory
is fsynced so that the rename itself survives a crash. A failure leaves the old file untouched
and removes the temporary one.

Example:
    >>> write_bytes_atomically(Path("report.md"), b"# results\\n")  # doctest: +SKIP
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable, Union

__all__ = ["write_atomically", "write_bytes_atomically"]


def _fsync_dir(directory: Path) -> None:
    # Windows has no directory handles to fsync; its rename is durable enough there.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Union[str, os.PathLike], write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file, then move it over ``path`` in one step.

    Args:
        path: the destination; its directory must exist.
        write: fills the open binary file (e.g. ``lambda f: image.save(f, format="PNG")``).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes_atomically(path: Union[str, os.PathLike], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomically`)."""
    write_atomically(path, lambda f: f.write(data))

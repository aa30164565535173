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

    Raises:
        OSError: the temporary file cannot be created or moved over ``path`` (a missing folder, no
            permission, ``path`` is a folder): the error names ``path``, not the temporary file.
        Whatever ``write`` raises, as it is.
    """
    path = Path(path)
    tmp = path.with_name(_temporary_name(path.name))
    try:
        try:
            f = open(tmp, "xb")
        except OSError as err:
            raise _naming(path, err) from None
        with f:
            write(f)
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as err:  # e.g. the disk filled up
                raise _naming(path, err) from None
        try:
            _keep_mode(path, tmp)
            os.replace(tmp, path)
        except OSError as err:
            raise _naming(path, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _temporary_name(name: str) -> str:
    """A hidden, unique name beside ``name``; a short one where ``name`` is near the 255-byte limit
    most file systems set on a name (the temporary name adds ~20 characters)."""
    unique = f"{os.getpid()}.{secrets.token_hex(4)}.tmp"
    long_name = f".{name}.{unique}"
    return long_name if len(long_name.encode()) <= 255 else f".mmsr.{unique}"


def _keep_mode(path: Path, tmp: Path) -> None:
    """Give the new file the permissions of the one it replaces (a fresh file gets the umask's)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    os.chmod(tmp, mode & 0o7777)


def _naming(path: Path, err: OSError) -> OSError:
    # The temporary file is an implementation detail; the user asked for ``path``. OSError(errno, ...)
    # becomes the matching subclass (FileNotFoundError, PermissionError, IsADirectoryError, ...).
    if err.errno is None:
        return OSError(f"cannot write {str(path)!r}: {err}")
    return OSError(err.errno, err.strerror, str(path))


def write_bytes_atomically(path: Union[str, os.PathLike], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomically`)."""
    write_atomically(path, lambda f: f.write(data))

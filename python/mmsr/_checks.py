"""Argument checks shared by the public entry points, with messages that name the argument."""
from __future__ import annotations

import math
import numbers
import struct

import torch

from . import _ops


_INT64_MAX = 2**63 - 1


def check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int if it is an integer (a Python or NumPy int, not a bool) from ``minimum``
    to 2**63 - 1 (what the native ops take); TypeError or ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > _INT64_MAX:
        raise ValueError(f"{name} must be at most 2**63 - 1, got {value}")
    return value


def check_bool(value, name: str) -> bool:
    """``value`` if it is True or False; a TypeError otherwise (so ``"no"`` does not read as True)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def is_symbolic(value) -> bool:
    """True where ``value``'s number may not be known yet: inside torch.compile's tracing (which
    may turn a float argument into a symbol, and shows it to Python as a plain float) or for a
    symbolic number from torch.export."""
    return torch.compiler.is_compiling() or isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_real(value, name: str, minimum: float | None = None):
    """``value`` as a finite Python float (ints, floats, NumPy scalars; not bools, strings or tensors).

    Under torch.compile only the type is checked: the value may be a symbol, known only when the
    compiled code runs, and the kernels read any float without harm (a threshold below 0 acts as 0,
    a NaN one keeps nothing). Eager calls check everything.
    """
    if isinstance(value, (bool, torch.Tensor)) or not isinstance(value, (numbers.Real, torch.SymFloat, torch.SymInt)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {_short(value)}")
    if is_symbolic(value):
        return value
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number, got {_short(value)} (too large for a float)") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def as_float32(value: float) -> float:
    """``value`` rounded to float32, the precision the kernels compare scores and thresholds in."""
    return struct.unpack("f", struct.pack("f", value))[0]


def check_boundaries(values, name: str = "boundaries") -> list:
    """Class boundaries as a list of finite floats, strictly ascending once rounded to float32.

    Accepts a list or tuple of numbers (symbolic ones from torch.compile pass unchecked). Ascending
    is checked in float32 because that is what the kernels compare in: two boundaries that differ
    only beyond float32's precision would leave the class between them empty.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of numbers, got {type(values).__name__} {_short(values)}")
    bounds = [check_real(b, f"{name}[{k}]") for k, b in enumerate(values)]
    if any(is_symbolic(b) for b in bounds):
        return bounds
    rounded = [as_float32(b) for b in bounds]
    if any(a >= b for a, b in zip(rounded, rounded[1:])):
        raise ValueError(f"{name} must be strictly ascending (in float32), got {bounds}")
    return bounds


class DeviceError(ValueError):
    """A device mmsr cannot run on. ``reason`` says why without naming the device, for callers that
    name it themselves (``mmsr eval --device``); the message names it as the argument ``device``."""

    def __init__(self, device, reason: str, *, wrong_kind: bool = False) -> None:
        super().__init__(f"device {reason}, got {device!r}" if wrong_kind else f"device={device!r} but {reason}")
        self.reason = reason


def check_device(device) -> torch.device:
    """``device`` (text or torch.device) as a device mmsr runs on here: the CPU, or a visible CUDA GPU
    with mmsr's CUDA kernels built; :class:`DeviceError` (a ValueError) naming what is missing otherwise."""
    kinds = "must be 'cpu', 'cuda' or 'cuda:N'"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(device, kinds, wrong_kind=True) from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise DeviceError(str(device), kinds, wrong_kind=True)
    if not torch.cuda.is_available():
        raise DeviceError(str(device), "torch sees no CUDA GPU (torch.cuda.is_available() is False)")
    if not _ops.CUDA_COMPILED:
        raise DeviceError(
            str(device),
            "mmsr was built without its CUDA kernels; reinstall with a CUDA compiler on PATH (MMSR_CUDA=ON makes that required)",
        )
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise DeviceError(str(device), f"only {torch.cuda.device_count()} CUDA devices are visible")
    return torch.device("cuda", index)

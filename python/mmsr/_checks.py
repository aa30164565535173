"""Argument checks shared by the public entry points, with messages that name the argument."""
from __future__ import annotations


def check_int(value, name: str, minimum: int) -> int:
    """``value`` if it is an int (not a bool) >= ``minimum``; TypeError or ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value

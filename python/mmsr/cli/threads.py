"""``--threads N`` for the commands that compute on the CPU (upscale, eval, report, classify, calibrate).

torch's thread count also sizes mmsr's OpenMP kernels (TVAT, tiling, stitching: the ops pass
``torch.get_num_threads()`` down), so one setting covers a command's whole CPU work. On a shared
machine fewer threads than cores is often faster: threads that share their cores with other work
wait for each other at every op. `mmsr train --threads` is its own option (threads per training
worker) and does not use this module.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_threads_option(parser, "the upscaling")
    >>> parser.parse_args(["--threads", "2"]).threads
    2
"""
from __future__ import annotations

import argparse

__all__ = ["add_threads_option", "apply_threads", "threads_option"]


def threads_option(text: str) -> int:
    """argparse type of ``--threads``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of CPU threads, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 CPU thread, got {value}")
    return value


def add_threads_option(parser, what: str) -> None:
    """Add ``--threads N`` to ``parser`` (or an argument group); ``what`` names the work it sizes."""
    parser.add_argument(
        "--threads", type=threads_option, metavar="N",
        help=f"CPU threads for {what}, torch's and mmsr's kernels alike (default: torch's, all cores unless "
        "OMP_NUM_THREADS says otherwise)",
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's thread count from ``args.threads`` when it was given; otherwise leave torch's default."""
    if getattr(args, "threads", None) is not None:
        import torch  # here, as the commands import torch: `mmsr --help` stays quick

        torch.set_num_threads(args.threads)

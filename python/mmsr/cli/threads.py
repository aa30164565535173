"""``--threads N`` for the commands that compute on the CPU (upscale, eval, report, classify, calibrate).

torch's thread count also sizes mmsr's OpenMP kernels (TVAT, tiling, stitching: the ops pass
``torch.get_num_threads()`` down), so one setting covers a command's whole CPU work. On a shared
machine fewer threads than cores is often faster: threads that share their cores with other work
wait for each other at every op. `mmsr train --threads` means threads per training worker and is
set by the trainer; it parses its value with the same ``mmsr.train.config.threads_option``.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_threads_option(parser, "the upscaling")
    >>> parser.parse_args(["--threads", "2"]).threads
    2
"""
from __future__ import annotations

import argparse

import torch

__all__ = ["add_threads_option", "apply_threads"]


def add_threads_option(parser, what: str) -> None:
    """Add ``--threads N`` to ``parser`` (or an argument group); ``what`` names the work it sizes."""
    from ..train.config import threads_option  # the one parser of a thread count, `mmsr train`'s too

    parser.add_argument(
        "--threads", type=threads_option, metavar="N",
        help=f"CPU threads for {what}, torch's and mmsr's kernels alike (default: torch's, all cores unless "
        "OMP_NUM_THREADS says otherwise)",
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's thread count from ``args.threads`` when it was given; otherwise leave torch's default."""
    if getattr(args, "threads", None) is not None:
        torch.set_num_threads(args.threads)

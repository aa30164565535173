"""The `mmsr` command: one sub-command per module in this package.

Each sub-command module defines ``add_parser(subparsers)``, which registers its parser and sets
``run`` (a function of the parsed arguments returning the exit status) as a default.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from . import build_info_cmd, calibrate_cmd, classify_cmd, eval_cmd, inspect_cmd, report_cmd, train_cmd, upscale_cmd

# Order here is the order in `mmsr --help`.
COMMANDS = [upscale_cmd, classify_cmd, eval_cmd, report_cmd, train_cmd, calibrate_cmd, inspect_cmd, build_info_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmsr",
        description="Multi-model super-resolution: TVAT-routed SRGAN generators.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"mmsr {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe is caught below, not at exit
        return code
    except KeyboardInterrupt:
        print("mmsr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of the output went away (`mmsr ... | head`): stop quietly, as Unix tools do. Point
        # stdout at /dev/null so that Python's own flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141

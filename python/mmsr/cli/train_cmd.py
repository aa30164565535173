"""`mmsr train`: train one model per TVAT class (or the single-model baseline) and write a bundle."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

_DESCRIPTION = (
    "Train one SRGAN per TVAT texture class, each at its own depth, on one or more devices, and write "
    "a model bundle (weights stored as float16). Logs, checkpoints and summary.json go to the run directory. "
    "Each class's pixel phase ends by restoring the generator that scored the best validation PSNR (also with "
    "--early-stop 0); that PSNR, in the console, logs and summary.json, is RGB PSNR on fixed validation crops, "
    "not `mmsr eval`'s PSNR-Y on whole images. A class whose loss, weights or validation PSNR become NaN or "
    "infinite stops as diverged, and the run exits non-zero without a bundle. Also runs under "
    "torchrun: torchrun --nproc-per-node N -m mmsr.train DATA --out BUNDLE ..."
)


def add_parser(subparsers) -> None:
    from ..train.config import add_arguments

    parser = subparsers.add_parser("train", help="train per-class SR models into a bundle", description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, argv: Optional[Sequence[str]] = None) -> int:
    from ..train.config import settings_from_args
    from ..train.launch import run as launch

    try:
        settings = settings_from_args(args, command=argv if argv is not None else sys.argv)
        return launch(settings)
    except (ValueError, OSError) as err:
        print(f"mmsr train: error: {err}", file=sys.stderr)
        return 2


def main(argv: Sequence[str], prog: str = "mmsr train") -> int:
    """Parse ``argv`` as `mmsr train` options and run; the entry of ``python -m mmsr.train``."""
    from ..train.config import add_arguments

    parser = argparse.ArgumentParser(prog=prog, description=_DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv), argv=[prog, *argv])

"""`mmsr report RUN ...`: the paper's Table 3 (training time and ratio to the 16-8 baseline) from summary.json files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="training-time table (the paper's Table 3) from mmsr train summaries",
        description="Read the summary.json of each training run and print, as Markdown, each run's training time "
        "and its ratio to the 16-8 baseline run (the one trained with `mmsr train --baseline`, or the one with a "
        "single 16-8 class), with the time on separate devices computed as the longest class's time.",
    )
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="[NAME=]RUN",
        help="a run folder (holding summary.json) or a summary.json file, named NAME or by its folder",
    )
    parser.add_argument("--baseline", metavar="NAME", help="the run to take ratios against (default: found by mode)")
    parser.add_argument("--out", metavar="FILE", help="also write the Markdown to FILE")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate_training import find_baseline, load_run, training_table
    from ..atomic import write_bytes_atomically

    try:
        runs = [load_run(spec) for spec in args.runs]
        baseline = find_baseline(runs, args.baseline)
        table = training_table(runs, baseline)
        if args.out is not None:
            out = Path(args.out)
            if out.resolve() in {Path(r.path).resolve() for r in runs}:
                raise ValueError(f"--out {args.out!r} is one of the input summaries; choose another file")
            write_bytes_atomically(out, table.encode())
    except (ValueError, OSError) as err:
        print(f"mmsr report: error: {err}", file=sys.stderr)
        return 2
    if baseline is None:
        print("mmsr report: no baseline run among the inputs, so no ratios; train one with `mmsr train --baseline`"
              " or name one with --baseline", file=sys.stderr)
    sys.stdout.write(table)
    return 0

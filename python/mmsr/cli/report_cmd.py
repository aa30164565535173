"""`mmsr report RUN ...`: the paper's Table 3 (training time and ratio to the 16-8 baseline) from summary.json
files; with `--quality HR_DIR`, quality against training time and the time each run needs at equal quality."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .threads import add_threads_option, apply_threads


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="training-time table (the paper's Table 3) from mmsr train summaries",
        description="Read the summary.json of each training run and print, as Markdown, each run's training time "
        "and its ratio to the baseline run (the one trained with `mmsr train --baseline`, or the one with a "
        "single 16-8 or 16-8r class), with the time on separate devices computed as the longest class's time. With "
        "--quality, also measure every snapshot of runs trained with `mmsr train --snapshots K` on an HR folder "
        "and compare each run with the baseline at equal quality: the training time each needs to reach the "
        "highest PSNR-Y both reach. Runs given one NAME are seeds of one setting: each is compared with the "
        "baseline trained with its seed, and --quality adds the setting's mean curve over its seeds. Images of "
        "HR_DIR that cannot be measured are skipped and listed in the report; the exit status is then 1.",
    )
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="[NAME=]RUN",
        help="a run folder (holding summary.json) or a summary.json file, named NAME or by its folder; "
        "several runs with one NAME are seeds of one setting (their --seed must differ; their mode, models and "
        "step budgets must not)",
    )
    parser.add_argument("--baseline", metavar="NAME",
                        help="the run (or the NAME of its seeds) to take ratios against (default: found by mode)")
    parser.add_argument("--out", metavar="FILE",
                        help="also write the Markdown to FILE: a new file, or a Markdown report mmsr wrote before; "
                        "never inside an input run folder")
    group = parser.add_argument_group("quality against training time (runs trained with --snapshots)")
    group.add_argument("--quality", metavar="HR_DIR", help="measure each run's snapshots on this folder of HR images")
    group.add_argument("--device", default="cpu", help="where the snapshots upscale: cpu, cuda or cuda:N (default cpu)")
    group.add_argument("--limit", type=int, metavar="N", help="measure only the first N images of HR_DIR")
    group.add_argument("--batch-size", type=int, default=64, help="tiles per generator call (default 64)")
    group.add_argument("--no-cache", action="store_true",
                       help="measure every snapshot again instead of reading the scores kept in each run folder "
                       "(RUN/quality_cache.json, keyed by the snapshot and image files and the settings)")
    add_threads_option(parser, "measuring snapshots (--quality)")
    parser.set_defaults(run=run)


# What a report this command wrote starts with (training_table's heading): the one kind of file --out replaces.
_HEADING = "# Training time (the paper's Table 3)"


def _check_out(out: Path, runs, images) -> None:
    """Refuse an --out that would overwrite anything but a report this command wrote, or land in a run folder."""
    target = out.resolve()
    if target in {p.resolve() for p in images}:
        raise ValueError(f"--out {str(out)!r} is one of the --quality images; choose another file")
    for run in runs:
        folder = Path(run.path).resolve().parent
        if target == folder or folder in target.parents:
            raise ValueError(f"--out {str(out)!r} is inside the run folder {str(folder)!r} of {run.name!r} (its "
                             "summary, plan, checkpoints and snapshots); choose a file outside it")
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_file() or out.suffix.lower() != ".md":
        raise ValueError(f"--out {str(out)!r} exists and is not a Markdown (.md) report; `mmsr report` only replaces "
                         "a report it wrote: choose a new file")
    with open(out, "rb") as f:
        first = f.read(len(_HEADING.encode()))
    if first != _HEADING.encode():
        raise ValueError(f"--out {str(out)!r} exists and is not a report `mmsr report` wrote (it does not start with "
                         f"{_HEADING!r}); choose a new file")


def run(args: argparse.Namespace) -> int:
    from ..atomic import write_bytes_atomically
    from ..bundle import BundleError
    from ..evaluate import check_device, list_images
    from ..evaluate_training import find_baselines, label_seeds, load_run, training_table

    apply_threads(args)  # before any work: it sizes torch's and mmsr's CPU kernels

    skipped = {}
    try:
        runs = label_seeds([load_run(spec) for spec in args.runs])
        baselines = find_baselines(runs, args.baseline)
        images = [] if args.quality is None else list_images(args.quality, "--quality")
        device = None if args.quality is None else check_device(args.device, "--device")
        table = training_table(runs, baselines)
        out = None
        if args.out is not None:
            out = Path(args.out)
            _check_out(out, runs, images)
        if args.quality is not None:
            section, skipped = _quality_section(args, device, runs, baselines, len(images))
            table += "\n" + section
        if out is not None:
            write_bytes_atomically(out, table.encode())
    except (ValueError, OSError, BundleError) as err:
        print(f"mmsr report: error: {err}", file=sys.stderr)
        return 2
    if not baselines:
        print("mmsr report: no baseline run among the inputs, so no ratios; train one with `mmsr train --baseline`"
              " or name one with --baseline", file=sys.stderr)
    sys.stdout.write(table)
    if skipped:
        print(f"mmsr report: {len(skipped)} image(s) of --quality could not be measured and were skipped (listed in "
              f"the report): {', '.join(skipped)}", file=sys.stderr)
        return 1
    return 0


def _quality_section(args: argparse.Namespace, device, runs, baselines, folder_images: int) -> tuple[str, dict]:
    """The --quality Markdown, and the images that could not be measured (name -> reason)."""
    from ..evaluate_curve import curve_report, measure_curves
    from ..evaluate_seeds import seed_report

    curves = measure_curves(
        runs, args.quality, device=device, limit=args.limit, batch_size=args.batch_size, cache=not args.no_cache
    )
    base_curves = [c for c in curves if any(c.run is b for b in baselines)]
    seeds = seed_report(curves, base_curves)
    measured = folder_images if args.limit is None else min(args.limit, folder_images)
    report = curve_report(curves, base_curves, args.quality, images=(measured, folder_images))
    skipped = dict(pair for curve in curves for pair in curve.skipped)
    return report + ("\n" + seeds if seeds else ""), skipped

"""`mmsr calibrate DATA`: the TVAT histogram of a training folder's LR crops and suggested class boundaries.

It computes what `mmsr train` calibrates when it is given no --boundaries: the same images (those
left after train's hold-out split, for the same --holdout and --seed), the same crops and the same
boundaries.
"""
from __future__ import annotations

import argparse
import sys

from .threads import add_threads_option, apply_threads


def add_parser(subparsers) -> None:
    import mmsr

    from ..train.config import holdout_option, seed_option

    parser = subparsers.add_parser(
        "calibrate",
        help="TVAT histogram of training crops and suggested class boundaries",
        description="Score random LR crops of DATA with TVAT and print their histogram and the boundaries of "
        "equal-count classes: exactly what `mmsr train DATA` calibrates when it is given no --boundaries, with "
        "the same --classes, --crop, --scale, --threshold, --seed, --holdout and --samples (train's "
        "--calib-samples). Like train, it first holds out --holdout of the images for validation and scores "
        "crops (HR crop, bicubic down-sampling) of the rest only.",
    )
    parser.add_argument("data", help="folder of HR images, read recursively")
    parser.add_argument("--classes", type=int, default=3, help="number of classes (default: %(default)s)")
    parser.add_argument("--crop", type=int, default=96, help="HR crop side (default: %(default)s)")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=4, help="SR factor (default: %(default)s)")
    parser.add_argument(
        "--samples",
        type=int,
        default=4096,
        help="random crops to score, train's --calib-samples (default: %(default)s)",
    )
    parser.add_argument(
        "--threshold", type=float, default=mmsr.DEFAULT_TVAT_THRESHOLD, help="TVAT threshold (default: %(default)s)"
    )
    parser.add_argument(
        "--holdout",
        type=holdout_option,
        default=0.1,
        help="share of images train holds out for validation; they are not scored, as in train (default: %(default)s)",
    )
    parser.add_argument("--bins", type=int, default=20, help="histogram bins (default: %(default)s)")
    parser.add_argument(
        "--seed",
        type=seed_option,
        default=0,
        help="seeds the hold-out split and the crop positions, as train's --seed does (default: %(default)s)",
    )
    add_threads_option(parser, "TVAT scoring")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import math

    import torch

    from ..data import load_folder, split_holdout
    from ..train.calibrate import calibrate, check_crop, format_histogram

    apply_threads(args)  # before any work: it sizes torch's and mmsr's CPU kernels

    try:
        if args.classes < 1 or args.samples < 1 or args.bins < 1:
            raise ValueError("--classes, --samples and --bins must be positive")
        if args.crop < 1 or args.crop % args.scale:
            raise ValueError(f"--crop {args.crop} is not a positive multiple of --scale {args.scale}")
        check_crop(args.crop, args.scale)
        if args.threshold < 0 or not math.isfinite(args.threshold):
            raise ValueError(f"--threshold must be a finite number >= 0, got {args.threshold}")
        folder = load_folder(args.data, min_size=args.crop)
        train, held_out = split_holdout(folder.images, args.holdout, seed=args.seed)
        result = calibrate(
            train,
            classes=args.classes,
            crop=args.crop,
            scale=args.scale,
            threshold=args.threshold,
            samples=args.samples,
            seed=args.seed,
        )
    except (ValueError, OSError) as err:
        print(f"mmsr calibrate: error: {err}", file=sys.stderr)
        return 2
    lr_side = args.crop // args.scale
    held = 0 if held_out is None else len(held_out)
    print(
        f"TVAT of {args.samples} LR crops ({lr_side}x{lr_side}, x{args.scale} from {args.crop}x{args.crop} HR) "
        f"of {len(train)} of the {len(folder.images)} images in {args.data} ({held} held out for validation, as "
        f"`mmsr train --holdout {args.holdout:g} --seed {args.seed}` holds them out), threshold {args.threshold:g}"
    )
    print(format_histogram(result.scores, result.boundaries, bins=args.bins))
    quantiles = result.scores.quantile(torch.tensor([0.0, 0.5, 1.0])).tolist()
    print(f"min {quantiles[0]:.4f}  median {quantiles[1]:.4f}  max {quantiles[2]:.4f}")
    text = ",".join(f"{b:.6g}" for b in result.boundaries)
    shares = " / ".join(f"{f:.1%}" for f in result.fractions)
    print(f"suggested boundaries ({args.classes} equal-count classes): {text or '(none: one class)'}")
    print(f"class shares on this sample: {shares}")
    if text:
        print(f"use: mmsr train {args.data} --boundaries {text} --crop {args.crop} --scale {args.scale} ...")
    return 0

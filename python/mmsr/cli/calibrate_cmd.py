"""`mmsr calibrate DATA`: the TVAT histogram of a training folder's LR crops and suggested class boundaries."""
from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    import mmsr

    parser = subparsers.add_parser(
        "calibrate",
        help="TVAT histogram of training crops and suggested class boundaries",
        description="Score random LR crops of DATA with TVAT (crops as `mmsr train` cuts them: HR crop, bicubic "
        "down-sampling) and print their histogram and the boundaries of equal-count classes.",
    )
    parser.add_argument("data", help="folder of HR images, read recursively")
    parser.add_argument("--classes", type=int, default=3, help="number of classes (default 3)")
    parser.add_argument("--crop", type=int, default=96, help="HR crop side (default 96)")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=4, help="SR factor (default 4)")
    parser.add_argument("--samples", type=int, default=4096, help="random crops to score (default 4096)")
    parser.add_argument(
        "--threshold", type=float, default=mmsr.DEFAULT_TVAT_THRESHOLD, help="TVAT threshold (default %(default)s)"
    )
    parser.add_argument("--bins", type=int, default=20, help="histogram bins (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_folder
    from ..train.calibrate import calibrate, format_histogram

    try:
        if args.classes < 1 or args.samples < 1 or args.bins < 1:
            raise ValueError("--classes, --samples and --bins must be positive")
        if args.crop % args.scale:
            raise ValueError(f"--crop {args.crop} is not divisible by --scale {args.scale}")
        folder = load_folder(args.data, min_size=args.crop)
        result = calibrate(
            folder.images,
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
    print(
        f"TVAT of {args.samples} LR crops ({lr_side}x{lr_side}, x{args.scale} from {args.crop}x{args.crop} HR) "
        f"of {len(folder.images)} images in {args.data}, threshold {args.threshold:g}"
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

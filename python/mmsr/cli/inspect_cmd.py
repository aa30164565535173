"""`mmsr inspect [BUNDLE]`: what a bundle holds (routing, classes, weights) and the `mmsr train` runs
that made it, read from its header; the default bundle when none is named."""
from __future__ import annotations

import json
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show what a bundle holds and how it was trained",
        description="Load a bundle as `mmsr upscale` would (so its weights are checked against the SHA-256 in its "
        "header, where it has one) and print its scale, tiling, TVAT threshold and class boundaries, each class's "
        "model and parameter count, and the chain of `mmsr train` runs recorded in it (a run started with --init "
        "records the bundle it started from), oldest first, each with its data, steps, wall time, devices and "
        "command. Exit status 1 when the file cannot be loaded.",
    )
    parser.add_argument("bundle", nargs="?", default="default", metavar="BUNDLE",
                        help="a bundle file, or 'default' for the one shipped with mmsr (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of text")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..bundle import BundleError, resolve_bundle_path
    from ..bundle_summary import format_summary, summarize_bundle

    try:
        summary = summarize_bundle(resolve_bundle_path(args.bundle))
    except BundleError as err:
        print(f"mmsr inspect: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0

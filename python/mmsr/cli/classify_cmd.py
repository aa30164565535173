"""`mmsr classify`: show how an image's tiles would be routed, as a tinted map and a class histogram."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from .upscale_cmd import CommandError, FileSet, add_image_limit_argument, resolve_bundle
from .threads import add_threads_option, apply_threads

_DESCRIPTION = """\
Cut an image into tiles, score each by TVAT and assign its texture class, as `mmsr upscale` routes
them, without running any model. Prints the class histogram; with --map, also writes the image with
each tile tinted by its class (blue = smoothest to red = most textured), or the tile classes as JSON
when the map's extension is .json.

The routing comes from a bundle (--bundle, or the installed default bundle), or from explicit
--boundaries with --threshold, --tile and --overlap.
"""
_BAR_WIDTH = 30


def add_parser(subparsers) -> None:
    from ..ops import DEFAULT_TVAT_THRESHOLD

    parser = subparsers.add_parser(
        "classify",
        help="map an image's tiles to texture classes, without upscaling",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", metavar="IMAGE", help="a PNG, JPEG, WebP, TIFF or BMP file")
    parser.add_argument("--map", metavar="OUT", help="write the tinted image (any image extension) or the classes (.json)")
    parser.add_argument("--bundle", metavar="FILE", help="take threshold, boundaries, tile and overlap from this bundle")
    parser.add_argument(
        "--boundaries", metavar="A,B,...",
        help="ascending TVAT class edges instead of a bundle's, e.g. 0.02,0.08 for three classes",
    )
    parser.add_argument(
        "--threshold", type=float, metavar="T",
        help=f"TVAT threshold with --boundaries (default {DEFAULT_TVAT_THRESHOLD:.6g}); overrides a bundle's",
    )
    parser.add_argument("--tile", type=int, metavar="N", help="LR tile edge (default: the bundle's, else 32)")
    parser.add_argument("--overlap", type=int, metavar="N", help="LR tile overlap (default: the bundle's, else 8)")
    add_image_limit_argument(parser)
    add_threads_option(parser, "TVAT scoring")
    parser.set_defaults(run=run)


def _parse_boundaries(text: str):
    from .._checks import check_boundaries

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CommandError(f"--boundaries must be comma-separated numbers such as 0.02,0.08, got {text!r}") from None
    if not values:
        raise CommandError("--boundaries is empty: give at least one, such as 0.02,0.08 (K boundaries make K+1 classes)")
    try:
        return check_boundaries(values, "--boundaries")
    except ValueError as err:
        raise CommandError(str(err)) from None


def _routing(args):
    """(threshold, boundaries, tile, overlap, class names) from a bundle or the options."""
    from ..ops import DEFAULT_TVAT_THRESHOLD

    if args.boundaries is not None:
        if args.bundle is not None:
            raise CommandError("give --bundle or --boundaries, not both")
        boundaries = _parse_boundaries(args.boundaries)
        threshold = DEFAULT_TVAT_THRESHOLD if args.threshold is None else args.threshold
        tile, overlap, names = 32, 8, [None] * (len(boundaries) + 1)
    else:
        bundle = resolve_bundle(args.bundle)
        boundaries, threshold = list(bundle.boundaries), bundle.threshold if args.threshold is None else args.threshold
        tile, overlap, names = bundle.tile_size, bundle.overlap, [c.name for c in bundle.configs]
    tile = tile if args.tile is None else args.tile
    overlap = overlap if args.overlap is None else args.overlap
    if tile < 1 or not 0 <= overlap < tile:
        raise CommandError(f"need --tile >= 1 and 0 <= --overlap < --tile, got tile {tile}, overlap {overlap}")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise CommandError(f"--threshold must be a finite number >= 0, got {threshold}")
    return threshold, boundaries, tile, overlap, names


def _histogram_table(counts, boundaries, names) -> str:
    total = max(sum(counts), 1)
    lines = [f"{'class':>5}  {'model':8}  {'TVAT range':23}  {'tiles':>6}  {'share':>6}"]
    for k, count in enumerate(counts):
        low = f"{boundaries[k - 1]:.4g}" if k > 0 else ""
        high = f"{boundaries[k]:.4g}" if k < len(boundaries) else ""
        span = f"[{low or '0'}, {high})" if high else f">= {low}" if low else "all"
        bar = "#" * round(_BAR_WIDTH * count / total)
        lines.append(f"{k:>5}  {names[k] or '-':8}  {span:23}  {count:>6}  {count / total:6.1%}  {bar}")
    return "\n".join(lines)


def run(args) -> int:
    from ..classmap import class_histogram, class_map_record, record_to_json, render_class_map, tile_classes
    from ..atomic import write_bytes_atomically
    from ..imageio import EXTENSIONS, ImageData, read_image, write_image

    apply_threads(args)  # before any work: it sizes torch's and mmsr's CPU kernels

    try:
        threshold, boundaries, tile, overlap, names = _routing(args)
        source = Path(args.image)
        target = None if args.map is None else Path(args.map)
        if target is not None:
            if target.suffix.lower() != ".json" and target.suffix.lower() not in EXTENSIONS:
                raise CommandError(f"--map {target}: use an image extension ({', '.join(sorted(EXTENSIONS))}) or .json")
            if target in FileSet([source]):
                raise CommandError(f"--map {target}: refusing to overwrite the input image")
            if not target.parent.is_dir():
                raise CommandError(f"--map {target}: {target.parent} is not an existing directory")
        image = read_image(source, max_pixels=args.max_pixels, metadata=False)
        classes, scores, grid = tile_classes(image.rgb, boundaries, threshold=threshold, tile_size=tile, overlap=overlap)
    except CommandError as err:
        print(f"mmsr classify: error: {err}", file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError) as err:
        print(f"mmsr classify: error: {err}", file=sys.stderr)
        return 1
    counts = class_histogram(classes, len(names))
    height, width = image.size
    summary = (f"{source}: {width}x{height}, {grid.num_tiles} tiles of {grid.tile_w}x{grid.tile_h} "
               f"(overlap {overlap}), TVAT threshold {threshold:.6g}\n{_histogram_table(counts, boundaries, names)}")
    if target is None:
        print(summary)
        return 0
    # The map first: a reader of the printout that goes away early (`| head`) must not cost the file.
    try:
        if target.suffix.lower() == ".json":
            record = {"image": str(source), "threshold": threshold, "boundaries": boundaries}
            configs = names if all(names) else None
            record.update(class_map_record(classes, grid, len(names), configs=configs, scores=scores))
            write_bytes_atomically(target, record_to_json(record).encode())
        else:
            write_image(target, ImageData(rgb=render_class_map(image.rgb, classes, grid, len(names))))
    except (OSError, ValueError) as err:
        print(summary)
        print(f"mmsr classify: error: {target}: {err}", file=sys.stderr)
        return 1
    print(summary)
    print(f"class map written to {target}")
    return 0

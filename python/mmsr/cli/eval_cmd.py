"""`mmsr eval --hr DIR --bundle A [--bundle B ...]`: bicubic and bundles on an HR set, measured and compared."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Set

from .threads import add_threads_option, apply_threads

_DESCRIPTION = (
    "Make LR images from the HR images in --hr with the training down-sampler, upscale them with bicubic and "
    "each --bundle, and measure PSNR-Y, SSIM-Y and NIQE (lower is better) and the upscaling time. Two bicubic "
    "rows are reported: 'bicubic' (Keys a = -0.5, Pillow / MATLAB, the SR literature's) and 'torch-bicubic' "
    "(torch's a = -0.75, the upsample residual 'r' generators add, so what an untrained one outputs). Writes "
    "report.md, results.csv, results.json and a comparison PNG per image (compare/) into --out; the comparison "
    "PNGs of the previous run into the same --out (those its results.json lists) are removed, no other file. "
    "Unreadable images are reported and skipped; the exit status is then 1 (and nothing is written if no image "
    "could be evaluated). Grayscale HR images are scored like colour ones, on the BT.601 Y of their three equal "
    "channels (Y = 16 + 219/255 v, BasicSR's convention), which reads 1.32 dB higher in PSNR than scoring the grey "
    "values directly as some published tables do; report.md names such images and gives their PSNR on the grey "
    "values beside it. results.json records each bundle's absolute path, SHA-256 and size."
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_parser(subparsers) -> None:
    from ..metrics import PI_UNAVAILABLE_REASON
    from ..ops import BLENDS

    parser = subparsers.add_parser(
        "eval",
        help="PSNR / SSIM / NIQE of bicubic and bundles on an HR set, with tables and comparison images",
        description=_DESCRIPTION,
        epilog=PI_UNAVAILABLE_REASON,
    )
    parser.add_argument("--hr", required=True, metavar="DIR", help="folder of HR images, read recursively")
    parser.add_argument(
        "--bundle",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="a model bundle to evaluate, named NAME or by its file stem; repeat for several",
    )
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), help="SR factor (default: the bundles' scale)")
    parser.add_argument("--out", default="eval_out", metavar="DIR", help="output folder (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N, for bicubic and every bundle "
                        "(default %(default)s)")
    parser.add_argument(
        "--crop-border",
        type=int,
        metavar="N",
        help="pixels dropped from every side before measuring (default: the scale)",
    )
    parser.add_argument("--no-niqe", action="store_true", help="skip NIQE, the slowest metric")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N images")
    parser.add_argument("--tile-size", type=int, help="LR tile size (default: each bundle's)")
    parser.add_argument("--overlap", type=int, help="LR tile overlap (default: each bundle's)")
    parser.add_argument("--context", type=int, help="LR context pixels around each tile (default: the Upscaler's, 4)")
    parser.add_argument(
        "--max-run", type=int,
        help="widest block of same-class tiles sharing one model window (default: the Upscaler's, 8; 1: none)",
    )
    parser.add_argument(
        "--promote", action="store_true",
        help="let the Upscaler send tiles to the deepest model where a shared block is cheaper, as `mmsr upscale` "
        "does by default (default here: pure TVAT routing, the MMSR method as trained and reported)",
    )
    parser.add_argument("--blend", choices=BLENDS, default="linear", help="tile blend (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="tiles per generator call (default %(default)s)")
    parser.add_argument(
        "--compare-crop",
        type=_positive_int,
        default=128,
        metavar="N",
        help="HR side of the comparison crops (default %(default)s)",
    )
    add_threads_option(parser, "the evaluation")
    parser.set_defaults(run=run)


def _comparison_file(name: str, used: Set[str]) -> str:
    # Images in sub-folders, or "a.jpg" next to "a.png", must not share a comparison file.
    flat = name.replace("/", "__")
    candidate = flat.rsplit(".", 1)[0] + ".png"
    if candidate in used:
        candidate = flat.replace(".", "_") + ".png"
    stem, n = candidate[: -len(".png")], 2
    while candidate in used:
        candidate, n = f"{stem}-{n}.png", n + 1
    used.add(candidate)
    return candidate


def _earlier_comparisons(out: Path) -> Set[Path]:
    """The comparison images an earlier `mmsr eval` wrote into ``out/compare``, as its results.json lists them.

    Only files mmsr listed there are ever removed: a missing or foreign results.json gives none.
    """
    try:
        data = json.loads((out / "results.json").read_text(encoding="utf-8"))
        listed = [image.get("comparison") for image in data["images"]] if "mmsr_version" in data else []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()
    folder = (out / "compare").resolve()
    paths = {(out / name).resolve() for name in listed if isinstance(name, str)}
    return {p for p in paths if p.parent == folder and p.suffix == ".png"}


def _check_out(out: Path, hr: Path) -> None:
    out, hr = out.resolve(), hr.resolve()
    if out == hr or hr in out.parents:
        raise ValueError(
            f"--out {str(out)!r} is inside --hr {str(hr)!r}: its images would be read as HR by the next run"
        )


def run(args: argparse.Namespace) -> int:
    from ..bundle import BundleError
    from ..evaluate import (
        TORCH_BICUBIC,
        bicubic_method,
        bundle_method,
        check_device,
        evaluate_folder,
        list_images,
        parse_bundle_spec,
        torch_bicubic_method,
    )
    from ..evaluate_report import mean_table, timing_text, write_comparison, write_reports
    from ..metrics import check_niqe_model

    apply_threads(args)  # before any work: it sizes torch's and mmsr's CPU kernels

    out = Path(args.out)
    try:
        # The HR folder first: a missing or empty one is the problem, whatever else is wrong.
        hr_dir = Path(args.hr)
        inputs = {p.resolve() for p in list_images(hr_dir, "--hr")}
        _check_out(out, hr_dir)
        device = check_device(args.device, "--device")
        if not args.no_niqe:
            check_niqe_model()
        options = {"device": device, "blend": args.blend, "batch_size": args.batch_size}
        if args.tile_size is not None:
            options["tile_size"] = args.tile_size
        if args.overlap is not None:
            options["overlap"] = args.overlap
        if args.context is not None:
            options["context"] = args.context
        if args.max_run is not None:
            options["max_run"] = args.max_run
        options["promote"] = args.promote
        methods = [bicubic_method(), torch_bicubic_method()]
        for spec in args.bundle:
            name, path = parse_bundle_spec(spec)
            methods.append(bundle_method(name, path, **options))
        scales = sorted({m.upscaler.scale for m in methods if m.upscaler is not None})
        scale = args.scale if args.scale is not None else (scales[0] if len(scales) == 1 else None)
        if scale is None and not scales:
            raise ValueError("--scale is required when no --bundle is given")
        if scale is None:
            factors = ", ".join(map(str, scales))
            raise ValueError(f"the bundles upscale by different factors ({factors}); evaluate them separately")
        for folder in (out, out / "compare"):
            if folder.exists() and not folder.is_dir():
                raise ValueError(f"--out: {str(folder)!r} exists and is not a folder")
        earlier = _earlier_comparisons(out)
    except (BundleError, ValueError, TypeError, OSError) as err:
        print(f"mmsr eval: error: {err}", file=sys.stderr)
        return 2

    comparisons: Dict[str, str] = {}
    used: Set[str] = set()
    # torch-bicubic is a number to read gains against; its crop would look like bicubic's.
    panels = [m for m in methods if m.name != TORCH_BICUBIC]

    def draw(outcome) -> None:
        path = out / "compare" / _comparison_file(outcome.name, used)
        if path.resolve() in inputs:
            raise ValueError(f"comparison {str(path)!r} would overwrite an input image; choose another --out")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_comparison(path, outcome, panels, scale, crop=args.compare_crop)
        comparisons[outcome.name] = f"compare/{path.name}"

    try:
        result = evaluate_folder(
            hr_dir,
            methods,
            scale=scale,
            crop_border=args.crop_border,
            with_niqe=not args.no_niqe,
            limit=args.limit,
            device=device,
            on_image=draw,
        )
        if not result.images:
            print(
                f"mmsr eval: error: none of the {len(result.failed)} image(s) of --hr {str(hr_dir)!r} could be "
                "evaluated (each is named above); nothing written",
                file=sys.stderr,
            )
            return 1
        written = write_reports(result, out, comparisons)
        current = {(out / name).resolve() for name in comparisons.values()}
        for stale in sorted(earlier - current - inputs):
            stale.unlink(missing_ok=True)
    except (ValueError, OSError) as err:
        print(f"mmsr eval: error: {err}", file=sys.stderr)
        return 2

    niqe_note = ""
    counts = set(result.niqe_counts().values()) if not args.no_niqe else {len(result.images)}
    if counts != {len(result.images)}:
        niqe_note = (f"; NIQE over {counts.pop()} of them, the others too small or flat" if len(counts) == 1
                     else "; NIQE over fewer images in some rows (report.md says which)")
    print(f"Mean over {len(result.images)} images, x{scale}, crop border {result.crop_border}{niqe_note} "
          "(NIQE: lower is better):")
    print(mean_table(result))
    print(timing_text(result))
    print(f"wrote {', '.join(str(p) for p in written)} and {len(comparisons)} comparison images in {out / 'compare'}")
    if result.failed:
        names = ", ".join(name for name, _ in result.failed)
        print(f"mmsr eval: {len(result.failed)} image(s) failed and were skipped: {names}", file=sys.stderr)
        return 1
    return 0

"""`mmsr upscale`: super-resolve image files with a model bundle, each tile through its class's model."""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .threads import add_threads_option, apply_threads

_DESCRIPTION = """\
Upscale images with a model bundle: every LR tile is scored by TVAT and goes through the generator
of its texture class; the SR tiles are blended back into one image. Neighbouring tiles of one class
share a model window, and where a few shallow-class tiles would cut the deepest model's window,
they go through the deepest model instead if that is cheaper (--no-promote turns this off).

Inputs are files or directories (their PNG, JPEG, WebP, TIFF and BMP files, not recursing; a
directory's NAME_x4.EXT files beside a NAME.* are earlier results of this command and are skipped;
GIF, HEIC, AVIF, raw and other image files it does not read are named on stderr).
The output format follows the output's extension. Without -o, each result is written next to its
input as NAME_x4.EXT (for a x4 bundle; NAME_xF.EXT with --outscale F, which resamples the model's
result to another size); with several inputs, -o is a directory and results keep their input's name; --format picks another extension for both, --quality the JPEG/WebP quality. An input is never overwritten, and outputs are written atomically. Of an
animated or multi-page file only the first frame is upscaled (with a warning).

An alpha channel is carried through, upscaled on its own with bicubic interpolation (JPEG and BMP
outputs cannot hold it; it is dropped with a warning). Grayscale images come back grayscale,
palette images come back as RGB(A), 16-bit grayscale PNG/TIFF stays 16-bit in PNG/TIFF, and
16-bit colour PNG/TIFF and 16-bit grey PNG with alpha are read at 8 bits (as Pillow decodes them). The ICC colour profile, the EXIF (camera, dates, GPS; the
pixels are written upright, so without the orientation tag) and the DPI (unchanged: the print
grows with the scale) are carried where the output format holds them; --strip-metadata drops the
EXIF and DPI.

A file that cannot be read or written is reported by name and the others are still processed; the
exit status is 1 if any failed, 2 for bad options.
"""

_LARGE_IMAGE_TILES = 256  # images with more tiles get their own progress bar
_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9}


class CommandError(Exception):
    """A problem with the options, reported as `mmsr <command>: error: ...` with exit status 2."""


def parse_pixels(text: str) -> Optional[int]:
    """``--max-pixels``: a count such as 50000000, 50M or 1.5G; 0 means no limit."""
    value = text.strip().lower()
    factor = _SUFFIXES.get(value[-1:], 1)
    number = value[:-1] if factor != 1 else value
    try:
        count = float(number) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pixel count such as 50000000, 50M or 1.5G, got {text!r}") from None
    if not math.isfinite(count) or count < 0:
        raise argparse.ArgumentTypeError(f"must be a finite count >= 0 (0 means no limit), got {text!r}")
    if 0 < count < 1:
        # int() would make it 0, which means "no limit": the opposite of what was asked.
        raise argparse.ArgumentTypeError(f"must be at least 1 pixel (or 0 for no limit), got {text!r}")
    return int(count) or None


def add_image_limit_argument(parser: argparse.ArgumentParser) -> None:
    from ..imageio import DEFAULT_MAX_PIXELS

    parser.add_argument(
        "--max-pixels",
        type=parse_pixels,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"refuse inputs with more than N pixels (width x height); accepts 50M, 1.5G; 0 = no limit "
        f"(default {DEFAULT_MAX_PIXELS // 10**6}M: a x4 result of that is 800 MP, 2.4 GB as 8-bit RGB)",
    )


def resolve_bundle(path: Optional[str]):
    """Load ``--bundle``, or the default bundle shipped in the package; CommandError when neither exists."""
    from ..bundle import BundleError, default_bundle_path, load_bundle, resolve_bundle_path

    if path is None:
        default = default_bundle_path()
        if default is None:
            raise CommandError(
                "no --bundle given and this installation lacks the default bundle "
                "(mmsr/weights/default.safetensors is absent); reinstall mmsr, or pass --bundle FILE, "
                "e.g. one written by `mmsr train`"
            )
        path = str(default)
    try:
        return load_bundle(resolve_bundle_path(path))
    except BundleError as err:
        raise CommandError(str(err)) from None


def resolve_model(bundle, text: Optional[str]) -> Optional[int]:
    """``--model``: None (route every tile by TVAT) for ``routed``, else the class every tile goes to.

    ``text`` is ``routed``, ``deepest`` (the class with the most residual blocks), one of the
    bundle's config names (e.g. ``16-8r``) or a class index.

    Example:
        >>> from mmsr.bundle import Bundle
        >>> bundle = Bundle.random(["1-2w8", "2-2w8"], threshold=0.0, boundaries=[0.02])
        >>> resolve_model(bundle, "routed"), resolve_model(bundle, "deepest"), resolve_model(bundle, "1-2w8")
        (None, 1, 0)
    """
    if text is None or text == "routed":
        return None
    configs = [c.name for c in bundle.configs]
    if text == "deepest":
        return bundle.deepest_class
    if text.isdigit() and int(text) < len(configs):
        return int(text)
    if configs.count(text) == 1:
        return configs.index(text)
    choices = ", ".join(["routed", "deepest", *dict.fromkeys(configs), f"0-{len(configs) - 1}"])
    why = "names more than one class" if configs.count(text) > 1 else "is not one of this bundle's models"
    raise CommandError(f"--model {text!r} {why}; choose one of {choices}")


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU and mmsr has its CUDA kernels, else ``cpu``."""
    import torch

    from .. import _ops

    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() and _ops.CUDA_COMPILED else "cpu"


class FileSet:
    """Paths that name files, matched by resolved path and, for existing files, by device and inode
    (which also catches hard links and case-insensitive file systems).

    Example:
        >>> files = FileSet([Path("photo.png")])
        >>> Path("./photo.png") in files
        True
    """

    def __init__(self, paths=()) -> None:
        self._names, self._inodes = set(), set()
        for path in paths:
            self.add(path)

    @staticmethod
    def _inode(path: Path):
        try:
            stat = path.stat()
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def add(self, path: Path) -> None:
        self._names.add(path.resolve())
        inode = self._inode(path)
        if inode is not None:
            self._inodes.add(inode)

    def __contains__(self, path: Path) -> bool:
        if path.resolve() in self._names:
            return True
        inode = self._inode(path)
        return inode is not None and inode in self._inodes


def write_class_map(path: Path, image, result, bundle, source: Path) -> None:
    """An :class:`~mmsr.upscale.UpscaleResult`'s class map as JSON (``.json``: texture classes, and
    the model that upscaled each tile) or as the image tinted by texture class (any image extension)."""
    from ..classmap import class_map_record, record_to_json, render_class_map
    from ..atomic import write_bytes_atomically
    from ..imageio import EXTENSIONS, ImageData, write_image

    if path.suffix.lower() == ".json":
        record = {
            "image": str(source),
            "scale": bundle.scale,
            "threshold": bundle.threshold,
            "boundaries": list(bundle.boundaries),
            **class_map_record(result.classes, result.grid, bundle.num_classes, configs=[c.name for c in bundle.configs]),
        }
        if result.models is not None:
            # "classes" are always TVAT's; "models" differ where a tile was promoted, or all are
            # the forced model with --model.
            record["models"] = result.models.tolist()
            record["promoted"] = result.promoted()
        if result.forced is not None:
            record["forced_model"] = bundle.configs[result.forced].name
        write_bytes_atomically(path, record_to_json(record).encode())
    elif path.suffix.lower() in EXTENSIONS:
        write_image(path, ImageData(rgb=render_class_map(image, result.classes, result.grid, bundle.num_classes)))
    else:
        raise ValueError(f"{path}: a class map is written as .json or as an image ({', '.join(sorted(EXTENSIONS))})")


def add_parser(subparsers) -> None:
    from ..ops import BLENDS

    parser = subparsers.add_parser(
        "upscale",
        help="upscale images, each tile through its texture class's model (or the deepest where cheaper)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ..imageio import DEFAULT_QUALITY, EXTENSIONS

    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or directories of images")
    parser.add_argument(
        "-o", "--output", metavar="OUTPUT",
        help="output file (one input) or directory (several inputs, or a directory input); "
        "default: NAME_xS.EXT next to each input",
    )
    parser.add_argument(
        "--format", metavar="EXT", type=_output_format,
        help=f"output format for results named after their input (NAME_x4.EXT, or in an -o directory): "
        f"one of {', '.join(sorted(e[1:] for e in EXTENSIONS))} (default: the input's)",
    )
    parser.add_argument(
        "--quality", type=_quality, default=DEFAULT_QUALITY, metavar="Q",
        help="JPEG and WebP quality, 1-100 (default %(default)s; other formats are lossless)",
    )
    parser.add_argument(
        "--outscale", type=_outscale, metavar="F",
        help="final scale factor, e.g. 2 or 3.5 with a x4 bundle: the model's result is resampled to "
        "F times the input's size with a Lanczos filter, and outputs are named NAME_xF (default: the bundle's scale)",
    )
    parser.add_argument(
        "--strip-metadata", action="store_true",
        help="write no EXIF (camera, dates, GPS) or DPI; by default both are carried over from each input "
        "where the output format holds them (the ICC colour profile is always kept)",
    )
    parser.add_argument(
        "--bundle", metavar="FILE",
        help="model bundle (.safetensors from `mmsr train`, or 'default'); default: the bundle shipped with mmsr",
    )
    parser.add_argument(
        "--model", metavar="M", default="routed",
        help="routed (default: each tile through its TVAT class's model, or the deepest model where that is "
        "cheaper; see --no-promote), or one model for every tile: "
        "deepest, a config name of the bundle (e.g. 16-8r) or a class index",
    )
    parser.add_argument("--tile", type=int, metavar="N", help="LR tile edge in pixels (default: the bundle's)")
    parser.add_argument("--overlap", type=int, metavar="N", help="LR pixels shared by neighbouring tiles (default: the bundle's)")
    parser.add_argument("--blend", choices=BLENDS, default="linear", help="how overlapping tiles are averaged (default linear)")
    parser.add_argument(
        "--margin", type=int, metavar="N",
        help="LR pixels at each inner tile edge left to the neighbouring tile, at most overlap/2 "
        "(default 0 with context, else 3/8 of the overlap); hides the zero-padding error at tile edges",
    )
    parser.add_argument(
        "--context", type=int, metavar="N",
        help="LR pixels of the image around each tile that its model also sees, cropped off again "
        "(default 4; 0 is faster but leaves faint seams)",
    )
    parser.add_argument(
        "--max-run", type=int, metavar="N",
        help="with context, blocks of neighbouring tiles of one class, up to N along a row and 4 rows, share "
        "one model window (default 8; 1 gives every tile its own)",
    )
    parser.add_argument(
        "--no-promote", dest="promote", action="store_false",
        help="pure TVAT routing: never send a tile to the deepest model instead of its class's, even where "
        "sharing that model's block would be cheaper than a block of its own (the default does, which is "
        "never slower by the plan's estimate and upscales those tiles with the deepest model)",
    )
    parser.add_argument("--device", default="auto", help="auto (default: cuda if available), cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, metavar="N", help="tiles per model call (default 2 on CPU; on CUDA 64 of 32x32, as many LR pixels for other sizes)")
    parser.add_argument("--half", action="store_true", help="run the models in float16 (CUDA only)")
    parser.add_argument(
        "--class-map", metavar="PATH",
        help="also write each image's tile classes: a .json file or an image (tinted by class) for one input; "
        "a directory of NAME.json files for several",
    )
    add_image_limit_argument(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or per-image lines")
    add_threads_option(parser, "the upscaling")
    parser.set_defaults(run=run)


def _output_format(text: str) -> str:
    """``--format``: an image extension such as png or .JPG -> ".png" / ".jpg"."""
    from ..imageio import EXTENSIONS

    suffix = "." + text.lower().lstrip(".")
    if suffix not in EXTENSIONS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(sorted(e[1:] for e in EXTENSIONS))}, got {text!r}")
    return suffix


def _quality(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to 100, got {text!r}")
    return value


_MAX_OUTSCALE = 16.0
_EARLIER_RESULT = re.compile(r"(.+)_x(\d+(?:\.\d+)?(?:e[-+]?\d+)?)")  # NAME_x4, NAME_x1.5: what _scale_label names


def _outscale(text: str) -> float:
    """``--outscale``: a finite factor in (0, 16]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= _MAX_OUTSCALE:  # False for NaN too
        raise argparse.ArgumentTypeError(f"expected a number above 0 and at most {_MAX_OUTSCALE:g}, got {text!r}")
    return value


def _scale_label(args, bundle_scale: int) -> str:
    """The S of ``NAME_xS.EXT``: ``--outscale`` if given (2, 3.5), else the bundle's scale."""
    return str(bundle_scale) if args.outscale is None else f"{args.outscale:g}"


# Image kinds a user may keep beside their photos that mmsr does not read: a folder input names them
# instead of passing them over in silence (GIF: palette and animation; HEIC/AVIF: phones; raw files).
_UNREAD_IMAGE_SUFFIXES = frozenset({
    ".gif", ".apng", ".heic", ".heif", ".avif", ".jfif", ".jpe", ".jp2", ".j2k", ".jxl", ".qoi", ".ico",
    ".psd", ".tga", ".pnm", ".ppm", ".pgm", ".pbm", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raw",
})  # fmt: skip


def _collect_inputs(names: List[str]) -> Tuple[List[Path], List[str], List[str], bool]:
    """(image files, errors, notes, whether any input was a directory).

    A directory's ``NAME_xS.EXT`` files whose ``NAME.*`` sits beside them are this command's own
    earlier results (S any scale: 4, 1.5): they are left out, so running again on a folder does not
    upscale its results. A file named twice is read once.
    """
    from ..imageio import EXTENSIONS

    files, errors, notes, had_directory = [], [], [], False
    seen = FileSet()
    for name in names:
        path = Path(name)
        if path.is_dir():
            had_directory = True
            found = sorted(
                p for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")
            )
            unread = sorted(
                p.name for p in path.iterdir()
                if p.suffix.lower() in _UNREAD_IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
            if unread:
                notes.append(
                    f"{path}: skipped {len(unread)} image file(s) of a kind mmsr does not read ({', '.join(unread[:3])}"
                    f"{', ...' if len(unread) > 3 else ''}); it reads PNG, JPEG, WebP, TIFF and BMP: convert them to "
                    "upscale them"
                )
            if not found:
                errors.append(f"{path}: directory holds no PNG, JPEG, WebP, TIFF or BMP files")
            stems = {p.stem for p in found}
            # Any scale's results, not only this run's: a folder upscaled x2 and then x4 must not
            # have its NAME_x2 files upscaled into NAME_x2_x4.
            earlier = [p for p in found if (m := _EARLIER_RESULT.fullmatch(p.stem)) and m.group(1) in stems]
            if earlier:
                notes.append(
                    f"{path}: skipped {len(earlier)} earlier result(s) of this command ({earlier[0].name}"
                    f"{', ...' if len(earlier) > 1 else ''}: NAME_xS beside NAME); name a file to upscale it"
                )
            candidates = [p for p in found if p not in earlier]
        elif path.is_file():
            candidates = [path]
        elif path.exists():
            # A named pipe would block the decoder until something writes to it, a device stream forever.
            errors.append(f"{path}: not a regular file (a pipe, socket or device); give image files or directories")
            continue
        else:
            errors.append(f"{path}: no such file or directory")
            continue
        for candidate in candidates:
            if candidate in seen:
                notes.append(f"{candidate}: given more than once; upscaled once")
                continue
            seen.add(candidate)
            files.append(candidate)
    return files, errors, notes, had_directory


def _plan_outputs(args, inputs: List[Path], directory_mode: bool, scale: str) -> Tuple[Dict[Path, Path], Optional[Path]]:
    """(output per input, a directory to create first or None). Creates nothing: folders are made
    only once every option has been checked."""
    from ..imageio import EXTENSIONS

    def suffix(p: Path) -> str:
        return args.format or p.suffix

    if args.output is None:
        return {p: p.with_name(f"{p.stem}_x{scale}{suffix(p)}") for p in inputs}, None
    out = Path(args.output)
    if directory_mode or out.is_dir() or args.output.endswith(("/", os.sep)):
        if out.exists() and not out.is_dir():
            raise CommandError(f"-o {out}: with several inputs the output must be a directory, and this is a file")
        if not out.exists() and out.suffix.lower() in EXTENSIONS:
            raise CommandError(
                f"-o {out}: several inputs need an output directory, and this names an image file; "
                "give a directory (e.g. out/)"
            )
        return {p: out / f"{p.stem}{suffix(p)}" for p in inputs}, out
    if args.format is not None and EXTENSIONS.get(out.suffix.lower()) != EXTENSIONS[args.format]:  # .jpg = .jpeg
        raise CommandError(f"-o {out} names its own format; --format {args.format[1:]} is for outputs named after inputs")
    if out.suffix.lower() not in EXTENSIONS:
        hint = "; for a directory, end it with /" if not out.suffix else ""
        raise CommandError(
            f"-o {out}: unsupported extension {out.suffix!r}; use one of {', '.join(sorted(EXTENSIONS))}{hint}"
        )
    _check_parent(out, "-o")
    return {p: out for p in inputs}, None


def _check_parent(path: Path, option: str) -> None:
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise CommandError(f"{option} {path}: {parent} is a file, not a directory")
    if not parent.is_dir():
        raise CommandError(f"{option} {path}: directory {parent} does not exist")


def _class_map_paths(args, inputs: List[Path], directory_mode: bool) -> Tuple[Dict[Path, Path], Optional[Path]]:
    """(class map per input, a directory to create first or None); creates nothing.

    In a directory, maps are NAME.json after the input's stem, or the input's whole file name
    (``photo.png.json``) where two inputs share a stem."""
    from ..imageio import EXTENSIONS

    if args.class_map is None:
        return {}, None
    target = Path(args.class_map)
    if directory_mode or len(inputs) > 1 or target.is_dir() or args.class_map.endswith(("/", os.sep)):
        if target.exists() and not target.is_dir():
            raise CommandError(f"--class-map {target}: with several inputs this must be a directory, and it is a file")
        stems = [p.stem for p in inputs]
        return {p: target / (f"{p.stem}.json" if stems.count(p.stem) == 1 else f"{p.name}.json") for p in inputs}, target
    if target.suffix.lower() != ".json" and target.suffix.lower() not in EXTENSIONS:
        raise CommandError(f"--class-map {target}: use a .json file, or an image file ({', '.join(sorted(EXTENSIONS))})")
    _check_parent(target, "--class-map")
    return {p: target for p in inputs}, None


def _make_directories(*directories: Optional[Path]) -> None:
    for directory in directories:
        if directory is None:
            continue
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CommandError(f"cannot create directory {directory}: {err.strerror or err}") from None


def _clash(paths: List[Path], inputs: FileSet, written: FileSet) -> Optional[str]:
    """Why writing ``paths`` would destroy an input, an earlier input's result or each other, or None."""
    from ..imageio import EXTENSIONS

    if paths[0].suffix.lower() not in EXTENSIONS:
        return (
            f"cannot write {paths[0]}: unsupported output extension {paths[0].suffix!r} "
            f"(use --format EXT, or -o NAME.EXT, with one of {', '.join(sorted(EXTENSIONS))})"
        )
    if len(paths) > 1 and paths[1] in FileSet(paths[:1]):
        return f"refusing to write the class map over the output {paths[0]}: give --class-map another path"
    for path in paths:
        if path in inputs:
            return f"refusing to write {path}: it is one of the inputs"
        if path in written:
            return f"{path} is also the output of an earlier input; give inputs distinct names"
    return None


def _cannot_create(paths: List[Path], probed: Dict[Path, Optional[str]]) -> Optional[str]:
    """Why one of ``paths`` cannot be created, or None: it is a directory, its folder refuses new
    files (a read-only card or share) or its name is too long for the file system. Asked before
    any image is read, since otherwise each image would be upscaled in full only to fail at the
    write. ``probed`` caches each folder's answer."""
    for path in paths:
        parent = path.parent
        limit = _name_max(parent)
        if limit is not None and len(os.fsencode(path.name)) > limit:  # first: is_dir() raises on such a name
            return f"cannot write {path}: its name is longer than the {limit} bytes the file system allows"
        if path.is_dir():
            return f"cannot write {path}: it is a directory"
        if parent not in probed:
            probed[parent] = _probe_directory(parent)
        if probed[parent] is not None:
            return f"cannot write {path}: {probed[parent]}"
    return None


def _probe_directory(directory: Path) -> Optional[str]:
    """Why no file can be created in ``directory``, or None. A real file is tried, not os.access,
    which misjudges read-only mounts' ACLs and network shares."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def _name_max(directory: Path) -> Optional[int]:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no limit known
        return None


def _naming(source: Path, problem: str) -> str:
    """``problem`` as a line that starts with the input it concerns. A test for the input's name
    anywhere in it would be fooled by an output path that contains it (a.png -> out/a.png)."""
    return problem if problem.startswith(f"{source}: ") else f"{source}: {problem}"


def _write_failure(path: Path, err: OSError) -> OSError:
    """An OSError from writing ``path`` as a line that says so: "cannot write out/a.png: Permission
    denied", not Python's "[Errno 13] Permission denied: 'out/a.png'"."""
    return err if err.strerror is None else OSError(f"cannot write {path}: {err.strerror}")


def _build_upscaler(args, bundle):
    import torch

    from ..upscale import Upscaler

    device = resolve_device(args.device)
    if args.half and not device.startswith("cuda"):
        raise CommandError(f"--half (float16) runs on CUDA only, and the device is {device}; drop --half or use --device cuda")
    try:
        return Upscaler(
            bundle,
            device=device,
            tile_size=args.tile,
            overlap=args.overlap,
            blend=args.blend,
            margin=args.margin,
            context=args.context,
            max_run=args.max_run,
            promote=args.promote,
            batch_size=args.batch_size,
            dtype=torch.float16 if args.half else torch.float32,
        )
    except (TypeError, ValueError) as err:
        raise CommandError(_as_flags(str(err))) from None


# The Upscaler's argument names as this command's options, for its error messages.
_FLAGS = {"tile_size": "--tile", "overlap": "--overlap", "batch_size": "--batch-size", "max_run": "--max-run",
          "margin": "--margin", "context": "--context", "blend": "--blend", "device": "--device"}


def _as_flags(message: str) -> str:
    """An Upscaler error in terms of this command's options: ``tile_size=4`` -> ``--tile 4``."""
    pattern = r"(?<![-\w])(" + "|".join(_FLAGS) + r")\b(=?)"
    return re.sub(pattern, lambda m: _FLAGS[m.group(1)] + (" " if m.group(2) else ""), message)


def _upscale_file(
    upscaler, source: Path, target: Path, class_map: Optional[Path], model: Optional[int], args, say
) -> str:
    from tqdm import tqdm

    from ..imageio import (
        alpha_supported, check_output_size, exif_fits, read_image, resize_alpha, resize_pixels, write_image,
    )

    start = time.perf_counter()
    image = read_image(source, max_pixels=args.max_pixels, metadata=not args.strip_metadata)
    for note in image.metadata_warnings + image.read_warnings:
        say(f"mmsr upscale: warning: {source}: {note}")
    if image.frames > 1:
        say(f"mmsr upscale: warning: {source}: only the first of its {image.frames} frames is upscaled")
    height, width = image.size
    factor = upscaler.scale if args.outscale is None else args.outscale
    out_height, out_width = max(1, round(height * factor)), max(1, round(width * factor))
    check_output_size(target, out_height, out_width)  # before the upscale, not after it
    if not exif_fits(target, image, out_height, out_width):
        say(f"mmsr upscale: warning: {target}: {source.name}'s EXIF is over the 64 KB a JPEG holds; it is left out")
        image = replace(image, exif=None)
    alpha = image.alpha
    if alpha is not None and not alpha_supported(target):
        say(f"mmsr upscale: warning: {target}: this format cannot hold {source.name}'s alpha channel; it is dropped")
        alpha = None
    tiles = upscaler.grid(height, width).num_tiles
    with tqdm(total=tiles, unit="tile", desc=source.name, leave=False,
              disable=True if args.quiet or tiles <= _LARGE_IMAGE_TILES else None) as bar:
        result = upscaler.upscale(image.rgb, force_class=model, progress=bar.update)
    pixels = result.image
    if (out_height, out_width) != tuple(pixels.shape[1:]):
        pixels = resize_pixels(pixels, out_height, out_width)
    upscaled = image.with_pixels(pixels, None if alpha is None else resize_alpha(alpha, out_height, out_width))
    try:
        write_image(target, upscaled, args.quality)
    except OSError as err:
        raise _write_failure(target, err) from None
    if class_map is not None:
        try:
            write_class_map(class_map, image.rgb, result, upscaler.bundle, source)
        except OSError as err:
            raise _write_failure(class_map, err) from None
    configs = upscaler.bundle.configs
    # Texture classes, named by their models; then which models ran, where that differs.
    histogram = "classes " + " ".join(f"{c.name}:{n}" for c, n in zip(configs, result.histogram()))
    promoted = result.promoted()
    if promoted:
        ran = " ".join(f"{c.name}:{n}" for c, n in zip(configs, result.model_histogram()) if n)
        histogram += f"; {promoted} promoted to {configs[upscaler.deepest_class].name}, so ran {ran}"
    if result.forced is not None:
        histogram += f"; every tile through {configs[result.forced].name}"
    return (
        f"{source} -> {target} ({width}x{height} -> {out_width}x{out_height}, "
        f"{tiles} tile{'s' if tiles != 1 else ''} [{histogram}], {time.perf_counter() - start:.1f} s)"
    )


def run(args) -> int:
    from tqdm import tqdm

    apply_threads(args)  # before any work: it sizes torch's and mmsr's CPU kernels

    try:
        bundle = resolve_bundle(args.bundle)
        label = _scale_label(args, bundle.scale)
        inputs, failures, notes, had_directory = _collect_inputs(args.inputs)
        directory_mode = had_directory or len(args.inputs) > 1
        outputs, output_dir = _plan_outputs(args, inputs, directory_mode, label)
        class_maps, class_map_dir = _class_map_paths(args, inputs, directory_mode)
        if args.output and args.class_map and Path(args.output).resolve() == Path(args.class_map).resolve():
            raise CommandError(f"--class-map {args.class_map} is also the -o output; give each its own path")
        model = resolve_model(bundle, args.model)
        upscaler = _build_upscaler(args, bundle) if inputs else None
        if inputs:
            _make_directories(output_dir, class_map_dir)
    except CommandError as err:
        print(f"mmsr upscale: error: {err}", file=sys.stderr)
        return 2
    for message in notes:
        print(f"mmsr upscale: note: {message}", file=sys.stderr)

    # Every output path is judged before the first image is read: an output that would replace an
    # input, an earlier result or its own class map fails that image up front (the rest go on).
    # Then whether each output can be created at all, so that no image is upscaled in vain.
    input_files, planned, runnable, probed = FileSet(inputs), FileSet(), [], {}
    for source in inputs:
        paths = [outputs[source]] + ([class_maps[source]] if source in class_maps else [])
        problem = _clash(paths, input_files, planned) or _cannot_create(paths, probed)
        if problem is None:
            runnable.append(source)
            for path in paths:
                planned.add(path)
        else:
            failures.append(_naming(source, problem))
    for message in failures:
        print(f"mmsr upscale: error: {message}", file=sys.stderr)

    done = 0
    with tqdm(total=len(runnable), unit="image", disable=True if args.quiet or len(runnable) < 2 else None) as bar:
        def say(message: str, stream=sys.stderr) -> None:
            bar.write(message, file=stream)

        for source in runnable:
            try:
                line = _upscale_file(upscaler, source, outputs[source], class_maps.get(source), model, args, say)
                done += 1
                if not args.quiet:
                    say(line, sys.stdout)
            except Exception as err:  # one bad file must not stop the batch; report its name and the cause
                expected = isinstance(err, (OSError, ValueError))
                problem = str(err) if expected else f"{type(err).__name__}: {err}"
                message = _naming(source, problem)
                failures.append(message)
                say(f"mmsr upscale: error: {message}")
            bar.update()
    if failures:
        print(f"mmsr upscale: {done} written, {len(failures)} failed", file=sys.stderr)
        return 1
    return 0

"""What `mmsr eval` writes: the Markdown table, the CSV, the JSON and one comparison PNG per image.

- ``report.md``: conventions (what each column measures, which way is better, which bicubic is
  which, why PI is missing), the mean over images, every image, the grayscale images (scored as
  the Y of three equal channels, with their PSNR on the grey values beside it), the skipped
  images, the methods and the timing;
- ``results.csv``: one row per image and method plus one ``mean`` row per method;
- ``results.json``: the same data with the settings and each method's bundle facts (the file's
  absolute path, SHA-256 and size);
- ``compare/<image>.png``: a crop of each method (``mmsr eval`` leaves out torch-bicubic, which looks
  like bicubic) | HR, labelled, then the class map of each multi-model bundle over the whole LR
  image with the crop marked.

Every file is written to a temporary name and renamed into place, so a reader never sees half of one.

Example:
    >>> run = evaluate_folder("data/val/set5", [bicubic_method()], scale=4)  # doctest: +SKIP
    >>> write_reports(run, Path("eval_out"))                                 # doctest: +SKIP
    [PosixPath('eval_out/report.md'), PosixPath('eval_out/results.csv'), PosixPath('eval_out/results.json')]
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .classmap import class_colors, render_class_map
from .evaluate import HR, PSNR_CAP_DB, TORCH_BICUBIC, EvalRun, ImageOutcome, Method, Scores
from .imageio import ImageData, write_image
from .metrics import PI_UNAVAILABLE_REASON, rgb_to_y
from .atomic import write_bytes_atomically

__all__ = [
    "CSV_COLUMNS",
    "choose_crop",
    "comparison_image",
    "csv_text",
    "markdown_report",
    "mean_table",
    "results_json",
    "timing_text",
    "write_comparison",
    "write_reports",
]

CSV_COLUMNS = (
    "image",
    "method",
    "height",
    "width",
    "psnr_y_db",
    "ssim_y",
    "niqe_lower_is_better",
    "upscale_time_s",
    "class_histogram",
)
_TABLE_HEADER = "| {first}method | PSNR-Y (dB) ↑ | SSIM-Y ↑ | NIQE ↓ | time (s) | tiles per class |"

_GAP = 4  # pixels between comparison panels
_LABEL_HEIGHT = 30  # two lines of Pillow's default font
_BACKGROUND = (32, 32, 32)
_TEXT = (240, 240, 240)
_MARK = (255, 255, 255)  # the crop's outline on the class map
_CROP_STRIDE = 8  # the textured-crop search moves in steps of this many HR pixels
_GREY_CONVENTION = (
    "a grayscale HR image (one colour plane) is read as three equal channels and scored like any other, on "
    "the BT.601 Y of those channels: Y = 16 + 219/255 v (BasicSR's convention, used by every recorded figure). "
    "The narrower range raises PSNR by 20 log10(255/219) = 1.32 dB over scoring the grey values directly, as "
    "some published tables do"
)


def _number(value: Optional[float], digits: int) -> str:
    if value is None:
        return "—"
    return "∞" if math.isinf(value) else f"{value:.{digits}f}"


def _histogram_text(histogram: Optional[Tuple[int, ...]]) -> str:
    if histogram is None:
        return "—"
    total = sum(histogram) or 1
    counts = " · ".join(str(n) for n in histogram)
    shares = " · ".join(f"{n / total:.0%}" for n in histogram)
    return f"{counts} ({shares})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(first: str, name: str, s: Scores) -> str:
    cells = [
        name,
        _number(s.psnr_y, 2),
        _number(s.ssim_y, 4),
        _number(s.niqe, 3),
        _number(s.time_s, 4),
        _histogram_text(s.histogram),
    ]
    return "| " + first + " | ".join(_cell(c) for c in cells) + " |"


def _table(first_column: Optional[str]) -> List[str]:
    header = _TABLE_HEADER.format(first=f"{first_column} | " if first_column else "")
    columns = header.count("|") - 1
    return [header, "|" + "---|" * columns]


def mean_table(run: EvalRun) -> str:
    """The mean over images as a Markdown table, one row per method (and HR's NIQE).

    Example:
        >>> print(mean_table(run))                                          # doctest: +SKIP
        | method | PSNR-Y (dB) ↑ | SSIM-Y ↑ | NIQE ↓ | time (s) | tiles per class |
        |---|---|---|---|---|---|
        | bicubic | 26.09 | 0.7036 | 7.052 | 0.004 | — |
    """
    means = run.mean()
    return "\n".join(_table(None) + [_row("", row, means[row]) for row in run.rows])


def _conventions(run: EvalRun) -> List[str]:
    s, c = run.scale, run.crop_border
    lines = [
        f"- **PSNR-Y** (dB) and **SSIM-Y**: on BT.601 luma (MATLAB `rgb2ycbcr`), {c} px cropped from every "
        f"side; higher is better. PSNR-Y is capped at {PSNR_CAP_DB:g} dB, as `mmsr train` caps it, so an "
        "exactly reproduced image keeps the mean finite.",
        "- **NIQE**: lower is better; same crop, whole 96×96 blocks (— where an image is too small or NIQE "
        "was not measured). The HR row is the NIQE of the ground truth itself, for reference."
        + ("" if run.with_niqe else " Not measured in this run (`--no-niqe`)."),
        f"- {PI_UNAVAILABLE_REASON}",
        f"- **time**: seconds spent upscaling one image on {run.device} (LR in, SR out), without file "
        "reading or metrics; the first call of each method is a warm-up and is not counted.",
        "- **tiles per class**: how many LR tiles fell in each TVAT texture class (smooth → complex), for "
        "multi-model bundles; the mean row sums over images. With pure routing (the default here) each tile "
        "went through its class's model; with `--promote` some shallow-class tiles ran the deepest model instead.",
        f"- **LR**: HR cut to a multiple of {s}, then `mmsr.data.downsample` (bicubic with antialias, "
        "rounded to 8 bits), the training down-sampler. **bicubic**: Keys' a = −0.5 kernel (Pillow, "
        "MATLAB `imresize`), rounded to 8 bits: the SR literature's bicubic row.",
    ]
    if run.grayscale:
        lines.append(f"- **grayscale images** ({len(run.grayscale)}): {_GREY_CONVENTION}; see "
                     "\"Grayscale images\" below.")
    if any(m.name == TORCH_BICUBIC for m in run.methods):
        lines.append(
            f"- **{TORCH_BICUBIC}**: torch's `F.interpolate(mode=\"bicubic\")`, Keys' a = −0.75 kernel, rounded to "
            "8 bits: the upsample a residual generator (config ending in `r`) adds to its output, so exactly what an "
            "untrained residual generator outputs. It is sharper than bicubic and scores higher (0.13–0.2 dB PSNR-Y "
            f"on Set5 / Set14 ×4): a residual bundle's gain from training is its lead over {TORCH_BICUBIC}, not over "
            "bicubic."
        )
    return lines


def _sample_notes(run: EvalRun) -> List[str]:
    """Which images the means cover, where that is not simply every image."""
    notes = []
    if run.with_niqe:
        counts = run.niqe_counts()
        total = len(run.images)
        if any(n < total for n in counts.values()):
            if len(set(counts.values())) == 1:
                covered = f"{next(iter(counts.values()))} of {total} images"
            else:
                covered = ", ".join(f"{row} {n} of {total}" for row, n in counts.items())
            notes.append(
                f"- The NIQE means cover only the images that have a NIQE ({covered}): NIQE needs 96×96 pixels "
                "after the crop and is undefined on a flat image. The PSNR-Y and SSIM-Y means cover all "
                f"{total} images."
            )
    capped = run.capped()
    if capped:
        listed = ", ".join(f"{_cell(row)} on `{name}`" for name, row in capped)
        notes.append(
            f"- PSNR-Y reached the {PSNR_CAP_DB:g} dB cap ({listed}): the image was reproduced (almost) exactly, "
            f"and it enters the mean as {PSNR_CAP_DB:g} dB."
        )
    return notes


def _grey_section(run: EvalRun) -> List[str]:
    """The grayscale images: their PSNR-Y as scored, their PSNR on the grey values, and the means either way."""
    grey = set(run.grayscale)
    if not grey:
        return []
    names = ", ".join(f"`{name}`" for name in run.grayscale)
    lines = [
        f"## Grayscale images ({len(grey)})",
        "",
        f"{names}: scored, like every image, on the Y of three equal channels (see the conventions above), which "
        "reads 1.32 dB higher in PSNR than scoring the grey values directly. For comparison with tables that do "
        "the latter, PSNR on the grey values (a colour output enters as its luma on the grey range):",
        "",
        "| image | method | PSNR-Y as scored (dB) | PSNR on the grey values (dB) | difference (dB) |",
        "|---|---|---|---|---|",
    ]
    methods = [m.name for m in run.methods]
    for name, _, scores in run.images:
        if name in grey:
            for row in methods:
                s = scores[row]
                lines.append(f"| {_cell(name)} | {_cell(row)} | {_number(s.psnr_y, 2)} | {_number(s.psnr_grey, 2)} | "
                             f"{_number(s.psnr_grey - s.psnr_y, 2)} |")
    lines += ["", f"The mean PSNR-Y over the {len(run.images)} images with these scored on their grey values "
              "instead:", ""]
    means = run.mean()
    for row in methods:
        values = [s[row].psnr_grey if name in grey else s[row].psnr_y for name, _, s in run.images]
        mean, scored = sum(values) / len(values), means[row].psnr_y
        lines.append(f"- {_cell(row)}: {mean:.2f} dB ({mean - scored:+.3f} dB against {scored:.2f})")
    return lines + [""]


def _method_line(method: Method) -> str:
    info = method.describe()
    if info["kind"] == "bicubic":
        return f"- **{method.name}**: {info['kernel']}"
    where = "in-memory bundle"
    if info["path"]:
        where = f"`{info['path']}` ({info['size_bytes']:,} bytes, sha256 `{info['sha256']}`)"
    boundaries = ", ".join(f"{b:g}" for b in info["boundaries"]) or "none"
    return (
        f"- **{method.name}**: {where}; ×{info['scale']}; models {' / '.join(info['configs'])}; TVAT threshold "
        f"{info['threshold']:g}, boundaries {boundaries}; tile {info['tile_size']}, overlap {info['overlap']}, "
        f"context {info['context']}, blocks up to {info['max_run']} tiles wide, {info['blend']} blend; {info['device']}"
        + ("; tiles promoted to the deepest model where its block is cheaper" if info.get("promote") else "")
    )


def markdown_report(run: EvalRun, comparisons: Optional[Dict[str, str]] = None) -> str:
    """The whole ``report.md``: conventions, mean table, per-image table, skips, methods, timing.

    Args:
        run: the results of :func:`mmsr.evaluate.evaluate_folder`.
        comparisons: image name -> comparison PNG path relative to the report, to link them.

    Example:
        >>> markdown_report(run).splitlines()[0]                            # doctest: +SKIP
        '# mmsr eval: ×4, 14 images of data/val/set14'
    """
    comparisons = comparisons or {}
    lines = [f"# mmsr eval: ×{run.scale}, {len(run.images)} images of {run.hr_dir}", ""]
    lines += _conventions(run) + ["", f"## Mean over {len(run.images)} images", "", mean_table(run), ""]
    notes = _sample_notes(run)
    if notes:
        lines += notes + [""]
    lines += ["## Per image", ""] + _table("image")
    for name, _, scores in run.images:
        label = f"[{name}]({comparisons[name]})" if name in comparisons else name
        lines += [_row(_cell(label) + " | ", row, scores[row]) for row in run.rows if row in scores]
    lines.append("")
    lines += _grey_section(run)
    if run.failed:
        lines += [f"## Skipped images ({len(run.failed)})", ""]
        lines += [f"- `{name}`: {reason}" for name, reason in run.failed] + [""]
    lines += ["## Methods", ""] + [_method_line(m) for m in run.methods] + [""]
    lines += ["## Timing", "", _timing_line(run), ""]
    return "\n".join(lines)


def timing_text(run: EvalRun) -> str:
    """Where the run's time went: metrics (NIQE only when measured), upscaling, the whole run.

    Example:
        >>> timing_text(EvalRun("hr", 4, 4, False, "cpu", []))
        'metrics 0.0 s (PSNR + SSIM 0.0 s), upscaling 0.0 s, whole run 0.0 s'
    """
    parts = f"PSNR + SSIM {run.fidelity_s:.1f} s" + (f", NIQE {run.niqe_s:.1f} s" if run.with_niqe else "")
    return f"metrics {run.metrics_s:.1f} s ({parts}), upscaling {run.upscale_s:.1f} s, whole run {run.total_s:.1f} s"


def _timing_line(run: EvalRun) -> str:
    return f"{timing_text(run)}; device {run.device}, {torch.get_num_threads()} torch threads."


def _json_number(value: Optional[float]) -> Optional[float]:
    # JSON has no inf or NaN. PSNR is capped, so none reaches here from evaluate_folder; a hand-made
    # EvalRun's would be written as null, like a missing value.
    return value if value is not None and math.isfinite(value) else None


def _scores_dict(s: Scores) -> dict:
    scores = {
        "psnr_y_db": _json_number(s.psnr_y),
        "ssim_y": _json_number(s.ssim_y),
        "niqe": _json_number(s.niqe),
        "upscale_time_s": _json_number(s.time_s),
        "class_histogram": None if s.histogram is None else list(s.histogram),
    }
    if s.psnr_grey is not None:
        scores["psnr_grey_db"] = _json_number(s.psnr_grey)
    return scores


def results_json(run: EvalRun, comparisons: Optional[Dict[str, str]] = None) -> dict:
    """``results.json``: settings, methods, per-image and mean scores, skipped images and timing.

    PSNR-Y is capped at :data:`~mmsr.evaluate.PSNR_CAP_DB` (``psnr_capped`` lists where); any other
    non-finite number is written as null. ``niqe_images`` says how many images each row's NIQE mean covers.
    ``grayscale_images`` names the grayscale HR images; their scores add ``psnr_grey_db``, PSNR on the
    grey values directly. Each bundle method gives its file's absolute ``path``, ``sha256`` and ``size_bytes``.

    Example:
        >>> sorted(results_json(run))                                       # doctest: +SKIP
        ['conventions', 'crop_border', 'device', 'failed', 'hr_dir', 'images', 'mean', ...]
    """
    from . import __version__

    comparisons = comparisons or {}
    return {
        "mmsr_version": __version__,
        "hr_dir": run.hr_dir,
        "scale": run.scale,
        "crop_border": run.crop_border,
        "device": run.device,
        "niqe_measured": run.with_niqe,
        "images_evaluated": len(run.images),
        "niqe_images": run.niqe_counts() if run.with_niqe else None,
        "psnr_cap_db": PSNR_CAP_DB,
        "psnr_capped": [{"image": name, "method": row} for name, row in run.capped()],
        "grayscale_images": list(run.grayscale),
        "conventions": {
            "psnr_ssim": "BT.601 luma (MATLAB rgb2ycbcr), crop_border px dropped from every side, higher is better; "
            f"PSNR capped at {PSNR_CAP_DB:g} dB as mmsr train caps it",
            "niqe": "lower is better; the HR row is the ground truth's own NIQE",
            "grayscale": _GREY_CONVENTION + "; psnr_grey_db is that direct score",
            "pi": PI_UNAVAILABLE_REASON,
            "upscale_time_s": "seconds of upscaling per image, without file reading or metrics",
            "lr": "mod-crop, then mmsr.data.downsample (bicubic, antialias, 8-bit)",
            "bicubic": "Keys a=-0.5 (Pillow / MATLAB imresize), 8-bit: the SR literature's bicubic",
            TORCH_BICUBIC: "Keys a=-0.75 (torch F.interpolate), 8-bit: the skip of residual ('r') generators, "
            "exactly what an untrained one outputs; a residual model's gain from training is its lead over this row",
        },
        "methods": [m.describe() for m in run.methods],
        "images": [
            {
                "name": name,
                "height": size[0],
                "width": size[1],
                "comparison": comparisons.get(name),
                "scores": {row: _scores_dict(s) for row, s in scores.items()},
            }
            for name, size, scores in run.images
        ],
        "mean": {row: _scores_dict(s) for row, s in run.mean().items()},
        "failed": [{"name": name, "reason": reason} for name, reason in run.failed],
        "timing_s": {
            "psnr_ssim": run.fidelity_s,
            "niqe": run.niqe_s,
            "metrics": run.metrics_s,
            "upscale": run.upscale_s,
            "total": run.total_s,
        },
        "torch_threads": torch.get_num_threads(),
    }


def _csv_number(value: Optional[float]) -> str:
    return "" if value is None else repr(float(value))


def csv_text(run: EvalRun) -> str:
    """``results.csv``: :data:`CSV_COLUMNS`, one row per image and method, then a ``mean`` row per method.

    Empty cells are values that do not apply (PSNR of the HR row) or were not measured; the mean
    rows' ``class_histogram`` is the total over images. Histogram counts are space-separated.

    Example:
        >>> csv_text(run).splitlines()[0]                                   # doctest: +SKIP
        'image,method,height,width,psnr_y_db,ssim_y,niqe_lower_is_better,upscale_time_s,class_histogram'
    """

    def line(image: str, row: str, size: Tuple[str, str], s: Scores) -> list:
        histogram = "" if s.histogram is None else " ".join(map(str, s.histogram))
        return [image, row, *size, _csv_number(s.psnr_y), _csv_number(s.ssim_y), _csv_number(s.niqe),
                _csv_number(s.time_s), histogram]

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name, (height, width), scores in run.images:
        for row in run.rows:
            if row in scores:
                writer.writerow(line(name, row, (str(height), str(width)), scores[row]))
    means = run.mean()
    for row in run.rows:
        writer.writerow(line("mean", row, ("", ""), means[row]))
    return buffer.getvalue()


def write_reports(run: EvalRun, out_dir: Path, comparisons: Optional[Dict[str, str]] = None) -> List[Path]:
    """Write ``report.md``, ``results.csv`` and ``results.json`` into ``out_dir`` (created), atomically.

    Returns:
        the three paths.

    Example:
        >>> [p.name for p in write_reports(run, Path("eval_out"))]          # doctest: +SKIP
        ['report.md', 'results.csv', 'results.json']
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "report.md": markdown_report(run, comparisons),
        "results.csv": csv_text(run),
        "results.json": json.dumps(results_json(run, comparisons), indent=2, allow_nan=False) + "\n",
    }
    paths = []
    for name, text in files.items():
        write_bytes_atomically(out_dir / name, text.encode())
        paths.append(out_dir / name)
    return paths


def choose_crop(hr: Tensor, size: int) -> Tuple[int, int, int]:
    """The most textured ``size`` x ``size`` window of an image, for a comparison crop.

    Texture is the summed absolute luma gradient; windows are tried every 8 pixels.

    Args:
        hr: uint8 Tensor[3, H, W].
        size: the wanted side; clamped to the image.

    Returns:
        ``(y, x, side)``: the window's top-left corner and side.

    Example:
        >>> hr = torch.zeros(3, 64, 64, dtype=torch.uint8)
        >>> hr[:, 32:48, 40:56] = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
        >>> choose_crop(hr, 16)
        (32, 40, 16)
    """
    height, width = hr.shape[-2:]
    side = min(size, height, width)
    luma = rgb_to_y(hr)[0].float()
    gradient = torch.zeros_like(luma)
    gradient[1:] += (luma[1:] - luma[:-1]).abs()
    gradient[:, 1:] += (luma[:, 1:] - luma[:, :-1]).abs()
    energy = F.avg_pool2d(gradient[None, None], side, stride=_CROP_STRIDE)[0, 0]
    index = int(energy.argmax())
    return (index // energy.shape[1]) * _CROP_STRIDE, (index % energy.shape[1]) * _CROP_STRIDE, side


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    # Long bundle names are cut with an ellipsis rather than running into the next panel.
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _panel(image: Tensor, title: str, subtitle: str, side: int, font) -> Image.Image:
    """A labelled panel: ``image`` (uint8 [3, h, w]) fitted into ``side`` x ``side`` under two lines of text."""
    canvas = Image.new("RGB", (side, _LABEL_HEIGHT + side), _BACKGROUND)
    picture = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    factor = side / max(picture.width, picture.height)
    size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    # Nearest-neighbour zoom: the panels must show the methods' pixels, not a resampler's.
    picture = picture.resize(size, Image.NEAREST)
    canvas.paste(picture, ((side - size[0]) // 2, _LABEL_HEIGHT + (side - size[1]) // 2))
    draw = ImageDraw.Draw(canvas)
    draw.text((3, 2), _fit(draw, title, side - 6, font), fill=_TEXT, font=font)
    draw.text((3, _LABEL_HEIGHT // 2), _fit(draw, subtitle, side - 6, font), fill=_TEXT, font=font)
    return canvas


def _class_map_panel(
    outcome: ImageOutcome, method: Method, window: Tuple[int, int, int], scale: int, side: int, font
) -> Image.Image:
    classes, grid = outcome.routes[method.name]
    tinted = render_class_map(outcome.lr, classes, grid, method.num_classes)
    panel = _panel(tinted, f"{method.name}: classes", "", side, font)
    draw = ImageDraw.Draw(panel)
    lr_h, lr_w = outcome.lr.shape[-2:]
    factor = side / max(lr_h, lr_w)
    left = (side - round(lr_w * factor)) // 2
    top = _LABEL_HEIGHT + (side - round(lr_h * factor)) // 2
    y, x, size = window
    box = [left + x / scale * factor, top + y / scale * factor]
    box += [box[0] + size / scale * factor - 1, box[1] + size / scale * factor - 1]
    draw.rectangle(box, outline=_MARK)
    # The legend: one swatch per class, smooth -> complex, with its index.
    x0 = 3
    for k, colour in enumerate(class_colors(method.num_classes).round().int().tolist()):
        draw.rectangle([x0, _LABEL_HEIGHT // 2 + 2, x0 + 8, _LABEL_HEIGHT // 2 + 10], fill=tuple(colour))
        draw.text((x0 + 11, _LABEL_HEIGHT // 2), str(k), fill=_TEXT, font=font)
        x0 += 11 + round(draw.textlength(str(k), font=font)) + 6
    return panel


def comparison_image(
    outcome: ImageOutcome, methods: Sequence[Method], scale: int, *, crop: int = 128, zoom: int = 2
) -> Tensor:
    """One image's comparison: the same crop of each method | HR, then each multi-model bundle's class map.

    The crop is the most textured ``crop`` x ``crop`` HR window (:func:`choose_crop`), zoomed
    ``zoom`` times by pixel repetition. Each panel is labelled with its method and PSNR-Y / SSIM-Y
    on the whole image. Every multi-model bundle adds a panel with its class map
    (:func:`mmsr.classmap.render_class_map`) over the whole LR image, the crop outlined in white.

    Args:
        outcome: one image's :class:`~mmsr.evaluate.ImageOutcome`.
        methods: the methods, in panel order.
        scale: the SR factor.
        crop: the crop side in HR pixels (clamped to the image).
        zoom: the crop's magnification.

    Returns:
        uint8 Tensor[3, 30 + P, n * P + (n - 1) * 4], with ``P = side * zoom`` and ``n`` panels.

    Raises:
        ValueError: ``crop`` or ``zoom`` is not a positive int.

    Example:
        >>> comparison_image(outcome, methods, 4).shape                     # doctest: +SKIP
        torch.Size([3, 286, 1292])
    """
    for option, value in (("crop", crop), ("zoom", zoom)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{option} must be a positive int, got {value!r}")
    y, x, side = choose_crop(outcome.hr, crop)
    panel_side = side * zoom
    font = _font()
    window = (slice(None), slice(y, y + side), slice(x, x + side))
    panels = []
    for method in methods:
        s = outcome.scores[method.name]
        subtitle = f"{_number(s.psnr_y, 2)} dB · SSIM {_number(s.ssim_y, 3)}"
        panels.append(_panel(outcome.outputs[method.name][window], method.name, subtitle, panel_side, font))
    panels.append(_panel(outcome.hr[window], HR, f"crop {side}x{side} at ({x}, {y})", panel_side, font))
    for method in methods:
        if method.multi_model:
            panels.append(_class_map_panel(outcome, method, (y, x, side), scale, panel_side, font))
    width = len(panels) * panel_side + (len(panels) - 1) * _GAP
    canvas = Image.new("RGB", (width, _LABEL_HEIGHT + panel_side), _BACKGROUND)
    for i, panel in enumerate(panels):
        canvas.paste(panel, (i * (panel_side + _GAP), 0))
    return torch.from_numpy(np.array(canvas)).permute(2, 0, 1).contiguous()


def write_comparison(path: Path, outcome: ImageOutcome, methods: Sequence[Method], scale: int, **options) -> None:
    """Draw :func:`comparison_image` and write it to ``path`` as PNG, atomically.

    Example:
        >>> write_comparison(Path("eval_out/compare/baboon.png"), outcome, methods, 4)  # doctest: +SKIP
    """
    write_image(path, ImageData(rgb=comparison_image(outcome, methods, scale, **options)))

"""The evaluation harness: HR folder -> LR -> bicubic | torch-bicubic | bundles -> PSNR / SSIM / NIQE + time.

Every HR image is cut to a multiple of the scale (mod-crop, from the top-left corner), made LR with
the training down-sampler (:func:`mmsr.data.downsample`: bicubic with antialias, rounded to 8-bit
levels, so the LR is exactly what a saved LR file would hold) and upscaled by each method:

- **bicubic**: Keys' cubic kernel with a = -0.5, the kernel of Pillow and MATLAB ``imresize``
  (torch's ``F.interpolate(mode="bicubic", antialias=True)``, which for upsampling is Pillow's
  filter), rounded to uint8: the SR literature's bicubic row;
- **torch-bicubic**: plain ``F.interpolate(mode="bicubic")``, Keys a = -0.75, rounded to uint8: the
  upsample a residual ("r") generator adds to its output (:meth:`mmsr.models.Generator.bicubic`),
  so exactly what an untrained residual generator outputs. It is sharper and reads 0.13-0.2 dB
  above the bicubic row on Set5 / Set14 x4: that much of a residual model's gain over "bicubic" is
  no training's;
- **bundles**: :class:`mmsr.Upscaler` on the uint8 LR, giving uint8 SR.

Each output is measured against the mod-cropped HR with :mod:`mmsr.metrics`: PSNR and SSIM on
BT.601 luma with ``crop_border`` pixels dropped from every side, and NIQE (lower is better) with the
same crop. PSNR is capped at :data:`PSNR_CAP_DB` (as ``mmsr train`` caps it), so an exactly
reproduced image keeps the means finite. NIQE of the HR image itself is measured too, as the
reference point. Upscaling time covers the upscaling call only (LR on the CPU in, SR on the CPU
out, CUDA synchronised), not file reading or metrics; each model's first call is a warm-up outside
the times.

**Grayscale HR images** (one colour plane, e.g. Set14's bridge.png) are read as three equal
channels and scored like every other image, on their BT.601 Y: ``Y = 16 + 219/255 v``. That is
BasicSR's convention and every recorded figure uses it, but the narrower range raises PSNR by
``20 log10(255/219)`` = 1.32 dB over scoring the grey values directly, as some published tables do.
So for such images PSNR on the grey values is measured too (:attr:`Scores.psnr_grey`; a colour
output enters as its luma rescaled to the grey range), and the report names them.

The report writers live in :mod:`mmsr.evaluate_report`.

Example:
    >>> from mmsr.bundle import Bundle
    >>> methods = [bicubic_method(), bundle_method("toy", Bundle.random(["1-2w8", "2-2w8"],
    ...            threshold=0.0, boundaries=[0.05], scale=4))]
    >>> hr = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    >>> outcome = evaluate_image("noise.png", hr, methods, scale=4, crop_border=4, with_niqe=False)
    >>> sorted(outcome.scores), outcome.outputs["toy"].shape
    (['bicubic', 'toy'], torch.Size([3, 64, 64]))
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from .bundle import Bundle, load_bundle, resolve_bundle_path
from .data import IMAGE_EXTENSIONS, downsample, read_image_and_grayscale
from .grid import TileGrid
from .imageio import without_path
from .metrics import check_niqe_model, niqe, psnr, rgb_to_y, ssim
from ._checks import DeviceError
from ._checks import check_device as _upscaler_device
from .upscale import Upscaler

__all__ = [
    "BICUBIC",
    "HR",
    "PSNR_CAP_DB",
    "TORCH_BICUBIC",
    "EvalRun",
    "ImageOutcome",
    "Method",
    "Scores",
    "bicubic_method",
    "bicubic_upscale",
    "bundle_method",
    "check_device",
    "evaluate_folder",
    "evaluate_image",
    "file_sha256",
    "list_images",
    "make_lr",
    "mod_crop",
    "parse_bundle_spec",
    "torch_bicubic_method",
    "torch_bicubic_upscale",
]

BICUBIC = "bicubic"
TORCH_BICUBIC = "torch-bicubic"  # torch's a = -0.75 bicubic: the skip of residual ("r") generators
HR = "HR"  # the row that carries the HR image's own NIQE
# As `mmsr train` caps its validation PSNR: an exact reconstruction would make every mean it enters inf.
PSNR_CAP_DB = 100.0
_SSIM_WINDOW = 11  # SSIM's window: an image must keep this much after the border crop
# The metrics are hundreds of small float64 element-wise ops per image. On a 2-core machine shared
# with other work, 2 intra-op threads measured 0.2-4.8 s for PSNR + SSIM of 4 Set14 images (every
# op waits at a barrier for a descheduled thread), 1 thread 0.1 s; NIQE alike.
_METRIC_THREADS = 1
_NIQE_BLOCK = 96  # NIQE measures whole blocks of this side; a smaller image has no NIQE


@dataclass(frozen=True)
class Method:
    """One way of upscaling: a bicubic kernel (``upscaler`` None) or a bundle through an :class:`Upscaler`.

    Attributes:
        name: the method's name in tables and file names.
        upscaler: the bundle's Upscaler; None for a bicubic kernel.
        path: the bundle file, resolved to an absolute path, when the bundle came from one.
        kernel: for ``upscaler`` None, which bicubic: ``"pillow"`` (a = -0.5, :func:`bicubic_upscale`)
            or ``"torch"`` (a = -0.75, :func:`torch_bicubic_upscale`).
        given: the bundle file as it was given (e.g. typed after ``--bundle``).
        sha256, size_bytes: the bundle file's SHA-256 (hex) and size, read when it was loaded.
    """

    name: str
    upscaler: Optional[Upscaler] = None
    path: Optional[str] = None
    kernel: str = "pillow"
    given: Optional[str] = None
    sha256: Optional[str] = None
    size_bytes: Optional[int] = None

    def __post_init__(self) -> None:
        if self.kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(_KERNELS)}, got {self.kernel!r}")

    @property
    def num_classes(self) -> int:
        """K for a bundle, 0 for bicubic."""
        return 0 if self.upscaler is None else self.upscaler.num_classes

    @property
    def multi_model(self) -> bool:
        """Whether tiles are routed between several generators (so a class histogram means something)."""
        return self.num_classes > 1

    def describe(self) -> dict:
        """JSON-ready facts about the method: kind, bundle file (absolute path as resolved, the path as
        given, SHA-256 and size), configs, routing and tiling.

        Example:
            >>> bicubic_method().describe()["kind"]
            'bicubic'
        """
        if self.upscaler is None:
            return {"name": self.name, "kind": "bicubic", "kernel": _KERNELS[self.kernel][1]}
        up, bundle = self.upscaler, self.upscaler.bundle
        return {
            "name": self.name,
            "kind": "bundle",
            "path": self.path,
            "path_given": self.given,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "scale": bundle.scale,
            "configs": [c.name for c in bundle.configs],
            "threshold": bundle.threshold,
            "boundaries": list(bundle.boundaries),
            "tile_size": up.tile_size,
            "overlap": up.overlap,
            "context": up.context,
            "max_run": up.max_run,
            "promote": up.promote,
            "blend": up.blend,
            "device": str(up.device),
        }


def bicubic_method() -> Method:
    """The SR literature's bicubic (Keys a = -0.5) as a :class:`Method`.

    Example:
        >>> bicubic_method().name
        'bicubic'
    """
    return Method(BICUBIC)


def torch_bicubic_method() -> Method:
    """Torch's bicubic (Keys a = -0.75), what an untrained residual generator outputs, as a :class:`Method`.

    Example:
        >>> torch_bicubic_method().describe()["kernel"].startswith("Keys a=-0.75")
        True
    """
    return Method(TORCH_BICUBIC, kernel="torch")


def bundle_method(name: str, bundle: Bundle | str | os.PathLike, **upscaler_options) -> Method:
    """A bundle (or bundle file) as a :class:`Method`; ``upscaler_options`` go to :class:`Upscaler`.

    ``promote`` defaults to False here: evaluation measures the bundle with pure TVAT routing, the
    MMSR method itself, where the Upscaler by default sends some tiles to the deepest model
    (``promote=True`` measures what ``mmsr upscale`` does by default).

    Raises:
        BundleError: a missing or malformed bundle file (the message names it).
        ValueError: a reserved or empty name, or a bad Upscaler option.

    Example:
        >>> from mmsr.bundle import Bundle
        >>> bundle_method("toy", Bundle.random(["1-2w8"], threshold=0.0, boundaries=[])).num_classes
        1
    """
    if not name or name in _RESERVED:
        reserved = ", ".join(map(repr, _RESERVED))
        raise ValueError(f"bundle name {name!r} is empty or reserved ({reserved} are rows of their own)")
    if isinstance(bundle, Bundle):
        return Method(name, Upscaler(bundle, **{"promote": False, **upscaler_options}))
    path = resolve_bundle_path(bundle).resolve()
    loaded = load_bundle(path)
    # The file's hash is read after loading it: a missing or malformed file is the loader's error.
    return Method(name, Upscaler(loaded, **{"promote": False, **upscaler_options}), str(path), given=str(bundle),
                  sha256=file_sha256(path), size_bytes=path.stat().st_size)  # fmt: skip


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex (read in 1 MiB blocks).

    Example:
        >>> file_sha256(__file__) == hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
        True
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_device(text: str | torch.device, option: str = "--device") -> torch.device:
    """``text`` as a device evaluation can run on here: the CPU, or a CUDA device this torch sees.

    Args:
        text: "cpu", "cuda" or "cuda:N" (or a torch.device).
        option: what error messages call the argument.

    Raises:
        ValueError: not a device, a kind mmsr does not run on (e.g. "gpu", "mps"), or a CUDA device
            this torch does not see; the message names ``option`` and the devices available.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
        >>> check_device("mps")
        Traceback (most recent call last):
        ...
        ValueError: --device 'mps': must be 'cpu', 'cuda' or 'cuda:N'; available here: ...
    """
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    available = ", ".join(["cpu"] + [f"cuda:{i}" for i in range(count)])
    try:
        return _upscaler_device(text)  # the Upscaler's own check
    except DeviceError as err:
        raise ValueError(f"{option} {str(text)!r}: {err.reason}; available here: {available}") from None


def parse_bundle_spec(text: str) -> Tuple[str, str]:
    """``--bundle`` text as ``(name, path)``: ``NAME=PATH``, or a path named by its file stem.

    Example:
        >>> parse_bundle_spec("mmsr=runs/a.safetensors"), parse_bundle_spec("runs/b.safetensors")
        (('mmsr', 'runs/a.safetensors'), ('b', 'runs/b.safetensors'))
    """
    name, sep, path = text.partition("=")
    # A path may itself contain "=": only a separator before any path character counts as NAME=.
    if sep and name and "/" not in name and os.sep not in name:
        return name, path
    return Path(text).stem, text


def mod_crop(hr: Tensor, scale: int) -> Tensor:
    """Cut ``hr`` to a multiple of ``scale`` by dropping its last rows and columns (the SR convention).

    Args:
        hr: Tensor[..., H, W].
        scale: the SR factor.

    Returns:
        a view Tensor[..., H - H % scale, W - W % scale].

    Example:
        >>> mod_crop(torch.zeros(3, 10, 13), 4).shape
        torch.Size([3, 8, 12])
    """
    height, width = hr.shape[-2:]
    return hr[..., : height - height % scale, : width - width % scale]


def make_lr(hr: Tensor, scale: int) -> Tensor:
    """LR image from a mod-cropped HR image with the training down-sampler, as uint8.

    Args:
        hr: uint8 Tensor[3, H, W], H and W divisible by ``scale``.
        scale: the SR factor.

    Returns:
        uint8 Tensor[3, H / scale, W / scale]: :func:`mmsr.data.downsample` (which already rounds
        to 8-bit levels), stored as uint8.

    Example:
        >>> make_lr(torch.zeros(3, 16, 8, dtype=torch.uint8), 4).shape
        torch.Size([3, 4, 2])
    """
    lr = downsample(hr.unsqueeze(0), scale)[0]
    return lr.mul_(255).round_().to(torch.uint8)


def bicubic_upscale(lr: Tensor, scale: int) -> Tensor:
    """Bicubic upscaling with Keys' a = -0.5 kernel (Pillow's and MATLAB's), rounded to uint8.

    Args:
        lr: uint8 Tensor[3, h, w] or Tensor[B, 3, h, w], any device.
        scale: integer factor >= 1.

    Returns:
        uint8 Tensor of shape [..., 3, h * scale, w * scale] on ``lr``'s device.

    Example:
        >>> bicubic_upscale(torch.full((3, 4, 4), 7, dtype=torch.uint8), 4).unique().tolist()
        [7]
    """
    size = (lr.shape[-2] * scale, lr.shape[-1] * scale)
    # antialias=True selects torch's separable Pillow-style filter, whose cubic has a = -0.5.
    return _upscale_uint8(lr, lambda x: F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True))


def torch_bicubic_upscale(lr: Tensor, scale: int) -> Tensor:
    """Torch's bicubic upscaling (Keys' a = -0.75), rounded to uint8: the skip of residual generators.

    The same call as :meth:`mmsr.models.Generator.bicubic`, so an untrained residual ("r")
    generator, whose tail starts at zero, outputs exactly this.

    Args:
        lr: uint8 Tensor[3, h, w] or Tensor[B, 3, h, w], any device.
        scale: integer factor >= 1.

    Returns:
        uint8 Tensor of shape [..., 3, h * scale, w * scale] on ``lr``'s device.

    Example:
        >>> torch_bicubic_upscale(torch.full((3, 4, 4), 7, dtype=torch.uint8), 4).unique().tolist()
        [7]
    """
    return _upscale_uint8(lr, lambda x: F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False))


def _upscale_uint8(lr: Tensor, resize: Callable[[Tensor], Tensor]) -> Tensor:
    """``resize`` of a uint8 image (batch) read as floats in [0, 1], clamped and rounded back to uint8."""
    if lr.dtype != torch.uint8 or lr.dim() not in (3, 4):
        raise ValueError(f"lr should be a uint8 [3, h, w] or [B, 3, h, w] tensor, got {lr.dtype} {tuple(lr.shape)}")
    x = lr.float().div_(255)
    out = resize(x.unsqueeze(0) if lr.dim() == 3 else x).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return out[0] if lr.dim() == 3 else out


# Method.kernel -> (the upscaling function, its description in reports and results.json).
_KERNELS: Dict[str, Tuple[Callable[[Tensor, int], Tensor], str]] = {
    "pillow": (bicubic_upscale, "Keys a=-0.5 (Pillow / MATLAB imresize), the SR literature's bicubic"),
    "torch": (
        torch_bicubic_upscale,
        "Keys a=-0.75 (torch F.interpolate), the skip a residual ('r') generator adds: an untrained one outputs it",
    ),
}
_RESERVED = (BICUBIC, TORCH_BICUBIC, HR)


@dataclass(frozen=True)
class Scores:
    """One method's numbers on one image, or their mean over images.

    Attributes:
        psnr_y: dB on BT.601 luma (higher is better), at most :data:`PSNR_CAP_DB`; None on the HR row.
        ssim_y: SSIM on luma (higher is better); None on the HR row.
        niqe: NIQE (lower is better); None when not measured or undefined (image too small, flat).
        time_s: seconds spent upscaling; None on the HR row.
        histogram: tiles per class for a multi-model bundle (summed over images in a mean), else None.
        psnr_grey: for a grayscale HR image, PSNR (dB, capped alike) on its grey values directly instead
            of the Y of three equal channels (see the module docstring); None otherwise and in means.
    """

    psnr_y: Optional[float]
    ssim_y: Optional[float]
    niqe: Optional[float]
    time_s: Optional[float]
    histogram: Optional[Tuple[int, ...]] = None
    psnr_grey: Optional[float] = None


@dataclass
class ImageOutcome:
    """Everything :func:`evaluate_image` produced for one image.

    Attributes:
        name: the image's name (its path relative to the HR folder).
        hr: the mod-cropped HR, uint8 Tensor[3, H, W].
        lr: its LR, uint8 Tensor[3, H / scale, W / scale].
        outputs: method name -> uint8 Tensor[3, H, W] SR image.
        routes: method name -> (int64 classes [rows, cols], the LR tile grid) for bundles.
        scores: method name -> :class:`Scores`, plus :data:`HR` when NIQE was measured.
        fidelity_s, niqe_s: seconds spent on PSNR + SSIM, and on NIQE.
        grayscale: the HR image was grayscale (each method's Scores then has ``psnr_grey``).
    """

    name: str
    hr: Tensor
    lr: Tensor
    outputs: Dict[str, Tensor]
    routes: Dict[str, Tuple[Tensor, TileGrid]]
    scores: Dict[str, Scores]
    fidelity_s: float = 0.0
    niqe_s: float = 0.0
    grayscale: bool = False


@dataclass
class EvalRun:
    """The results of :func:`evaluate_folder`.

    Attributes:
        hr_dir, scale, crop_border, with_niqe, device: the settings.
        methods: the evaluated methods, bicubic first.
        images: per image, ``(name, (H, W) after mod-crop, {method: Scores})``.
        failed: ``(name, reason)`` of every image that was skipped.
        grayscale: names of the evaluated images whose HR is grayscale (scored as the Y of three equal
            channels; their Scores also hold ``psnr_grey``).
        fidelity_s, niqe_s, upscale_s, total_s: seconds spent on PSNR + SSIM, NIQE, upscaling, and
            the whole run.
    """

    hr_dir: str
    scale: int
    crop_border: int
    with_niqe: bool
    device: str
    methods: List[Method]
    images: List[Tuple[str, Tuple[int, int], Dict[str, Scores]]] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)
    grayscale: List[str] = field(default_factory=list)
    fidelity_s: float = 0.0
    niqe_s: float = 0.0
    upscale_s: float = 0.0
    total_s: float = 0.0

    @property
    def metrics_s(self) -> float:
        """Seconds spent on all metrics."""
        return self.fidelity_s + self.niqe_s

    def niqe_counts(self) -> Dict[str, int]:
        """Per row, how many images have a NIQE (the others were too small or flat): its mean's sample.

        Example:
            >>> run = EvalRun("hr", 4, 4, True, "cpu", [bicubic_method()])
            >>> none = Scores(None, None, None, None)
            >>> run.images = [("a", (8, 8), {"bicubic": Scores(20.0, 0.5, 4.0, 0.1), "HR": Scores(None, None, 3.0, None)}),
            ...               ("b", (8, 8), {"bicubic": Scores(30.0, 0.7, None, 0.3), "HR": none})]
            >>> run.niqe_counts()
            {'bicubic': 1, 'HR': 1}
        """
        return {row: sum(1 for _, _, s in self.images if row in s and s[row].niqe is not None) for row in self.rows}

    def capped(self) -> List[Tuple[str, str]]:
        """``(image, row)`` of every PSNR-Y that reached :data:`PSNR_CAP_DB` (an exact or near-exact reconstruction)."""
        return [
            (name, row)
            for name, _, scores in self.images
            for row, s in scores.items()
            if s.psnr_y is not None and s.psnr_y >= PSNR_CAP_DB
        ]

    @property
    def rows(self) -> List[str]:
        """Row names in table order: the methods, then :data:`HR` when NIQE was measured."""
        return [m.name for m in self.methods] + ([HR] if self.with_niqe else [])

    def mean(self) -> Dict[str, Scores]:
        """Per row, the mean of each number over the images that have it; histograms are summed.

        Example:
            >>> run = EvalRun("hr", 4, 4, False, "cpu", [bicubic_method()])
            >>> run.images = [("a", (8, 8), {"bicubic": Scores(20.0, 0.5, None, 0.1)}),
            ...               ("b", (8, 8), {"bicubic": Scores(30.0, 0.7, None, 0.3)})]
            >>> run.mean()["bicubic"].psnr_y
            25.0
        """
        means = {}
        for row in self.rows:
            scores = [s[row] for _, _, s in self.images if row in s]
            histograms = [s.histogram for s in scores if s.histogram is not None]
            means[row] = Scores(
                psnr_y=_mean(s.psnr_y for s in scores),
                ssim_y=_mean(s.ssim_y for s in scores),
                niqe=_mean(s.niqe for s in scores),
                time_s=_mean(s.time_s for s in scores),
                histogram=tuple(map(sum, zip(*histograms))) if histograms else None,
            )
        return means


def _mean(values) -> Optional[float]:
    # None (not measured) is left out; PSNR is capped (PSNR_CAP_DB), so no inf reaches a mean.
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def list_images(hr_dir: str | os.PathLike, name: str = "HR folder") -> List[Path]:
    """Image files under ``hr_dir``, recursively, sorted; broken links are kept so they get reported.

    ``name`` is what error messages call the folder (a CLI passes its option, e.g. "--hr").

    Raises:
        FileNotFoundError / NotADirectoryError: ``hr_dir`` is missing or not a folder.
        ValueError: it holds no image file.

    Example:
        >>> list_images("data/val/set5")[0].name                            # doctest: +SKIP
        'baby.png'
    """
    root = Path(hr_dir)
    if not root.exists():
        raise FileNotFoundError(f"{name} {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{name} {str(root)!r} is not a directory")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir())
    if not paths:
        raise ValueError(f"{name} {str(root)!r} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return paths


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _upscale(
    method: Method, lr: Tensor, scale: int, device: torch.device
) -> Tuple[Tensor, Optional[Tuple[Tensor, TileGrid]], float]:
    """Run one method on uint8 ``lr: [3, h, w]`` (CPU): (uint8 SR [3, H, W] on the CPU, route, seconds).

    A bicubic kernel runs on ``device``; a bundle on its Upscaler's device.
    """
    device = device if method.upscaler is None else method.upscaler.device
    _synchronize(device)
    start = time.perf_counter()
    if method.upscaler is None:
        sr = _KERNELS[method.kernel][0](lr.to(device), scale).cpu()
        route = None
    else:
        result = method.upscaler.upscale(lr)
        sr, route = result.image, (result.classes, result.grid)
    _synchronize(device)
    return sr, route, time.perf_counter() - start


def _warm_up(methods: Sequence[Method], scale: int, device: torch.device) -> None:
    # The first call of a model pays one-off allocation and kernel selection; keep it out of the times.
    # A flat tile routes to one class only, so each class's model is also run once by force.
    for method in methods:
        if method.upscaler is None:
            _upscale(method, torch.zeros(3, 8, 8, dtype=torch.uint8), scale, device)
            continue
        side = method.upscaler.tile_size
        lr = torch.zeros(3, side, side, dtype=torch.uint8)
        method.upscaler.upscale(lr)
        for k in range(method.num_classes):
            method.upscaler.upscale(lr, force_class=k)
        _synchronize(method.upscaler.device)


def _grey_psnr(sr: Tensor, hr: Tensor, crop_border: int) -> float:
    """PSNR on a grayscale HR's grey values: the SR's BT.601 luma back on the grey range (for three equal
    channels, their value) against the HR's plane."""
    grey = rgb_to_y(sr).sub_(16).div_(219)  # Y = 16 + 219 v on v in [0, 1]
    return min(psnr(grey, hr[:1].double().div_(255), crop_border=crop_border), PSNR_CAP_DB)


@contextmanager
def _threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _finite(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


def evaluate_image(
    name: str,
    hr: Tensor,
    methods: Sequence[Method],
    *,
    scale: int,
    crop_border: int,
    with_niqe: bool = True,
    device: torch.device | str = "cpu",
    grayscale: bool = False,
) -> ImageOutcome:
    """Upscale one HR image's LR with every method and measure each output.

    Args:
        name: the image's name in the results.
        hr: uint8 Tensor[3, H, W] on the CPU; it is mod-cropped here.
        methods: the methods, e.g. ``[bicubic_method(), bundle_method(...)]``.
        scale: the SR factor (each bundle's scale must match).
        crop_border: pixels dropped from every side before PSNR, SSIM and NIQE.
        with_niqe: measure NIQE (the slowest metric). NIQE needs 96x96 pixels after the crop; a
            smaller image gets None.
        device: where the bicubic kernels run (bundles run on their Upscaler's device).
        grayscale: the HR file was grayscale (its three channels equal): also measure PSNR on its
            grey values directly (:attr:`Scores.psnr_grey`).

    Returns:
        :class:`ImageOutcome` with the outputs, class routes and :class:`Scores` per method (and
        the HR NIQE under :data:`HR`); PSNR is capped at :data:`PSNR_CAP_DB`.

    Raises:
        ValueError: the image is too small for ``scale`` and ``crop_border`` (the message names it).

    Example:
        >>> hr = torch.randint(0, 256, (3, 30, 30), dtype=torch.uint8)
        >>> out = evaluate_image("a.png", hr, [bicubic_method()], scale=2, crop_border=2, with_niqe=False)
        >>> out.hr.shape, out.scores["bicubic"].histogram
        (torch.Size([3, 30, 30]), None)
    """
    hr = mod_crop(hr, scale)
    height, width = hr.shape[-2:]
    smallest = 2 * crop_border + _SSIM_WINDOW
    if min(height, width) < max(smallest, scale):
        raise ValueError(
            f"{name}: {height}x{width} after cutting to a multiple of {scale} is too small; SSIM with "
            f"crop border {crop_border} needs at least {smallest}x{smallest}"
        )
    device = torch.device(device)
    lr = make_lr(hr, scale)
    outputs, routes, times = {}, {}, {}
    for method in methods:
        sr, route, seconds = _upscale(method, lr, scale, device)
        outputs[method.name], times[method.name] = sr, seconds
        if route is not None:
            routes[method.name] = route

    naturalness: Dict[str, Optional[float]] = {}
    with _threads(_METRIC_THREADS):
        start = time.perf_counter()
        fidelity = {
            name: (min(psnr(sr, hr, crop_border=crop_border), PSNR_CAP_DB), ssim(sr, hr, crop_border=crop_border))
            for name, sr in outputs.items()
        }
        grey = {name: _grey_psnr(sr, hr, crop_border) for name, sr in outputs.items()} if grayscale else {}
        fidelity_s = time.perf_counter() - start
        start = time.perf_counter()
        if with_niqe and min(height, width) - 2 * crop_border >= _NIQE_BLOCK:
            batch = torch.stack([outputs[m.name] for m in methods] + [hr])
            values = niqe(batch, crop_border=crop_border).tolist()
            naturalness = {row: _finite(v) for row, v in zip([m.name for m in methods] + [HR], values)}
        niqe_s = time.perf_counter() - start

    scores = {}
    for method in methods:
        histogram = None
        if method.multi_model:
            histogram = tuple(torch.bincount(routes[method.name][0].flatten(), minlength=method.num_classes).tolist())
        p, s = fidelity[method.name]
        scores[method.name] = Scores(
            p, s, naturalness.get(method.name), times[method.name], histogram, grey.get(method.name)
        )
    if with_niqe:
        scores[HR] = Scores(None, None, naturalness.get(HR), None)
    return ImageOutcome(name, hr, lr, outputs, routes, scores, fidelity_s, niqe_s, grayscale)


def evaluate_folder(
    hr_dir: str | os.PathLike,
    methods: Sequence[Method],
    *,
    scale: int,
    crop_border: Optional[int] = None,
    with_niqe: bool = True,
    limit: Optional[int] = None,
    device: torch.device | str = "cpu",
    on_image: Optional[Callable[[ImageOutcome], None]] = None,
    progress: bool = True,
) -> EvalRun:
    """Evaluate every image of an HR folder; unreadable images are reported and skipped.

    Args:
        hr_dir: the HR folder, read recursively (png, jpg, jpeg, webp, bmp, tif, tiff).
        methods: bicubic kernels and/or bundles (see :func:`bicubic_method`,
            :func:`torch_bicubic_method`, :func:`bundle_method`); names must be unique and every
            bundle's scale must be ``scale``.
        scale: the SR factor.
        crop_border: pixels dropped from every side before measuring; default ``scale``.
        with_niqe: measure NIQE; its model file is loaded first, so a missing one is one error.
        limit: evaluate only the first ``limit`` images (in sorted order).
        device: where the bicubic kernels run; bundles run on their Upscaler's device.
        on_image: called with each image's :class:`ImageOutcome` (e.g. to draw its comparison);
            its errors propagate.
        progress: show a tqdm bar over the images on stderr.

    Returns:
        :class:`EvalRun`. A skipped image is printed to stderr by name and listed in ``failed``.

    Raises:
        FileNotFoundError / NotADirectoryError / ValueError: a missing or empty ``hr_dir``, or bad
            settings (the message names the argument).
        OSError: ``with_niqe`` and NIQE's model file cannot be read (the message names it).

    Example:
        >>> run = evaluate_folder("data/val/set5", [bicubic_method()], scale=4)  # doctest: +SKIP
        >>> round(run.mean()["bicubic"].psnr_y, 2)                               # doctest: +SKIP
        28.43
    """
    start = time.perf_counter()
    crop_border = scale if crop_border is None else crop_border
    _check_settings(methods, scale, crop_border, limit)
    root = Path(hr_dir)
    paths = list_images(root)[:limit]
    if with_niqe:
        check_niqe_model()
    device = torch.device(device)
    run = EvalRun(str(root), scale, crop_border, with_niqe, str(device), list(methods))
    _warm_up(methods, scale, device)
    for path in tqdm(paths, desc="mmsr eval", unit="image", file=sys.stderr, disable=not progress):
        name = path.relative_to(root).as_posix()
        try:
            hr, grayscale = read_image_and_grayscale(path)
            outcome = evaluate_image(
                name, hr, methods, scale=scale, crop_border=crop_border, with_niqe=with_niqe, device=device,
                grayscale=grayscale,
            )
        except (OSError, ValueError) as err:
            _skip(run, name, _reason(err, name, path))
            continue
        run.images.append((name, tuple(outcome.hr.shape[-2:]), outcome.scores))
        if grayscale:
            run.grayscale.append(name)
        run.fidelity_s += outcome.fidelity_s
        run.niqe_s += outcome.niqe_s
        run.upscale_s += sum(s.time_s for s in outcome.scores.values() if s.time_s is not None)
        if on_image is not None:
            on_image(outcome)
    run.total_s = time.perf_counter() - start
    return run


def _reason(err: Exception, name: str, path: Path) -> str:
    # Readers and evaluate_image name the image, and decoders quote its path; the skip line names it already.
    text = without_path(str(err), path)
    for prefix in (name, repr(name)):
        if text.startswith(prefix + ": "):
            return text[len(prefix) + 2 :]
    return text


def _skip(run: EvalRun, name: str, reason: str) -> None:
    run.failed.append((name, reason))
    tqdm.write(f"mmsr eval: skipped {name}: {reason}", file=sys.stderr)


def _check_settings(methods: Sequence[Method], scale: int, crop_border: int, limit: Optional[int]) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"--scale must be a positive int, got {scale!r}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"--crop-border must be an int >= 0, got {crop_border!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if not methods:
        raise ValueError("nothing to evaluate: no methods")
    names = [m.name for m in methods]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"method names must be unique, got {', '.join(repeated)} more than once (use --bundle NAME=PATH)"
        )
    for method in methods:
        if method.upscaler is not None and method.upscaler.scale != scale:
            raise ValueError(f"bundle {method.name!r} upscales x{method.upscaler.scale} but --scale is {scale}")

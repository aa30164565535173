"""Training settings: the command-line options, their checks, and each class's resolved job.

``mmsr train`` and ``python -m mmsr.train`` (the torchrun entry) share :func:`add_arguments`, so both
take the same options. Options marked "per class" take one value for every class or a
comma-separated list with one value per class, smooth -> complex.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> s = settings_from_args(parser.parse_args(["photos/", "--out", "m.safetensors", "--devices", "cpu"]))
    >>> [job.config for job in s.jobs()]
    ['4-2', '8-6', '16-8']
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar

import torch

from ..models import PAPER_CONFIGS, ModelConfig
from ..ops import DEFAULT_TVAT_THRESHOLD
from .calibrate import check_boundaries, check_crop
from .losses import PIXEL_LOSSES
from .warm_start import check_init_fits, read_init_source

__all__ = [
    "DEFAULT_CONFIGS",
    "SEED_MAX",
    "ClassJob",
    "TrainSettings",
    "add_arguments",
    "default_concurrent",
    "holdout_option",
    "parse_devices",
    "seed_option",
    "settings_from_args",
]

# The paper's Table 1 pairing: smooth classes get shallow models, the most complex class SRGAN's 16-8.
DEFAULT_CONFIGS: dict[int, tuple[str, ...]] = {
    1: ("16-8",),
    2: ("8-6", "16-8"),
    3: ("4-2", "8-6", "16-8"),
    4: ("2-2", "4-2", "8-6", "16-8"),
    5: PAPER_CONFIGS,
}
AMP_MODES = ("off", "bf16")
LR_SCHEDULES = ("constant", "cosine")
CLASS_CROPS = ("own", "and-above")
_DEFAULT_CLASSES = 3
_DEFAULT_BASELINE = "16-8"
# torch's generators take seeds below 2**64; the trainer derives several from --seed (wrapped to fit).
SEED_MAX = 2**63 - 1
_T = TypeVar("_T")


@dataclass(frozen=True)
class ClassJob:
    """What one class trains: its model, step budgets, batch and learning rate.

    ``index`` is the TVAT class (0 = smoothest); the baseline's single job is class 0.
    """

    index: int
    config: str
    pixel_steps: int
    gan_steps: int
    batch: int
    lr: float

    @property
    def model(self) -> ModelConfig:
        return ModelConfig.parse(self.config)

    @property
    def steps(self) -> int:
        return self.pixel_steps + self.gan_steps


@dataclass(frozen=True)
class TrainSettings:
    """Every option of a training run, resolved and checked; JSON-serialisable via :meth:`to_dict`.

    Per-class fields are tuples with one entry per class. In baseline mode there is one class,
    ``configs == (baseline_config,)``, no boundaries, and the step budgets are the sums that the
    ``mmsr_classes``-class run would spend, so both runs see the same number of crops. With
    ``baseline_class`` K the baseline instead trains class K's budgets on class K's crops only, and
    ``boundaries`` are the edges of that split (None: calibrated); its bundle still routes nothing.
    """

    data: str
    out: str
    run_dir: str
    configs: tuple[str, ...]
    pixel_steps: tuple[int, ...]
    gan_steps: tuple[int, ...]
    batch: tuple[int, ...]
    lr: tuple[float, ...]
    boundaries: Optional[tuple[float, ...]] = None
    threshold: float = DEFAULT_TVAT_THRESHOLD
    calib_samples: int = 4096
    baseline: bool = False
    mmsr_classes: int = 3
    crop: int = 96
    scale: int = 4
    holdout: float = 0.1
    val_crops: int = 32
    min_class_fraction: float = 0.005
    pixel_loss: str = "l1"
    lr_schedule: str = "constant"
    gan_lr: float = 1e-4
    pixel_weight: float = 1.0
    perceptual_weight: float = 1.0
    adv_weight: float = 1e-3
    disc_width: int = 64
    vgg19: Optional[str] = None
    early_stop: int = 5
    val_every: int = 500
    min_delta: float = 0.01
    log_every: int = 50
    checkpoint_every: int = 1000
    # Also checkpoint once this much training time has passed since the last checkpoint (0: by steps
    # only): on a CPU, 1000 steps of a 16-8 take most of an hour that a killed session would lose.
    checkpoint_minutes: float = 10.0
    keep_checkpoints: int = 2
    snapshots: int = 0
    seed: int = 0
    devices: tuple[str, ...] = ("cpu",)
    concurrent: bool = False
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    threads: Optional[int] = None
    resume: bool = False
    init: Optional[str] = None
    init_provenance: Optional[dict] = None  # the --init bundle's own provenance, read with its header
    baseline_origin: Optional[str] = None  # why the baseline has its model, e.g. "--baseline-config"
    # --baseline-class: the baseline's one model trains only on crops of this TVAT class of the
    # ``mmsr_classes``-class split (``boundaries``: that split's edges, or None to calibrate them).
    baseline_class: Optional[int] = None
    # Which crops an MMSR class trains on: "own" (the paper: its TVAT class's), or "and-above" (its
    # class's and every more textured class's; the most textured class is unchanged).
    class_crops: str = "own"
    overwrite: bool = False
    progress: bool = True
    tile_size: int = 32
    overlap: int = 8
    command: tuple[str, ...] = field(default_factory=tuple)

    @property
    def classes(self) -> int:
        return len(self.configs)

    @property
    def crops_and_above(self) -> bool:
        """Each MMSR class also trains on the more textured classes' crops (``--class-crops and-above``;
        a baseline never does: the option is refused with ``--baseline``)."""
        return self.class_crops == "and-above" and not self.baseline

    def jobs(self) -> list[ClassJob]:
        """One :class:`ClassJob` per class, smooth -> complex."""
        return [
            ClassJob(k, self.configs[k], self.pixel_steps[k], self.gan_steps[k], self.batch[k], self.lr[k])
            for k in range(self.classes)
        ]

    def to_dict(self) -> dict:
        """The settings as plain JSON values (tuples become lists)."""
        return asdict(self)


def parse_devices(text: str) -> tuple[str, ...]:
    """``--devices`` as a tuple of torch device strings; "auto" is every CUDA device, else "cpu".

    Repeating a device ("cuda:0,cuda:0") runs two workers on it concurrently.

    Example:
        >>> parse_devices("cpu,cpu")
        ('cpu', 'cpu')
    """
    if text.strip() == "auto":
        count = torch.cuda.device_count()
        return tuple(f"cuda:{i}" for i in range(count)) or ("cpu",)
    devices = []
    for item in (part.strip() for part in text.split(",")):
        try:
            device = torch.device(item)
        except RuntimeError as err:
            raise ValueError(f"--devices: {item!r} is not a device ({err})") from None
        if device.type == "cuda":
            index = device.index or 0
            if not torch.cuda.is_available():
                raise ValueError(f"--devices: {item!r} asks for CUDA, but torch sees no CUDA device")
            if index >= torch.cuda.device_count():
                raise ValueError(f"--devices: {item!r}, but torch sees only {torch.cuda.device_count()} CUDA devices")
            devices.append(f"cuda:{index}")
        elif device.type == "cpu":
            devices.append("cpu")
        else:
            raise ValueError(f"--devices: {item!r}: only cpu and cuda devices are supported")
    return tuple(devices)


def default_concurrent(devices: Sequence[str], classes: int, amp: str = "off") -> bool:
    """Whether classes train in concurrent workers when ``--concurrent`` is not given.

    Only on GPUs, only when classes outnumber devices, and only with bf16 autocast: that is where
    one process leaves a GPU idle. Measured on an H200 (``benchmarks/concurrency_probe.py``, the
    4-2r, 8-6r and 16-8r at batch 64, 2026-11-28), three class processes sharing it did 1.55x the
    work of one in bf16 (2.1x on an H100), but 0.90x in fp32 and 0.93x in fp32 with channels_last:
    fp32 steps keep the GPU busy, and sharing only adds switching. On CPU, never: concurrent workers
    would only split the cores.

    Example:
        >>> default_concurrent(("cuda:0",), 3, "bf16"), default_concurrent(("cuda:0",), 3, "off")
        (True, False)
        >>> default_concurrent(("cpu",), 3, "bf16"), default_concurrent(("cuda:0",), 1, "bf16")
        (False, False)
    """
    return amp == "bf16" and all(d.startswith("cuda") for d in devices) and classes > len(devices)


def _check_discriminator_fits(configs, gan_steps, batch, crop: int) -> None:
    """Refuse a GAN phase whose discriminator BatchNorm would see one value per channel.

    The discriminator halves the map at every second layer; with ``--batch 1`` a crop that ends
    as a 1x1 map leaves BatchNorm one value per channel, which it refuses while training.
    """
    for k, (config, steps, size) in enumerate(zip(configs, gan_steps, batch)):
        if not steps:
            continue
        layers = ModelConfig.parse(config).disc_layers
        side = crop
        for _ in range(layers // 2):
            side = (side + 1) // 2
        if size * side * side < 2:
            raise ValueError(
                f"--crop {crop} with --batch {size} is too small for class {k}'s {layers}-layer discriminator "
                f"({config}): its last feature map is {side}x{side}, and BatchNorm needs more than one value per "
                "channel while training; use a larger --crop, --batch 2 or more, or --gan-steps 0"
            )


def _per_class(text: str, classes: int, convert: Callable[[str], _T], option: str) -> tuple[_T, ...]:
    if not str(text).strip():
        raise ValueError(f"{option} is empty; give one value for every class or one per class")
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(convert(p) for p in parts)
    except (ValueError, argparse.ArgumentTypeError) as err:
        raise ValueError(f"{option}: {err}") from None
    if len(values) == 1:
        return values * classes
    if len(values) != classes:
        raise ValueError(f"{option} has {len(values)} values but there are {classes} classes; give one or {classes}")
    return values


# The option types raise ArgumentTypeError so that argparse prints "argument --x: <this message>".


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _at_least(parse: Callable[[str], _T], low: float, *, above: bool, what: str) -> Callable[[str], _T]:
    """An option type: ``parse(text)``, refused unless >= ``low`` (> ``low`` with ``above``)."""

    def check(text: str):
        value = parse(text)
        if value < low or (above and value == low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return check


_positive_int = _at_least(_integer, 1, above=False, what="a positive integer")
_count = _at_least(_integer, 0, above=False, what="an integer >= 0")
_positive_float = _at_least(_number, 0, above=True, what="a positive number")
_weight = _at_least(_number, 0, above=False, what="a number >= 0")
#: ``--threads`` of every command that takes it (`mmsr train`'s per worker; mmsr.cli.threads for the others).
threads_option = _at_least(_integer, 1, above=False, what="at least 1 CPU thread")


def seed_option(text: str) -> int:
    """``--seed`` of ``mmsr train`` and ``mmsr calibrate``: an integer in [0, 2**63 - 1].

    Example:
        >>> seed_option("7")
        7
    """
    value = _integer(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**63-1, got {text!r}")
    return value


def holdout_option(text: str) -> float:
    """``--holdout`` of ``mmsr train`` and ``mmsr calibrate``: a share in [0, 1).

    Example:
        >>> holdout_option("0.1")
        0.1
    """
    value = _number(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def _config_name(text: str) -> str:
    return ModelConfig.parse(text).name


def _default_run_dir(out: str) -> str:
    path = Path(out)
    return str(path.with_name(path.stem + ".run"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register every training option on ``parser`` (shared by ``mmsr train`` and ``-m mmsr.train``)."""
    parser.add_argument("data", help="folder of HR training images, read recursively")
    parser.add_argument(
        "--out",
        required=True,
        help="the model bundle to write (.safetensors; weights stored as float16); an existing file is refused "
        "unless --overwrite is given",
    )
    parser.add_argument("--run-dir", help="logs, checkpoints and summary.json (default: OUT with .run instead of its suffix)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out file (never the --init bundle); --resume may always replace the bundle "
        "its own run wrote",
    )

    group = parser.add_argument_group("classes")
    group.add_argument(
        "--classes", type=_positive_int, help="number of TVAT classes K (default: from --boundaries or --configs, else 3)"
    )
    group.add_argument(
        "--boundaries",
        help="K-1 ascending TVAT class edges, e.g. 0.05,0.15 (TVAT of [0,1] pixels; for one class use --classes 1); "
        "default: calibrated on the training images into equal-count classes",
    )
    group.add_argument(
        "--threshold",
        type=_number,
        help=f"TVAT threshold (default: the --init bundle's, else {DEFAULT_TVAT_THRESHOLD})",
    )
    group.add_argument(
        "--calib-samples",
        type=_positive_int,
        default=4096,
        help="random crops of the training images scored to calibrate the boundaries (default: %(default)s)",
    )
    group.add_argument(
        "--configs",
        help="per class: X-Y model pairs, optionally with width and 'r' (the generator learns a residual on the "
        "bicubic upsample, and starts as bicubic), e.g. 4-2,8-6,16-8, 2-2w32 or 4-2r,8-6r,16-8r "
        "(default: the paper's Table 1 pairing for K)",
    )
    group.add_argument(
        "--baseline",
        action="store_true",
        help="train one --baseline-config model on all crops, with the step budget the K-class run spends "
        "(same crops, batch and crop size): the fair single-model comparison (--baseline-class: on one class's "
        "crops)",
    )
    group.add_argument(
        "--baseline-config",
        help="the baseline's model (default: the --init bundle's one model, else 16-8r when every --configs entry "
        "is residual, else 16-8)",
    )
    group.add_argument(
        "--baseline-class",
        type=int,
        metavar="K",
        help="with --baseline: train the one model only on crops of TVAT class K (0 = smoothest) of the "
        "--classes split (calibrated, or --boundaries), for class K's --pixel-steps and --gan-steps; the bundle "
        "still uses the model on every tile. MMSR's most textured class's crops taught a 16-8r for every tile "
        "faster than all crops did (benchmarks/README.md). Default: every crop",
    )
    group.add_argument(
        "--class-crops",
        choices=CLASS_CROPS,
        default="own",
        help="which crops each MMSR class trains on: 'own', its TVAT class's (the paper), or 'and-above', its "
        "class's and every more textured class's (the smoothest class then sees every crop; the most textured "
        "is unchanged). A class's smooth crops alone did not teach its tiles (benchmarks/README.md). "
        "Validation stays on the class's own crops (default: %(default)s)",
    )
    group.add_argument(
        "--init",
        metavar="BUNDLE",
        help="start every class's generator from this bundle's weights ('default': the bundle shipped with "
        "mmsr), to fine-tune it or go on from an earlier run; its scale, models, threshold and boundaries "
        "are kept (options that contradict them are refused); optimisers and discriminators start fresh "
        "(default: random weights). A class may start from a deeper generator of the same width and input "
        "skip (its first blocks), and a one-model bundle may start every class of a --configs run, which "
        "then calibrates its own boundaries: e.g. a --baseline-class 2 16-8r starting 4-2r,8-6r,16-8r. A class "
        "given 0 --pixel-steps and --gan-steps keeps its --init weights untrained",
    )

    group = parser.add_argument_group("data")
    group.add_argument("--crop", type=_positive_int, default=96, help="HR crop side (default: %(default)s)")
    group.add_argument("--scale", type=int, choices=(2, 3, 4), default=4, help="SR factor (default: %(default)s)")
    group.add_argument("--batch", default="16", help="per class: crops per step (default: %(default)s)")
    group.add_argument(
        "--holdout",
        type=holdout_option,
        default=0.1,
        help="share of images held out for validation crops, at least one when above 0 and there are 2 or more "
        "images; the rest are trained and calibrated on (0: validate on fixed training crops; default: %(default)s)",
    )
    group.add_argument(
        "--val-crops", type=_count, default=32, help="fixed validation crops per class (default: %(default)s)"
    )
    group.add_argument(
        "--min-class-fraction",
        type=_number,
        default=0.005,
        help="refuse a class holding a smaller share of random crops (default: %(default)s)",
    )

    group = parser.add_argument_group("optimisation")
    group.add_argument(
        "--pixel-steps", default="20000", help="per class: pixel-loss pre-training steps (default: %(default)s)"
    )
    group.add_argument(
        "--gan-steps", default="10000", help="per class: adversarial fine-tuning steps (0: none; default: %(default)s)"
    )
    group.add_argument("--pixel-loss", choices=PIXEL_LOSSES, default="l1", help="pixel loss (default: %(default)s)")
    group.add_argument("--lr", default="1e-4", help="per class: pixel-phase learning rate (default: %(default)s)")
    group.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="constant",
        help="pixel phase: constant --lr, or cosine decay from --lr to 1%% of it over the planned pixel steps "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--gan-lr",
        type=_positive_float,
        default=1e-4,
        help="GAN-phase learning rate, G and D (default: %(default)s)",
    )
    group.add_argument(
        "--pixel-weight", type=_weight, default=1.0, help="GAN phase: pixel loss weight, >= 0 (default: %(default)s)"
    )
    group.add_argument(
        "--perceptual-weight",
        type=_weight,
        default=1.0,
        help="GAN phase: VGG19 loss weight, >= 0; used only when VGG19 weights are found (default: %(default)s)",
    )
    group.add_argument(
        "--adv-weight",
        type=_weight,
        default=1e-3,
        help="GAN phase: adversarial loss weight, >= 0 (default: %(default)s)",
    )
    group.add_argument(
        "--disc-width", type=_positive_int, default=64, help="discriminator base width (default: %(default)s)"
    )
    group.add_argument(
        "--vgg19",
        help="torchvision VGG19 weights file for the perceptual loss (default: one in torch's hub cache; never "
        "downloaded; without one the perceptual loss is off)",
    )
    group.add_argument(
        "--early-stop",
        type=_count,
        default=5,
        help="end a class's pixel phase after this many validations without a PSNR gain (0: off; default: "
        "%(default)s). Either way the generator that validated best is restored when the pixel phase ends",
    )
    group.add_argument(
        "--val-every",
        type=_positive_int,
        default=500,
        help="validate every N steps (default: %(default)s); validation PSNR (console, logs, summary.json) is RGB "
        "PSNR on the class's fixed validation crops, not mmsr eval's PSNR-Y on whole images",
    )
    group.add_argument(
        "--min-delta",
        type=_weight,
        default=0.01,
        help="validation PSNR gain in dB that counts as better, >= 0 (default: %(default)s)",
    )
    group.add_argument(
        "--seed",
        type=seed_option,
        default=0,
        help="seeds everything random in the run: the models' initial weights, the training crops and their "
        "augmentation, the hold-out split, the calibration crops and the validation crops; runs that differ only "
        "in --seed are seeds of one setting (0 to 2**63-1; default: %(default)s)",
    )

    group = parser.add_argument_group("devices and speed")
    group.add_argument(
        "--devices",
        default="auto",
        help="cpu | cuda:0,cuda:1,... : one worker process per entry; with one entry (and no --concurrent) "
        "the launcher trains in its own process (default: auto, every CUDA device, else cpu)",
    )
    group.add_argument(
        "--concurrent",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one worker process per class, sharing the devices (default: on with --amp bf16 when every device "
        "is a GPU and there are more classes than devices, where three classes on one GPU did 1.55-2.1x the work of "
        "one; off in fp32, where they did 0.90x on an H200, and on CPU, where the cores are already shared)",
    )
    group.add_argument(
        "--amp", choices=AMP_MODES, default="off", help="bf16 autocast, CUDA only (default: %(default)s)"
    )
    group.add_argument("--channels-last", action="store_true", help="channels_last memory format (default: off)")
    group.add_argument("--compile", action="store_true", help="torch.compile the models (default: off)")
    group.add_argument("--threads", type=threads_option, help="CPU threads per worker (default: cores / CPU workers)")

    group = parser.add_argument_group("run")
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue every unfinished class from its last checkpoint; the options that shape training must be "
        "those of the interrupted run (default: off)",
    )
    group.add_argument(
        "--log-every", type=_positive_int, default=50, help="JSONL log interval in steps (default: %(default)s)"
    )
    group.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=1000,
        help="checkpoint interval in steps (default: %(default)s)",
    )
    group.add_argument(
        "--checkpoint-minutes",
        type=_weight,
        default=10.0,
        help="also checkpoint when this many minutes of training have passed since the class's last checkpoint, "
        "so that a killed run loses at most that much (0: by steps only; default: %(default)s)",
    )
    group.add_argument(
        "--keep-checkpoints", type=_positive_int, default=2, help="checkpoints kept per class (default: %(default)s)"
    )
    group.add_argument(
        "--snapshots",
        type=_count,
        default=0,
        metavar="K",
        help="keep each class's generator at K evenly spaced points of its pixel phase (and at its start), in "
        "RUN/snapshots/, so `mmsr report --quality HR_DIR` can chart quality against training time and compare "
        "runs at equal quality (default: 0, none)",
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bars (default: progress bars on)")
    group.add_argument(
        "--tile-size", type=_positive_int, default=32, help="the bundle's default LR tile size (default: %(default)s)"
    )
    group.add_argument(
        "--overlap",
        type=_count,
        default=8,
        help="the bundle's default tile overlap, below --tile-size (default: %(default)s)",
    )


def _boundaries_option(text: str) -> tuple[float, ...]:
    parts = [b.strip() for b in text.split(",")]
    if not text.strip():
        raise ValueError("--boundaries is empty; give K-1 class edges, e.g. 0.05,0.15 (for one class: --classes 1)")
    if "" in parts:
        raise ValueError(f"--boundaries {text!r} has an empty entry; give K-1 comma-separated class edges")
    try:
        return check_boundaries([float(b) for b in parts])
    except ValueError as err:
        raise ValueError(f"--boundaries: {err}") from None


def _default_baseline(configs: Sequence[str]) -> tuple[str, str]:
    """The baseline's model when neither --baseline-config nor a one-model --init names it, and why."""
    if configs and all(ModelConfig.parse(c).input_skip for c in configs):
        return _DEFAULT_BASELINE + "r", "SRGAN's 16-8, residual like every --configs entry"
    return _DEFAULT_BASELINE, "SRGAN's 16-8"


def _check_out(out: str, init: Optional[str]) -> None:
    path = Path(out)
    if path.is_dir():
        example = path / "model.safetensors"
        raise ValueError(f"--out {out} is a directory; give the bundle file to write, e.g. {example}")
    if init is not None and path.exists() and os.path.samefile(path, init):
        raise ValueError(
            f"--out {out} is the --init bundle; training would replace the weights it starts from: choose another --out"
        )


def settings_from_args(args: argparse.Namespace, command: Sequence[str] = ()) -> TrainSettings:
    """Check the parsed options and resolve per-class values; raises ValueError naming the option.

    Everything that can be checked without the data is checked here, before any training starts.
    """
    boundaries = _boundaries_option(args.boundaries) if args.boundaries is not None else None
    if args.configs is not None and not args.configs.strip():
        raise ValueError("--configs is empty; give one X-Y model per class, e.g. 4-2,8-6,16-8 (or leave it out)")
    explicit_boundaries = boundaries
    source = read_init_source(args.init) if args.init else None
    # A class run warm-started from a bundle trains the bundle's classes unless told otherwise.
    routed_source = source if source is not None and not args.baseline else None
    if boundaries is not None:
        mmsr_classes = len(boundaries) + 1
    elif args.classes is not None:
        mmsr_classes = args.classes
    elif args.configs and "," in args.configs:
        mmsr_classes = len(args.configs.split(","))
    elif routed_source is not None:
        mmsr_classes = len(routed_source.configs)
    else:
        mmsr_classes = _DEFAULT_CLASSES
    if boundaries is not None and args.classes is not None and args.classes != mmsr_classes:
        raise ValueError(f"--classes {args.classes} disagrees with the {mmsr_classes} classes of --boundaries")

    if args.configs:
        configs = _per_class(args.configs, mmsr_classes, _config_name, "--configs")
    elif routed_source is not None and len(routed_source.configs) == mmsr_classes:
        configs = routed_source.configs
    elif mmsr_classes in DEFAULT_CONFIGS:
        configs = DEFAULT_CONFIGS[mmsr_classes]
    else:
        raise ValueError(f"there is no default model list for {mmsr_classes} classes; give --configs")
    pixel_steps = _per_class(args.pixel_steps, mmsr_classes, _count, "--pixel-steps")
    gan_steps = _per_class(args.gan_steps, mmsr_classes, _count, "--gan-steps")
    batch = _per_class(args.batch, mmsr_classes, _positive_int, "--batch")
    lr = _per_class(args.lr, mmsr_classes, _positive_float, "--lr")
    for k in range(mmsr_classes):
        # With --init a class may keep its starting weights as they are (e.g. the deep model the
        # shallow classes are cut from); from random weights it would ship noise.
        if pixel_steps[k] + gan_steps[k] == 0 and (source is None or args.baseline):
            raise ValueError(f"class {k} has no steps: --pixel-steps and --gan-steps are both 0"
                             + ("" if args.baseline else " (only a class started from --init may keep its weights untrained)"))

    baseline_origin = None
    if args.baseline:
        if len(set(batch)) != 1 or len(set(lr)) != 1:
            raise ValueError("--baseline needs one --batch and one --lr value for all classes")
        # Same crops as the K-class run: its per-class budgets summed, in steps of the same batch.
        if args.baseline_config is not None:
            baseline_config, baseline_origin = args.baseline_config, "--baseline-config"
        elif source is not None and len(source.configs) == 1:
            baseline_config, baseline_origin = source.configs[0], "the --init bundle's model"
        else:
            baseline_config, baseline_origin = _default_baseline(configs)
        try:
            configs = (_config_name(baseline_config),)
        except ValueError as err:
            raise ValueError(f"--baseline-config: {err}") from None
        if args.baseline_class is None:
            pixel_steps = (sum(pixel_steps),)
            gan_steps = (sum(gan_steps),)
            boundaries = ()
        else:
            if mmsr_classes < 2:
                raise ValueError("--baseline-class needs two or more TVAT classes to choose from (--classes, "
                                 "--boundaries or --configs)")
            if not 0 <= args.baseline_class < mmsr_classes:
                raise ValueError(f"--baseline-class {args.baseline_class} is not one of the {mmsr_classes} TVAT "
                                 f"classes (0 to {mmsr_classes - 1}, 0 = smoothest)")
            k = args.baseline_class
            pixel_steps, gan_steps = (pixel_steps[k],), (gan_steps[k],)
        batch, lr = batch[:1], lr[:1]
    elif args.baseline_class is not None:
        raise ValueError("--baseline-class chooses the crops of --baseline's one model; give --baseline too")
    if args.baseline and args.class_crops != "own":
        raise ValueError(f"--class-crops {args.class_crops} chooses the crops of MMSR's classes, but --baseline "
                         "trains one model; --baseline-class K chooses its crops")

    if source is not None:
        # The baseline's one model sees every crop: routing does not constrain it.
        check_init_fits(
            source,
            scale=args.scale,
            configs=configs,
            boundaries=None if args.baseline else explicit_boundaries,
            threshold=None if args.baseline else args.threshold,
        )
        if routed_source is not None and boundaries is None and not routed_source.seeds_every_class(len(configs)):
            boundaries = routed_source.boundaries
    threshold = args.threshold
    if threshold is None:
        threshold = source.threshold if source is not None else DEFAULT_TVAT_THRESHOLD

    if args.crop % args.scale:
        raise ValueError(f"--crop {args.crop} is not divisible by --scale {args.scale}")
    check_crop(args.crop, args.scale)
    _check_discriminator_fits(configs, gan_steps, batch, args.crop)
    if not 0.0 <= args.holdout < 1.0:
        raise ValueError(f"--holdout must be in [0, 1), got {args.holdout}")
    if not 0.0 < args.min_class_fraction <= 1.0:
        raise ValueError(f"--min-class-fraction must be in (0, 1], got {args.min_class_fraction}")
    if threshold < 0 or not math.isfinite(threshold):
        raise ValueError(f"--threshold must be a finite number >= 0, got {threshold}")
    if any(gan_steps) and args.pixel_weight == args.perceptual_weight == args.adv_weight == 0:
        raise ValueError(
            "--pixel-weight, --perceptual-weight and --adv-weight are all 0: the GAN phase would not train the "
            "generator; give one of them a weight above 0, or --gan-steps 0"
        )
    if args.overlap >= args.tile_size:
        raise ValueError(f"--overlap {args.overlap} must be below --tile-size {args.tile_size}")
    # A class kept at its --init weights (0 pixel steps) has every snapshot equal to them.
    counted = [n for n in pixel_steps if n > 0] if source is not None else list(pixel_steps)
    if args.snapshots and counted and min(counted) < args.snapshots:
        # More snapshots than steps would repeat a step's weights as several points of the curve.
        k = pixel_steps.index(min(counted))
        raise ValueError(
            f"--snapshots {args.snapshots} needs at least that many pixel steps per class, but class {k} "
            f"({configs[k]}) has {pixel_steps[k]}"
        )
    _check_out(args.out, source.path if source is not None else None)
    devices = parse_devices(args.devices)
    if args.amp == "bf16" and any(d == "cpu" for d in devices):
        raise ValueError(
            "--amp bf16 needs CUDA devices, but --devices includes cpu; bf16 autocast is for GPUs (drop --amp on CPU)"
        )
    run_dir = args.run_dir or _default_run_dir(args.out)
    return TrainSettings(
        data=str(args.data),
        out=str(args.out),
        run_dir=str(run_dir),
        configs=tuple(configs),
        pixel_steps=tuple(pixel_steps),
        gan_steps=tuple(gan_steps),
        batch=tuple(batch),
        lr=tuple(lr),
        boundaries=boundaries,
        threshold=float(threshold),
        calib_samples=args.calib_samples,
        baseline=bool(args.baseline),
        mmsr_classes=mmsr_classes,
        crop=args.crop,
        scale=args.scale,
        holdout=args.holdout,
        val_crops=args.val_crops,
        min_class_fraction=args.min_class_fraction,
        pixel_loss=args.pixel_loss,
        lr_schedule=args.lr_schedule,
        gan_lr=args.gan_lr,
        pixel_weight=args.pixel_weight,
        perceptual_weight=args.perceptual_weight,
        adv_weight=args.adv_weight,
        disc_width=args.disc_width,
        vgg19=os.path.abspath(args.vgg19) if args.vgg19 else None,
        early_stop=args.early_stop,
        val_every=args.val_every,
        min_delta=args.min_delta,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        checkpoint_minutes=args.checkpoint_minutes,
        keep_checkpoints=args.keep_checkpoints,
        snapshots=args.snapshots,
        seed=args.seed,
        devices=devices,
        concurrent=default_concurrent(devices, len(configs), args.amp) if args.concurrent is None else args.concurrent,
        amp=args.amp,
        channels_last=bool(args.channels_last),
        compile=bool(args.compile),
        threads=args.threads,
        resume=bool(args.resume),
        init=source.path if source is not None else None,
        init_provenance=source.provenance if source is not None else None,
        baseline_origin=baseline_origin,
        baseline_class=args.baseline_class if args.baseline else None,
        class_crops=args.class_crops,
        overwrite=bool(args.overwrite),
        progress=not args.no_progress,
        tile_size=args.tile_size,
        overlap=args.overlap,
        command=tuple(command),
    )

"""One class's training: the generator and discriminator of one "X-Y", on one device (or DDP group).

Two phases, as SRGAN:

1. **pixel** — SRResNet pre-training on the pixel loss (L1 or MSE). Every ``val_every`` steps and at
   the end of the phase the generator is scored by PSNR on the class's fixed held-out crops. With
   early stopping the phase ends after ``early_stop`` validations without a gain of ``min_delta``
   dB; either way the best-scoring generator is restored when the phase ends.
2. **gan** — adversarial fine-tuning: a discriminator step (BCE, real vs fake), then a generator
   step on ``pixel_weight * pixel + perceptual_weight * VGG19 + adv_weight * adversarial``; the VGG19
   term only when weights were found (see :mod:`mmsr.train.losses`).

Checkpoints (see :mod:`mmsr.train.checkpoint`) are written every ``checkpoint_every`` steps or
``checkpoint_minutes`` of training after the last one, whichever comes first, on Ctrl-C / SIGTERM
(at the end of the running step), and at the end, where the state is marked finished; a finished
class is not retrained by ``--resume``. A second Ctrl-C stops at once; when it lands inside a step,
nothing is checkpointed and ``--resume`` continues from the last checkpoint. Under DDP only the
group's first rank writes logs and checkpoints.

A loss, a generator weight or a validation PSNR that is not finite ends the class with
:class:`TrainingDiverged`, naming the step, the loss and the option to lower. Losses are checked
where the loop syncs anyway (logging, validation, checkpoints, snapshots, the phase's end), so
the check costs no extra host-device sync per step; weights are checked before they are written.

Test hook: the environment variable ``MMSR_TRAIN_FAIL_AT=K:STEP`` makes class K raise
:class:`InjectedFailure` right after step STEP (and its checkpoint, if one falls there). It exists so
that tests can kill a worker mid-run; it has no other use.

Example:
    >>> trainer = ClassTrainer(job, settings, images, val_images, boundaries, "cpu")  # doctest: +SKIP
    >>> trainer.run().val_psnr                                                          # doctest: +SKIP
    27.9
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..data import ClassBatches, ImageSet
from ..models import Discriminator, Generator, count_parameters
from .checkpoint import CheckpointError, load_latest, remove_debris, save_checkpoint
from .config import ClassJob, TrainSettings
from .losses import PerceptualLoss, VGG19Features, discriminator_loss, generator_adversarial_loss, pixel_loss
from .report import JsonlLog
from .snapshots import snapshot_steps, write_snapshot
from .warm_start import first_blocks, init_state_dict, residual_blocks

__all__ = ["FAIL_ENV", "ClassResult", "ClassTrainer", "DDPGroup", "InjectedFailure", "TrainingDiverged", "class_dir"]

FAIL_ENV = "MMSR_TRAIN_FAIL_AT"
_CHECKPOINT_FORMAT = 1
# Validation draws up to this many candidates per wanted crop before giving up on a rare class.
_VAL_DRAWS_PER_CROP = 800


# The cosine schedule ends at this share of --lr rather than at 0, where the last steps would be wasted.
_COSINE_FLOOR = 0.01


def scheduled_lr(schedule: str, base: float, step: int, steps: int) -> float:
    """The pixel phase's learning rate at ``step`` of ``steps``: ``base``, or its cosine decay to 1%.

    A function of the step alone, so a resumed run continues the same curve with nothing extra in
    its checkpoint. The decay spans the planned pixel steps; early stopping may end it sooner.

    Example:
        >>> [round(scheduled_lr("cosine", 1.0, s, 100), 3) for s in (0, 50, 100)]
        [1.0, 0.505, 0.01]
    """
    if schedule == "constant" or steps <= 1:
        return base
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}")
    progress = min(step, steps) / steps
    return base * (_COSINE_FLOOR + (1 - _COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))


class InjectedFailure(RuntimeError):
    """Raised by the ``MMSR_TRAIN_FAIL_AT`` test hook."""


class TrainingDiverged(RuntimeError):
    """A loss, weight or validation PSNR became NaN or infinite; the message says where and what to lower."""


def _derived_seed(value: int) -> int:
    # Seeds derived from --seed (up to 2**63 - 1) wrap into the range torch's generators take.
    return value % 2**64


@dataclass(frozen=True)
class DDPGroup:
    """The process group of the ranks that train one class together."""

    group: Any
    rank: int  # rank within the group; 0 writes logs and checkpoints
    size: int
    leader: int  # global rank of the group's rank 0


@dataclass
class ClassResult:
    """How one class's training went; the per-class entry of summary.json."""

    index: int
    config: str
    device: str
    status: str  # "finished", "failed", "diverged", "interrupted" or "not run"
    steps: int = 0
    pixel_steps: int = 0
    gan_steps: int = 0
    planned_steps: int = 0
    early_stopped_at: Optional[int] = None
    wall_time_s: Optional[float] = None
    session_steps: int = 0
    resumed_from: Optional[int] = None
    val_psnr: Optional[float] = None
    best_val_psnr: Optional[float] = None
    val_source: Optional[str] = None  # "held-out" or "training" images
    crops_per_s: Optional[float] = None
    generator_parameters: Optional[int] = None
    ranks: int = 1
    worker: Optional[int] = None
    pid: Optional[int] = None
    checkpoint: Optional[str] = None  # the class's last checkpoint, relative to the run directory
    error: Optional[str] = None

    def to_dict(self) -> dict:
        return asdict(self)


#: The signal a worker process gets when its launcher dies (``launch._die_with_parent``). Not SIGTERM:
#: the kernel can deliver a parent-death signal more than once, and a second SIGTERM means "stop at
#: once". Not SIGHUP: under ``nohup`` every process of the run ignores SIGHUP, so a worker would
#: train on as an orphan. Until a class trains, its default action (terminate) ends the orphan.
PARENT_DIED_SIGNAL = signal.SIGUSR1


def hangups_stop() -> bool:
    """Whether a hang-up (SIGHUP: the terminal closed) should stop the run. Not where SIGHUP is
    ignored: that is `nohup`, whose user asked the run to outlive the terminal."""
    return hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN


@contextlib.contextmanager
def stop_signals_to(handler, also: tuple = ()) -> Iterator[None]:
    """SIGINT, SIGTERM and the signals ``also`` go to ``handler`` inside the block; the handlers
    before it come back after."""
    signals = (signal.SIGINT, signal.SIGTERM, *also)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def class_dir(run_dir: str | Path, index: int) -> Path:
    """Where class ``index`` keeps its checkpoints."""
    return Path(run_dir) / "checkpoints" / f"class{index}"


def _stderr(message: str) -> None:
    print(f"mmsr: {message}", file=sys.stderr)


def _fail_point() -> Optional[tuple[int, int]]:
    text = os.environ.get(FAIL_ENV)
    if not text:
        return None
    try:
        klass, step = (int(part) for part in text.split(":"))
    except ValueError:
        raise ValueError(f"{FAIL_ENV} must be CLASS:STEP, got {text!r}") from None
    return klass, step


def _psnr(sr: Tensor, hr: Tensor) -> Tensor:
    # Per-crop PSNR in dB on RGB values in [0, 1]; a perfect crop is capped at 100 dB.
    mse = (sr - hr).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


class ClassTrainer:
    """Train one class's model pair; :meth:`run` returns a :class:`ClassResult`.

    Args:
        job: the class, its "X-Y" config, step budgets, batch and learning rate.
        settings: the run's settings (losses, validation, checkpoints, speed options).
        train_images: training images (any device; moved to ``device``).
        val_images: held-out images for validation crops, or None for no validation.
        boundaries: the TVAT class edges (empty for the baseline's single class).
        device: where to train, e.g. "cpu" or "cuda:1".
        ddp: the class's DDP group when several ranks train it.
        position: progress bar row.
        vgg19: VGG19 weights file for the perceptual loss, or None.
        log: where notes go (default: stderr).
    """

    def __init__(
        self,
        job: ClassJob,
        settings: TrainSettings,
        train_images: ImageSet,
        val_images: Optional[ImageSet],
        boundaries: Sequence[float],
        device: str,
        *,
        ddp: Optional[DDPGroup] = None,
        position: int = 0,
        vgg19: Optional[str] = None,
        log: Callable[[str], None] = _stderr,
    ) -> None:
        self.job = job
        self.settings = settings
        self.device = torch.device(device)
        self.ddp = ddp
        self.leader = ddp is None or ddp.rank == 0
        self.ranks = 1 if ddp is None else ddp.size
        self.position = position
        self.log = log
        self.memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.dir = class_dir(settings.run_dir, job.index)
        self.jsonl = JsonlLog(Path(settings.run_dir) / "logs" / f"class{job.index}.jsonl") if self.leader else None

        # Several ranks on one class split its budget: each takes 1/size of the steps, so the class
        # still sees the same number of crops, in steps of size x the batch.
        self.pixel_budget = math.ceil(job.pixel_steps / self.ranks)
        self.gan_budget = math.ceil(job.gan_steps / self.ranks)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_derived_seed(settings.seed * 1009 + job.index))
            self.generator = Generator.from_config(job.model, settings.scale)
            self.discriminator = (
                Discriminator(layers=job.model.disc_layers, base_channels=settings.disc_width)
                if job.gan_steps
                else None
            )
        if settings.init is not None:
            # Warm start (--init): the bundle was checked against this run's models when the options
            # were read; its keys lack only BatchNorm's num_batches_tracked, which stays 0.
            # A deeper generator (same width and input skip) gives its first blocks.
            state = init_state_dict(settings.init, job.index)
            have = residual_blocks(state)
            loaded = self.generator.load_state_dict(first_blocks(state, job.model.blocks), strict=False)
            missing = [name for name in loaded.missing_keys if not name.endswith("num_batches_tracked")]
            if missing or loaded.unexpected_keys:  # the options were checked: this is a malformed bundle
                raise ValueError(f"--init {settings.init}: class {job.index}'s weights do not fit a {job.config} "
                                 f"generator (missing {missing[:3]}, unexpected {loaded.unexpected_keys[:3]})")
            if self.leader:
                cut = f" (its first {job.model.blocks} of {have} residual blocks)" if have > job.model.blocks else ""
                self.log(f"class {job.index} ({job.config}): generator starts from {settings.init}{cut}")
        self.generator.to(self.device, memory_format=self.memory_format)
        _, self.g_train = self._wrap(self.generator)
        # Fused Adam on CUDA: one kernel for every parameter instead of a few per tensor; small models
        # are launch-bound there. (Not on CPU, where the fused kernel is no faster.)
        fused = True if self.device.type == "cuda" else None
        self.opt_pixel = torch.optim.Adam(self.generator.parameters(), lr=job.lr, fused=fused)
        self.opt_gan = torch.optim.Adam(self.generator.parameters(), lr=settings.gan_lr, fused=fused)
        if self.discriminator is not None:
            self.discriminator.to(self.device, memory_format=self.memory_format)
            self.d_ddp, self.d_train = self._wrap(self.discriminator)
            # The generator's step runs the discriminator frozen and outside DDP: no reduction for it.
            self.d_frozen = torch.compile(self.discriminator) if settings.compile else self.discriminator
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=settings.gan_lr, fused=fused)
        self.pixel_loss = pixel_loss(settings.pixel_loss)
        self.perceptual = None
        if vgg19 is not None and job.gan_steps:
            self.perceptual = PerceptualLoss(VGG19Features.from_file(vgg19)).to(self.device, memory_format=self.memory_format)

        # A --baseline-class baseline trains on one class's crops but is meant for every tile: it samples
        # that class and validates on crops of every kind, the plain baseline's (same seed, same crops).
        if settings.baseline_class is not None:
            klass, val_boundaries, val_class = settings.baseline_class, (), 0
        else:
            klass = job.index if boundaries else 0
            val_boundaries, val_class = boundaries, klass
        rank = 0 if ddp is None else ddp.rank
        self.batches = ClassBatches(
            train_images.to(self.device),
            crop=settings.crop,
            scale=settings.scale,
            klass=klass,
            boundaries=boundaries,
            threshold=settings.threshold,
            seed=_derived_seed(settings.seed * 7919 + 101 * job.index + rank),
            min_fraction=settings.min_class_fraction,
            and_above=settings.crops_and_above,
        )
        self.val_lr, self.val_hr, self.val_source = self._validation_crops(val_images, train_images, val_boundaries,
                                                                           val_class)

        # Progress of the class; all of it goes into checkpoints.
        self.step = 0
        self.pixel_end = self.pixel_budget
        self.elapsed = 0.0
        self.best_psnr = -math.inf
        self.best_step: Optional[int] = None
        self.best_state: Optional[dict] = None
        self.stale = 0
        self.early_stopped_at: Optional[int] = None
        self.restored_best = False
        self.resumed_from: Optional[int] = None
        self.last_checkpoint: Optional[Path] = None
        self.checkpoint_step: Optional[int] = None
        self._checkpointed_at = time.perf_counter()  # reset when a session starts and at each checkpoint
        # (step, losses) of the steps since the last log line, checked for divergence when the loop syncs.
        self._pending: list[tuple[int, dict[str, Tensor]]] = []
        self._start_step = 0
        self._stop_signal: Optional[str] = None  # the name of the signal that asked run() to stop
        # True from the first change of a step (or of the best-weights restore) until it is whole: a
        # second Ctrl-C raises at once, and the state it leaves is then no step's state.
        self._mid_update = False

    # -- setup ---------------------------------------------------------------------------------

    def _wrap(self, module: nn.Module) -> tuple[Optional[DistributedDataParallel], nn.Module]:
        """``(the DDP wrapper or None, what the training step calls)``."""
        ddp = None
        if self.ddp is not None:
            device_ids = [self.device] if self.device.type == "cuda" else None
            ddp = DistributedDataParallel(module, device_ids=device_ids, process_group=self.ddp.group)
        wrapped = ddp if ddp is not None else module
        return ddp, torch.compile(wrapped) if self.settings.compile else wrapped

    def _validation_crops(self, val_images: Optional[ImageSet], train_images: ImageSet, boundaries, klass: int):
        """Fixed validation crops of the class: held-out ones, else (with a note) training ones."""
        if self.settings.val_crops == 0:
            return None, None, None
        count = self.settings.val_crops
        for source, images in (("held-out", val_images), ("training", train_images)):
            if images is None:
                continue
            sampler = ClassBatches(
                images.to(self.device),
                crop=self.settings.crop,
                scale=self.settings.scale,
                klass=klass,
                boundaries=boundaries,
                threshold=self.settings.threshold,
                seed=_derived_seed(self.settings.seed + 4099 * (self.job.index + 1)),
                augment=False,
            )
            lr, hr = sampler.take(count, max_draws=count * _VAL_DRAWS_PER_CROP)
            if lr.shape[0]:
                if source == "training" and val_images is not None and self.leader:
                    self.log(
                        f"class {self.job.index}: no held-out crop falls in this class; validating on fixed crops "
                        "of the training images instead, so its PSNR is a training-set figure"
                    )
                return lr.contiguous(memory_format=self.memory_format), hr, source
        if self.leader:
            self.log(f"class {self.job.index}: no validation crops found; no validation or early stopping")
        return None, None, None

    def _autocast(self):
        if self.settings.amp == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- checkpoints ---------------------------------------------------------------------------

    def _state(self, finished: bool, result: Optional[ClassResult] = None) -> dict:
        state = {
            "format": _CHECKPOINT_FORMAT,
            "class": self.job.index,
            "config": self.job.config,
            "scale": self.settings.scale,
            "ranks": self.ranks,
            "finished": finished,
            "step": self.step,
            "pixel_end": self.pixel_end,
            "elapsed": self.elapsed,
            "best_psnr": self.best_psnr,
            "best_step": -1 if self.best_step is None else self.best_step,
            "stale": self.stale,
            "early_stopped_at": -1 if self.early_stopped_at is None else self.early_stopped_at,
            "restored_best": self.restored_best,
            "generator": self.generator.state_dict(),
            "opt_pixel": self.opt_pixel.state_dict(),
            "opt_gan": self.opt_gan.state_dict(),
            "sampler": self.batches.state_dict(),
        }
        if self.best_state is not None:
            state["best_generator"] = self.best_state
        if self.discriminator is not None:
            state["discriminator"] = self.discriminator.state_dict()
            state["opt_d"] = self.opt_d.state_dict()
        if result is not None:
            state["result"] = result.to_dict()
        return state

    def _checkpoint(self, finished: bool = False, result: Optional[ClassResult] = None) -> Optional[Path]:
        if not self.leader:
            return None
        self.last_checkpoint = save_checkpoint(
            self.dir, self.step, self._state(finished, result), keep=self.settings.keep_checkpoints
        )
        self.checkpoint_step = self.step
        self._checkpointed_at = time.perf_counter()
        return self.last_checkpoint

    def _checkpoint_overdue(self) -> bool:
        """Whether ``checkpoint_minutes`` of this session have passed since the last checkpoint. Only the
        first rank of a DDP group writes checkpoints, and writing one needs no other rank, so it alone
        decides."""
        minutes = self.settings.checkpoint_minutes
        return self.leader and minutes > 0 and time.perf_counter() - self._checkpointed_at >= minutes * 60

    def _relative(self, path: Optional[Path]) -> Optional[str]:
        return None if path is None else Path(path).relative_to(self.settings.run_dir).as_posix()

    # -- divergence ----------------------------------------------------------------------------

    def _diverged(self, step: int, what: str) -> TrainingDiverged:
        s = self.settings
        if step <= self.pixel_end:
            phase, advice = "pixel", f"lower --lr (it is {self.job.lr:g} for this class)"
        else:
            phase = "gan"
            advice = (
                f"lower --gan-lr (it is {s.gan_lr:g}) or the GAN loss weights (--pixel-weight {s.pixel_weight:g}, "
                f"--perceptual-weight {s.perceptual_weight:g}, --adv-weight {s.adv_weight:g})"
            )
        kept = f"last checkpoint: step {self.checkpoint_step}" if self.checkpoint_step is not None else "no checkpoint"
        return TrainingDiverged(f"at step {step} ({phase} phase): {what}; {advice}. The class is not finished ({kept})")

    def _weights_finite(self) -> bool:
        tensors = [t for t in self.generator.state_dict().values() if t.is_floating_point()]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())

    def _check_losses(self) -> None:
        """Raise :class:`TrainingDiverged` naming the first step since the last log whose loss is not finite."""
        if not self._pending:
            return
        flags = torch.stack([torch.isfinite(torch.stack(list(losses.values()))).all() for _, losses in self._pending])
        if not bool(flags.all()):
            step, losses = self._pending[int((~flags).nonzero()[0])]
            bad = ", ".join(f"{name} became {float(v)}" for name, v in losses.items() if not math.isfinite(float(v)))
            raise self._diverged(step, bad)

    def _check_finite(self) -> None:
        """:meth:`_check_losses`, then the generator's weights: before they are validated or written."""
        self._check_losses()
        if not self._weights_finite():
            raise self._diverged(self.step, "the generator's weights became NaN or infinite")

    def _resume(self) -> Optional[ClassResult]:
        """Load the latest checkpoint; returns the stored result when the class had finished."""
        loaded = load_latest(self.dir, log=self.log if self.leader else None)
        if loaded is None:
            if self.leader:
                self.log(f"class {self.job.index}: no checkpoint in {self.dir}; training from the start")
            return None
        state, path = loaded
        expected = {"config": self.job.config, "scale": self.settings.scale}
        if not state.get("finished"):
            # Only a class that trains on needs its ranks back; a finished one is just read.
            expected["ranks"] = self.ranks
        for key, value in expected.items():
            if state.get(key) != value:
                raise CheckpointError(
                    f"checkpoint {path} was written with {key}={state.get(key)!r}, but this run has {key}={value!r}; "
                    f"resume with the original options or delete {self.dir}"
                )
        self.last_checkpoint, self.checkpoint_step = path, int(state["step"])
        if state.get("finished"):
            stored = dict(state.get("result", {}))
            stored.update(status="finished", session_steps=0, checkpoint=self._relative(path))
            return ClassResult(**stored)
        self.generator.load_state_dict(state["generator"])
        self.opt_pixel.load_state_dict(state["opt_pixel"])
        self.opt_gan.load_state_dict(state["opt_gan"])
        if self.discriminator is not None and "discriminator" in state:
            # A run resumed with GAN steps added to a pixel-only budget starts its discriminator fresh.
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["opt_d"])
        if self.leader:
            self.batches.load_state_dict(state["sampler"])
        else:
            # The checkpoint holds the first rank's crop stream; the others continue on fresh ones.
            self.batches.sampler.generator.manual_seed(
                _derived_seed(self.settings.seed * 7919 + 1_000_003 * int(state["step"]) + self.ddp.rank)
            )
        self.step = self.resumed_from = int(state["step"])
        self.pixel_end = int(state["pixel_end"])
        self.elapsed = float(state["elapsed"])
        self.best_psnr = float(state["best_psnr"])
        self.best_step = None if state["best_step"] < 0 else int(state["best_step"])
        self.best_state = state.get("best_generator")
        if self.best_state is not None:
            self.best_state = {k: v.to(self.device) for k, v in self.best_state.items()}
        self.stale = int(state["stale"])
        self.early_stopped_at = None if state["early_stopped_at"] < 0 else int(state["early_stopped_at"])
        self.restored_best = bool(state["restored_best"])
        if self.leader:
            self.log(f"class {self.job.index}: resuming from {path} (step {self.step})")
        return None

    # -- steps ---------------------------------------------------------------------------------

    def _pixel_step(self, lr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        for group in self.opt_pixel.param_groups:
            group["lr"] = scheduled_lr(self.settings.lr_schedule, self.job.lr, self.step, self.pixel_budget)
        with self._autocast():
            sr = self.g_train(lr)
        loss = self.pixel_loss(sr.float(), hr)
        self.opt_pixel.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_pixel.step()
        return {"loss_pixel": loss.detach()}

    def _gan_step(self, lr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        s = self.settings
        with self._autocast():
            sr = self.g_train(lr)
        # Discriminator: real and fake in two passes so BatchNorm never mixes them; under DDP the
        # first backward skips the all-reduce and the second reduces the sum.
        self.opt_d.zero_grad(set_to_none=True)
        no_sync = self.d_ddp.no_sync() if self.d_ddp is not None else contextlib.nullcontext()
        with no_sync:
            with self._autocast():
                real_logits = self.d_train(hr)
            loss_real = discriminator_loss(real_logits.float(), real=True)
            loss_real.backward()
        with self._autocast():
            fake_logits = self.d_train(sr.detach())
        loss_fake = discriminator_loss(fake_logits.float(), real=False)
        loss_fake.backward()
        self.opt_d.step()

        self.discriminator.requires_grad_(False)
        try:
            with self._autocast():
                fake_for_g = self.d_frozen(sr)
                perceptual = self.perceptual(sr, hr).float() if self.perceptual is not None else None
            loss_pix = self.pixel_loss(sr.float(), hr)
            loss_adv = generator_adversarial_loss(fake_for_g.float())
            total = s.pixel_weight * loss_pix + s.adv_weight * loss_adv
            if perceptual is not None:
                total = total + s.perceptual_weight * perceptual
            self.opt_gan.zero_grad(set_to_none=True)
            total.backward()
            self.opt_gan.step()
        finally:
            self.discriminator.requires_grad_(True)
        losses = {"loss_pixel": loss_pix.detach(), "loss_adv": loss_adv.detach(), "loss_d": (loss_real + loss_fake).detach()}
        if perceptual is not None:
            losses["loss_perceptual"] = perceptual.detach()
        return losses

    # -- validation and early stopping ---------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> Optional[float]:
        """Mean PSNR in dB (RGB, [0, 1]) of the generator on the class's validation crops; None without any.

        Raises:
            TrainingDiverged: a loss since the last check, a weight or the PSNR is not finite.
        """
        self._check_finite()
        if self.val_lr is None:
            return None
        was_training = self.generator.training
        self.generator.eval()
        total = torch.zeros((), device=self.device)
        n = self.val_lr.shape[0]
        chunk = max(self.job.batch, 1)
        for start in range(0, n, chunk):
            with self._autocast():
                sr = self.generator(self.val_lr[start : start + chunk])
            total += _psnr(sr.float().clamp(0.0, 1.0), self.val_hr[start : start + chunk]).sum()
        self.generator.train(was_training)
        psnr = float(total) / n
        if not math.isfinite(psnr):
            raise self._diverged(self.step, f"the validation PSNR became {psnr}")
        return psnr

    def _agree(self, improved: bool, stop: bool) -> tuple[bool, bool]:
        # Ranks of a DDP group must take the same decisions; the group's first rank makes them.
        if self.ddp is None:
            return improved, stop
        flags = torch.tensor([int(improved), int(stop)], device=self.device)
        dist.broadcast(flags, src=self.ddp.leader, group=self.ddp.group)
        return bool(flags[0]), bool(flags[1])

    def _stop_agreed(self) -> bool:
        """Whether to stop before the next step: a signal reached this process, or, under DDP, any rank
        of the group. Ranks of one class must stop at the same step, or one would wait forever in the
        other's all-reduce; they agree every ``log_every`` steps (one small all-reduce), so a signal
        takes effect within that many steps."""
        if self.ddp is None:
            return self._stop_signal is not None
        if self.step % self.settings.log_every != 0:
            return False
        flag = torch.tensor([int(self._stop_signal is not None)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.ddp.group)
        return bool(flag.item())

    def _track(self, psnr: Optional[float], allow_stop: bool) -> bool:
        """Record a validation; returns True when early stopping ends the pixel phase."""
        improved = psnr is not None and psnr > self.best_psnr + self.settings.min_delta
        stale = 0 if improved else self.stale + 1
        stop = allow_stop and self.settings.early_stop > 0 and stale >= self.settings.early_stop
        improved, stop = self._agree(improved, stop)
        self.stale = 0 if improved else self.stale + 1
        if improved:
            self.best_psnr, self.best_step = float(psnr), self.step
            self.best_state = {k: v.detach().clone() for k, v in self.generator.state_dict().items()}
        self._write(
            {"event": "val", "phase": "pixel", "val_psnr": psnr, "best_val_psnr": self.best_psnr, "stale": self.stale}
        )
        return stop

    def _end_pixel_phase(self) -> None:
        # A phase that diverged fails even though restoring its best generator would hide it.
        self._check_finite()
        # The pixel phase hands on the generator that validated best, not merely the last one.
        if self.val_lr is not None and self.best_step != self.step and self._last_val_step != self.step:
            self._track(self.validate(), allow_stop=False)
        if self.best_state is not None and self.best_step != self.step:
            self._mid_update = True
            self.generator.load_state_dict(self.best_state)
            self._mid_update = False
            self._write({"event": "restore_best", "phase": "pixel", "best_step": self.best_step})
            if self.best_step == 0 and self.leader:
                self.log(
                    f"class {self.job.index} ({self.job.config}): no pixel step validated better than its starting "
                    f"weights ({self.best_psnr:.2f} dB); it keeps them (lower --lr, or train longer)"
                )
        if self.settings.snapshots:
            # The final snapshot is what the phase hands on, whenever the phase ended.
            self._snapshot(self.settings.snapshots)
        self.restored_best = True

    # -- snapshots (--snapshots K): the quality-vs-time curve --------------------------------------

    def _snapshot(self, index: int) -> None:
        self._check_finite()
        if not self.leader:
            return
        write_snapshot(
            self.settings.run_dir,
            klass=self.job.index,
            config=self.job.config,
            generator=self.generator,
            index=index,
            count=self.settings.snapshots,
            step=self.step,
            elapsed_s=self._now(),
            threshold=self.settings.threshold,
            tile_size=self.settings.tile_size,
            overlap=self.settings.overlap,
        )
        self._write({"event": "snapshot", "phase": "pixel", "index": index})

    def _snapshots_due(self) -> dict[int, list[int]]:
        """Pixel steps after which an intermediate snapshot is taken -> the indices taken there."""
        due: dict[int, list[int]] = {}
        if self.settings.snapshots:
            steps = snapshot_steps(self.pixel_budget, self.settings.snapshots)
            for index, step in enumerate(steps[1:-1], start=1):
                due.setdefault(step, []).append(index)
        return due

    # -- the loop ------------------------------------------------------------------------------

    def _now(self) -> float:
        return self._elapsed_before + (time.perf_counter() - self._session_start)

    def _write(self, record: dict) -> None:
        if self.jsonl is not None:
            base = {"class": self.job.index, "config": self.job.config, "step": self.step, "elapsed_s": self._now()}
            self.jsonl.write({**base, **record})

    def _log_train(self, phase: str, seconds: float, bar) -> None:
        steps = len(self._pending)
        names = dict.fromkeys(name for _, losses in self._pending for name in losses)
        values = {
            name: float(torch.stack([losses[name] for _, losses in self._pending if name in losses]).mean())
            for name in names
        }
        crops_per_s = steps * self.job.batch * self.ranks / max(seconds, 1e-9)
        opt = self.opt_pixel if phase == "pixel" else self.opt_gan
        self._write({"event": "train", "phase": phase, **values, "lr": opt.param_groups[0]["lr"], "crops_per_s": crops_per_s})
        bar.set_postfix(phase=phase, loss=f"{values['loss_pixel']:.4f}", refresh=False)

    def _loop(self, bar) -> None:
        s = self.settings
        interval_start = time.perf_counter()
        fail_at = _fail_point()
        snapshots_due = self._snapshots_due()
        if self.settings.snapshots and self.step == 0:
            # Index 0, and every index of a class kept untrained (0 pixel steps: all are due at step 0).
            for index in (0, *snapshots_due.get(0, ())):
                self._snapshot(index)
        if self.step == 0 and self.settings.init is not None and self.val_lr is not None and self.pixel_budget > 0:
            # An --init bundle's weights are a candidate too: fine-tuning with too high a learning
            # rate must not hand back something worse than it started from. (From scratch the start
            # is no candidate: a random start can outscore the first steps and stop them early.)
            self._last_val_step = 0
            self._track(self.validate(), allow_stop=False)
        while self.step < self.pixel_end + self.gan_budget:
            if self._stop_agreed():
                raise KeyboardInterrupt(self._stop_signal or "a signal to another rank of this class")
            if self.step >= self.pixel_end and not self.restored_best:
                self._end_pixel_phase()
            phase = "pixel" if self.step < self.pixel_end else "gan"
            lr, hr = self.batches.next(self.job.batch)
            lr = lr.contiguous(memory_format=self.memory_format)
            hr = hr.contiguous(memory_format=self.memory_format)
            # Even the forward pass changes state (BatchNorm statistics), so the whole step is one update.
            self._mid_update = True
            losses = self._pixel_step(lr, hr) if phase == "pixel" else self._gan_step(lr, hr)
            self.step += 1
            self._mid_update = False
            bar.update(1)
            self._pending.append((self.step, losses))
            if phase == "pixel" and self.step in snapshots_due:
                for index in snapshots_due[self.step]:
                    self._snapshot(index)
            phase_over = self.step in (self.pixel_end, self.pixel_end + self.gan_budget)
            if self.step % s.log_every == 0 or phase_over:
                self._check_losses()
                self._log_train(phase, time.perf_counter() - interval_start, bar)
                self._pending, interval_start = [], time.perf_counter()
            if self.val_lr is not None and self.step % s.val_every == 0:
                self._last_val_step = self.step
                if phase == "pixel":
                    if self._track(self.validate(), allow_stop=True):
                        self.pixel_end = self.early_stopped_at = self.step
                        bar.total = self.pixel_end + self.gan_budget
                        bar.refresh()
                        self._write({"event": "early_stop", "phase": "pixel", "best_step": self.best_step})
                else:
                    self._write({"event": "val", "phase": "gan", "val_psnr": self.validate()})
            if self.step % s.checkpoint_every == 0 or self._checkpoint_overdue():
                self._check_finite()
                self.elapsed = self._now()
                self._checkpoint()
            if fail_at == (self.job.index, self.step):
                raise InjectedFailure(f"injected failure in class {self.job.index} after step {self.step} ({FAIL_ENV})")
        if not self.restored_best:
            self._end_pixel_phase()

    def result(self, status: str, error: Optional[str] = None) -> ClassResult:
        """Where the class stands now, as its summary.json entry; its wall time only once finished.

        ``checkpoint`` is the class's last checkpoint (relative to the run directory), so an
        interrupted or failed class still says how far it got and where ``--resume`` will continue.
        """
        finished = status == "finished"
        session_steps = self.step - self._start_step
        return ClassResult(
            index=self.job.index,
            config=self.job.config,
            device=str(self.device),
            status=status,
            steps=self.step,
            pixel_steps=min(self.step, self.pixel_end),
            gan_steps=max(0, self.step - self.pixel_end),
            planned_steps=self.pixel_budget + self.gan_budget,
            early_stopped_at=self.early_stopped_at,
            wall_time_s=self.elapsed if finished else None,
            session_steps=session_steps,
            resumed_from=self.resumed_from,
            best_val_psnr=self.best_psnr if math.isfinite(self.best_psnr) else None,
            val_source=self.val_source,
            generator_parameters=count_parameters(self.generator),
            ranks=self.ranks,
            worker=self.position,
            pid=os.getpid(),
            checkpoint=self._relative(self.last_checkpoint) if self.leader else None,
            error=error,
        )

    def _finish(self) -> ClassResult:
        final_psnr = self.validate()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.elapsed = self._now()
        session_seconds = time.perf_counter() - self._session_start
        result = self.result("finished")
        result.val_psnr = final_psnr
        if result.session_steps:
            result.crops_per_s = result.session_steps * self.job.batch * self.ranks / session_seconds
        if self.leader:
            # The finished checkpoint is written with the result that names it.
            result.checkpoint = self._relative(self.dir / f"step{self.step:08d}.pt")
        self._checkpoint(finished=True, result=result)
        self._write({"event": "finish", "phase": "done", "val_psnr": final_psnr, "wall_time_s": self.elapsed})
        return result

    @contextlib.contextmanager
    def _signals_stop_at_step_end(self):
        # Ctrl-C and SIGTERM end the run at the next step boundary (then checkpoint), so a checkpoint
        # never holds a half-applied optimizer step; a second signal interrupts at once, and if that
        # is inside a step, run() writes no checkpoint (see _mid_update). The launcher's death
        # (PARENT_DIED_SIGNAL, which the kernel may deliver more than once) and SIGHUP (the terminal
        # closed) ask for the same stop but never escalate; SIGHUP only where hangups_stop() (not nohup).
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        gentle = (PARENT_DIED_SIGNAL, signal.SIGHUP) if hangups_stop() else (PARENT_DIED_SIGNAL,)

        def request(signum, frame):
            if self._stop_signal is not None:
                if signum in gentle:
                    return
                raise KeyboardInterrupt(signal.Signals(signum).name)
            self._stop_signal = signal.Signals(signum).name

        with stop_signals_to(request, also=gentle):
            yield

    @property
    def stop_requested(self) -> Optional[str]:
        """The name of the signal that asked this class to stop (``"SIGINT"``, ``"SIGTERM"``,
        ``"SIGHUP"``, or ``"SIGUSR1"``: the launcher died), or None. It can arrive while the class
        finishes (last step, final validation, final checkpoint): the class then ends finished, and
        the caller should start no other."""
        return self._stop_signal

    def run(self) -> ClassResult:
        """Train (or resume) the class to the end of its budget; returns its result.

        Raises:
            KeyboardInterrupt: after Ctrl-C or SIGTERM, once a checkpoint of the last step is written.
            CheckpointError: ``--resume`` found only unusable checkpoints.
            RareClassError: the class is too rare in the data.
            TrainingDiverged: a loss, weight or validation PSNR became NaN or infinite; nothing after
                the last finite checkpoint is saved, and the class is not marked finished.
        """
        self._stop_signal: Optional[str] = None
        self._last_val_step: Optional[int] = None
        if self.settings.resume:
            if self.leader:
                for debris in remove_debris(self.dir):
                    self.log(f"class {self.job.index}: removed {debris.name}, left by a run that was killed while saving")
            done = self._resume()
            if done is not None:
                if self.leader:
                    self.log(f"class {self.job.index} ({self.job.config}) finished in an earlier run; not retrained")
                return done
        self._elapsed_before, self._session_start = self.elapsed, time.perf_counter()
        self._checkpointed_at = self._session_start  # a session's first time-based checkpoint counts from its start
        if self.resumed_from is not None:
            # Records a killed session wrote past this checkpoint are in the log too, and the steps after
            # it are trained (and logged) again: the marker tells a reader to drop those earlier ones.
            self._write({"event": "resume", "phase": "pixel" if self.step < self.pixel_end else "gan",
                         "checkpoint": self._relative(self.last_checkpoint)})
        self._start_step = self.step
        bar = tqdm(
            total=self.pixel_end + self.gan_budget,
            initial=self.step,
            desc=f"class {self.job.index} {self.job.config}",
            unit="step",
            position=self.position,
            disable=not (self.settings.progress and self.leader),
            dynamic_ncols=True,
        )
        try:
            with self._signals_stop_at_step_end():
                self._loop(bar)
                return self._finish()
        except TrainingDiverged as err:
            phase = "pixel" if self.step <= self.pixel_end else "gan"
            self._write({"event": "diverged", "phase": phase, "error": str(err)})
            raise
        except KeyboardInterrupt:
            self.elapsed = self._now()
            if self._mid_update:
                # A second signal stopped a step half-way (say, the discriminator updated and the
                # generator not): checkpointing that would resume from a state no step produced.
                kept = f"step {self.checkpoint_step}" if self.checkpoint_step is not None else "none"
                self.log(
                    f"class {self.job.index}: stopped inside step {self.step + 1}, so that step is not "
                    f"checkpointed; --resume continues from the last checkpoint ({kept})"
                )
            else:
                try:
                    self._check_finite()
                    self._checkpoint()
                except TrainingDiverged as err:
                    self.log(f"class {self.job.index}: not checkpointed at step {self.step}: it diverged {err}")
            self._write({"event": "interrupted", "phase": "pixel" if self.step < self.pixel_end else "gan"})
            raise
        finally:
            bar.close()

"""The experiment profiles: every budget and setting of a run of the paper's experiments, in one place.

Each profile trains the same set of models and differs only in size and devices:

- **MMSR**: one bundle of ``mmsr_configs`` (K = 3 classes: 4-2, 8-6, 16-8, the paper's pairing),
  K x ``pixel_steps`` pixel steps split among the classes by ``mmsr_step_shares`` (weighted to the
  complex class) + ``gan_steps`` per class, TVAT boundaries calibrated by `mmsr train`;
- **baseline**: `mmsr train --baseline`: one ``baseline_config`` (16-8) on all crops with the budget
  the K-class run spends (K x the per-class steps, same batch and crop), as `mmsr train` defines the
  fair comparison;
- **Table 1 depths**: every config of ``depth_configs`` trained as a one-class model on all crops
  (`--classes 1 --configs X-Y`) with the baseline's budget. The baseline *is* that run for 16-8
  (one 16-8, all crops, the same steps, seed and data), so it is not trained twice.

Every model is the residual form of the paper's SRResNet (configs ending in ``r``: the generator adds
the bicubic upsample of its input to its output, and starts as bicubic). The plain SRResNet starts far
below bicubic, and at these budgets it ended below bicubic too (the cpu profile's earlier report,
in git history: MMSR 2.68 dB and the baseline 0.72 dB below bicubic on Set14), so no comparison
between depths or between MMSR and the baseline said anything about super-resolution. With the
skip every model starts at bicubic and the comparisons are between working upscalers; the depths,
widths, discriminators and losses are the paper's.

Budgets and their estimates (see README.md for how they were sized):

- ``smoke``: a few steps of everything on 2 images per set, to check that the harness works
  end to end (~1 minute on the 2-core CPU machines). Its numbers mean nothing.
- ``cpu``: ~25 minutes on the 2-core CPU machines, 1 thread per process (see ``threads``). Step
  costs were measured here as CPU time of `mmsr train` with 1 thread, batch 8, crop 64: pixel step
  0.16 / 0.17 / 0.20 / 0.23 s, GAN step 0.28 / 0.31 / 0.60 / 0.91 s for 2-2 / 4-2 / 8-6 / 16-8. MMSR
  then the baseline alone: 1.27 s per per-class pixel step and 4.5 s per GAN step; the depth runs,
  two at a time: 1.34 s per pixel step with the GAN steps at a fifth. 450 + 90 steps are ~26
  minutes of training, plus ~3 minutes of start-up and evaluation and ~6 minutes measuring the 7
  snapshots of MMSR and of the baseline on Set14. Far too short for any model to converge: 3,600
  crops per MMSR class, where SRGAN trains for ~10^6 steps of 16 crops. The run of 2026-11-27,
  with MMSR and the baseline one after another, took 29.2 minutes (MMSR 429 s, baseline 562 s,
  depths 619 s); the one of 2026-11-28 took 56.8 on a slower day (884 / 1033 / 1162 s). With the
  two side by side (``timed_side_by_side``) the plan drops MMSR's window: ~25 minutes. Measured
  side by side later that day, as slow: 43.3 minutes (MMSR + baseline 1039 s, depths 1202 s).
- ``gpu``: ~7 minutes in all on one H100 or H200 (fp32 with TF32 convs, channels_last, batch 64,
  crop 96; MMSR's classes one after another, the depth runs three at a time), so that it fits one
  call of the device tool (10 minutes), the CUDA build included. Sized from pixel steps measured on
  an H200 on 2026-11-27 (`gpu_session.sh` curve stage, bf16, with validation and snapshots): 4-2r
  14.5 ms, 8-6r 19.1 ms, 16-8r 24-28 ms alone; three concurrent processes ~30-55 ms per step each:
  1000 pixel steps ~3.7 minutes, 250 GAN steps ~1.2 minutes, ~1 minute of start-ups and ~1 minute
  measuring snapshots, bins and `mmsr eval`. The first plan (1800 + 450 steps, from the H100
  session's probe) would have taken ~11 minutes, past the device tool's limit. In `gpu_probe.py
  --levers` on the same H200, fp32 (TF32 convs) + channels_last ran a 16-8r step in 17.6 ms against
  bf16's 22.4 ms, so the profile trains in fp32.
  First run, 2026-11-28 on an H200 (`report_gpu/`): 406 s in all (MMSR 97 s, baseline 81 s, depth
  runs 170 s), with MMSR's classes concurrent. In fp32 the three class processes gained nothing
  from sharing the GPU: the 16-8r class stepped at 21-52 ms while the others ran and at 16.4 ms
  once alone, the baseline's 16-8r at 16.6 ms, and the classes' work alone adds up to about the
  50 s they took together. Worse for Table 3, the 16-8r's pixel-phase curve then paid for the
  other classes' GAN phases, which the baseline's curve never carries. So the classes now train one
  after another (``concurrent=False``): each class's time is its own, the one-device curve adds the
  classes' pixel phases, and the separate-devices column can be computed. (With bf16 on the same
  GPU, sharing did help: 100.9 s concurrent against 121.6 s one after another, in
  `benchmarks/README.md`.) The 2026-11-28 run drew its charts on the device, whose image had
  matplotlib; where one has none, redraw with --report-only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

__all__ = ["PROFILES", "Profile"]


@dataclass(frozen=True)
class Profile:
    """One size of the experiments. Per-class values apply to each MMSR class.

    Attributes:
        name: the profile's name on the command line.
        purpose: one line for the report.
        mmsr_configs: MMSR's class models, smooth -> complex.
        baseline_config: the baseline's model: SRGAN's own depth, 16-8 (residual: 16-8r).
        depth_configs: Table 1's one-class models; must include ``baseline_config``.
        crop, batch: HR crop side and crops per step (`mmsr train --crop / --batch`).
        pixel_steps, gan_steps: per MMSR class; the baseline and the Table 1 models get
            ``len(mmsr_configs)`` times as many.
        mmsr_step_shares: how MMSR splits its ``len(mmsr_configs) * pixel_steps`` pixel steps among
            its classes, smooth -> complex (None: evenly). The complex class decides most of the
            score, and weighting its steps from the start took MMSR's speed-up over the baseline at
            equal quality from 0.61x to 1.4x in a from-scratch CPU run with seed 0, though over five
            seeds the same recipe gave 0.80x (benchmarks/README.md); the baseline's budget, the sum,
            does not change.
        lr, lr_schedule: pixel-phase learning rate and schedule (`--lr`, `--lr-schedule`). Constant by
            default: Table 3 reads each run's curve at the quality the other reaches, and with cosine
            each curve's shape depends on its own budget (the run with fewer steps anneals first and
            flattens where the longer one still climbs), which favoured the baseline: at seed 1 of
            the real-size CPU comparison MMSR went from 0.56x (cosine) to 0.95x (constant) on one
            device (benchmarks/paper/equal_steps_cpu/).
        val_every, val_crops: validation interval and held-out crops per class (early stopping is
            off in every profile, so every run spends exactly its budget).
        calib_samples: crops scored to calibrate MMSR's TVAT boundaries.
        devices, amp, channels_last, concurrent: `mmsr train`'s device options.
        threads: torch threads of MMSR's and the baseline's training and of the evaluation (None:
            torch's default, all cores). On the shared 2-core machines one thread is the safe
            choice: two threads that share their cores with other work wait for each other at every
            op (16-8 steps took 30x longer with 2 threads than with 1 under a load of 4; on a quiet
            machine 2 threads were 1.8x faster). `--threads 2` overrides it on a machine known quiet.
        depth_threads: torch threads of each Table 1 depth run.
        parallel_depth_runs: how many Table 1 depth runs train at once. They are not timed, so two
            1-thread runs use both cores.
        timed_side_by_side: MMSR and the baseline of each seed, which Table 3 times, train at the same
            time (one process each) instead of one after another. Side by side both run beside the
            same neighbour, as the real-size CPU comparisons do (benchmarks/paper/equal_steps_cpu/):
            one after another, a change in the machine's load between the two windows goes straight
            into the ratio (the cpu profile's 16-8r steps cost 0.35 s on one day and 0.46 s on the
            next). It also halves that stage's wall time. On one GPU it stays off: the two runs would
            share the device and MMSR's classes already do.
        eval_device: where the Upscaler runs for evaluation.
        eval_limit: evaluate only the first N images of each validation set (None: all).
        snapshots: MMSR and the baseline keep their generators at this many points of the pixel
            phase (`mmsr train --snapshots`), measured on :attr:`curve_set` for the training time
            each needs at equal quality.
        curve_set: the validation set the snapshots are measured on (the issue's goals are on Set14).
        seeds: MMSR and the baseline are trained once per seed (`mmsr train --seed`) and compared
            seed by seed and over the seeds (`run_experiments.py --seeds` overrides). At these budgets
            the seed moves a run's final Set14 score by ~0.15 dB, as much as the gap measured
            (benchmarks/README.md), so one seed is one draw. Table 1 and section 3 use the first
            seed's runs. Every extra seed adds MMSR's and the baseline's training (side by side in
            the cpu profile) and snapshots: ~12 minutes of the cpu profile's 25.
        planned_minutes: the estimated wall time of the whole profile with one seed.
        checks_only: the profile only checks that the pipeline runs (a few steps on a few images),
            so its report draws no conclusion about the paper's claims from its numbers.
    """

    name: str
    purpose: str
    crop: int
    batch: int
    pixel_steps: int
    gan_steps: int
    val_every: int
    val_crops: int
    calib_samples: int
    planned_minutes: float
    mmsr_configs: Tuple[str, ...] = ("4-2r", "8-6r", "16-8r")
    baseline_config: str = "16-8r"
    depth_configs: Tuple[str, ...] = ("2-2r", "4-2r", "8-6r", "16-8r")
    lr: float = 2e-4
    lr_schedule: str = "constant"
    devices: str = "cpu"
    amp: str = "off"
    channels_last: bool = False
    concurrent: bool = False
    threads: Optional[int] = None
    depth_threads: Optional[int] = None
    parallel_depth_runs: int = 1
    timed_side_by_side: bool = False
    eval_device: str = "cpu"
    eval_limit: Optional[int] = None
    snapshots: int = 6
    curve_set: str = "set14"
    mmsr_step_shares: Optional[Tuple[float, ...]] = None
    seeds: Tuple[int, ...] = (0,)
    checks_only: bool = False

    def __post_init__(self) -> None:
        shares = self.mmsr_step_shares
        if shares is not None and (len(shares) != self.classes or min(shares) <= 0 or abs(sum(shares) - 1) > 1e-6):
            raise ValueError(f"profile {self.name}: mmsr_step_shares {shares} must be {self.classes} positive "
                             "fractions (one per MMSR class) summing to 1")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"profile {self.name}: seeds {self.seeds} must be distinct integers >= 0, at least one")
        if self.baseline_config not in self.depth_configs:
            raise ValueError(f"profile {self.name}: depth_configs {self.depth_configs} must include the baseline "
                             f"{self.baseline_config} (the baseline run is that depth's Table 1 run)")

    @property
    def classes(self) -> int:
        """K, MMSR's number of classes."""
        return len(self.mmsr_configs)

    @property
    def mmsr_pixel_steps(self) -> Tuple[int, ...]:
        """Each MMSR class's pixel steps, smooth -> complex; they sum to :attr:`single_pixel_steps`."""
        if self.mmsr_step_shares is None:
            return (self.pixel_steps,) * self.classes
        steps = [round(share * self.single_pixel_steps) for share in self.mmsr_step_shares[:-1]]
        return (*steps, self.single_pixel_steps - sum(steps))

    @property
    def single_pixel_steps(self) -> int:
        """Pixel steps of every one-class model (baseline, Table 1): what MMSR spends over all classes."""
        return self.classes * self.pixel_steps

    @property
    def single_gan_steps(self) -> int:
        """GAN steps of every one-class model."""
        return self.classes * self.gan_steps

    @property
    def uses_cuda(self) -> bool:
        return self.devices.startswith("cuda") or self.eval_device.startswith("cuda")

    def to_dict(self) -> dict:
        """The settings as JSON values, with the derived one-class budgets."""
        return {**asdict(self), "single_pixel_steps": self.single_pixel_steps, "single_gan_steps": self.single_gan_steps,
                "mmsr_pixel_steps": list(self.mmsr_pixel_steps)}


# MMSR's pixel steps for smooth / medium / complex: the split of the CPU rounds and of the from-scratch
# run in benchmarks/README.md (150 / 450 / 1400), close to Set14's tile shares (6% / 31% / 63%).
_COMPLEX_WEIGHTED = (0.075, 0.225, 0.7)

PROFILES: Dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        purpose="a few steps of every run on 2 images per set: checks the harness, measures nothing",
        crop=32,
        batch=4,
        pixel_steps=4,
        gan_steps=2,
        val_every=1000,
        val_crops=4,
        calib_samples=256,
        threads=1,
        depth_threads=1,
        parallel_depth_runs=2,
        timed_side_by_side=True,
        eval_limit=2,
        snapshots=1,  # its smooth class trains 1 pixel step; mmsr train refuses more snapshots than steps
        planned_minutes=1.5,
        mmsr_step_shares=_COMPLEX_WEIGHTED,
        checks_only=True,
    ),
    "cpu": Profile(
        name="cpu",
        purpose="the experiments at toy scale on a 2-core CPU (~25 minutes)",
        crop=64,
        batch=8,
        pixel_steps=450,
        gan_steps=90,
        val_every=100,
        val_crops=32,
        calib_samples=4096,
        threads=1,
        depth_threads=1,
        parallel_depth_runs=2,
        timed_side_by_side=True,
        planned_minutes=25,
        mmsr_step_shares=_COMPLEX_WEIGHTED,
    ),
    "gpu": Profile(
        name="gpu",
        purpose="the experiments at small scale on one H100 or H200 (~7 minutes)",
        crop=96,
        batch=64,
        pixel_steps=1000,
        gan_steps=250,
        val_every=500,
        val_crops=32,
        calib_samples=4096,
        devices="cuda:0",
        amp="off",  # fp32 with TF32 convs: the 16-8r's fastest step on an H200 and an H100 (see above)
        channels_last=True,
        concurrent=False,  # fp32 gains nothing from sharing the GPU, and sharing skews Table 3 (see above)
        parallel_depth_runs=3,
        eval_device="cuda:0",
        snapshots=8,
        planned_minutes=7,
        mmsr_step_shares=_COMPLEX_WEIGHTED,
    ),
}

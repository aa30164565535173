"""Which class trains where: cost estimates, classes -> worker slots, and torchrun ranks -> classes.

A class's cost is the floating-point work of its step budget, counted once per model shape by
``torch.utils.flop_counter`` on the meta device (no memory, no compute). The absolute number
says little about wall time on a launch-bound GPU, but the order it gives is what scheduling needs.

Classes go to slots longest-first, each to the slot with the least work so far (LPT), so the last
slot finishes as early as this greedy rule allows.

Example:
    >>> assign_slots([5.0, 3.0, 3.0, 1.0], 2)
    [[0, 3], [1, 2]]
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models import Discriminator, Generator, ModelConfig
from .config import ClassJob

__all__ = ["assign_ranks", "assign_slots", "job_cost", "step_flops"]


@functools.lru_cache(maxsize=None)
def _forward_backward_flops(kind: str, config: str, scale: int, crop: int, disc_width: int) -> int:
    model_config = ModelConfig.parse(config)
    with torch.device("meta"):
        if kind == "generator":
            model = Generator.from_config(model_config, scale)
            x = torch.empty(1, 3, crop // scale, crop // scale)
        else:
            model = Discriminator(layers=model_config.disc_layers, base_channels=disc_width)
            x = torch.empty(1, 3, crop, crop)
        # Eval mode: BatchNorm's batch statistics would refuse a batch of one 1x1 map (a small crop
        # through a deep discriminator), and the count is the same.
        model.eval()
        with FlopCounterMode(display=False) as counter:
            model(x).sum().backward()
    return counter.get_total_flops()


def step_flops(config: str, *, scale: int, crop: int, disc_width: int = 64) -> tuple[int, int]:
    """Floating-point operations per crop of one (pixel-phase, GAN-phase) step of ``config``.

    A pixel step is one generator forward + backward. A GAN step adds three discriminator passes
    with backward (real, fake for D; fake for G); the VGG19 loss, when used, costs every class
    alike and is left out.

    Example:
        >>> pixel, gan = step_flops("4-2", scale=4, crop=96)
        >>> gan > pixel
        True
    """
    g = _forward_backward_flops("generator", config, scale, crop, disc_width)
    d = _forward_backward_flops("discriminator", config, scale, crop, disc_width)
    return g, g + 3 * d


def job_cost(job: ClassJob, *, scale: int, crop: int, disc_width: int = 64) -> float:
    """Estimated work of a class's whole budget, in floating-point operations.

    Example:
        >>> from mmsr.train.config import ClassJob
        >>> small = job_cost(ClassJob(0, "4-2", 100, 0, 16, 1e-4), scale=4, crop=96)
        >>> big = job_cost(ClassJob(1, "16-8", 100, 0, 16, 1e-4), scale=4, crop=96)
        >>> big > small
        True
    """
    pixel, gan = step_flops(job.config, scale=scale, crop=crop, disc_width=disc_width)
    return float(job.batch * (job.pixel_steps * pixel + job.gan_steps * gan))


def assign_slots(costs: Sequence[float], slots: int) -> list[list[int]]:
    """Classes (by index) for each of ``slots`` workers: longest first, each to the least-loaded slot.

    Ties go to the lower slot. Each slot's list is in the order it runs (longest first).

    Example:
        >>> assign_slots([1.0, 2.0, 3.0], 1)
        [[2, 1, 0]]
    """
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    load = [0.0] * slots
    plan: list[list[int]] = [[] for _ in range(slots)]
    for k in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        slot = min(range(slots), key=lambda s: (load[s], s))
        plan[slot].append(k)
        load[slot] += costs[k]
    return plan


def assign_ranks(costs: Sequence[float], world: int) -> list[list[int]]:
    """The ranks that train each class under torchrun: ``ranks_of_class[k]``.

    With at least as many ranks as classes, rank r < K trains class r and each further rank joins
    the class with the most work per rank (first the costliest), which then trains with DDP.
    With fewer ranks, classes are spread over them longest-first (:func:`assign_slots`) and each
    class has one rank.

    Example:
        >>> assign_ranks([1.0, 4.0], 3)
        [[0], [1, 2]]
        >>> assign_ranks([1.0, 2.0, 3.0], 2)
        [[1], [1], [0]]
    """
    classes = len(costs)
    if world < 1:
        raise ValueError(f"world size must be >= 1, got {world}")
    if world < classes:
        ranks_of_class: list[list[int]] = [[] for _ in range(classes)]
        for rank, ks in enumerate(assign_slots(costs, world)):
            for k in ks:
                ranks_of_class[k].append(rank)
        return ranks_of_class
    ranks_of_class = [[k] for k in range(classes)]
    for rank in range(classes, world):
        k = max(range(classes), key=lambda i: (costs[i] / len(ranks_of_class[i]), -i))
        ranks_of_class[k].append(rank)
    return ranks_of_class

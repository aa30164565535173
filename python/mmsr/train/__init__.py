"""Multi-model training: each TVAT class trains its own SRGAN, on its own device when there are several.

Modules, one job each:

- :mod:`~mmsr.train.config`: the options (shared by ``mmsr train`` and ``python -m mmsr.train``) and
  each class's resolved job;
- :mod:`~mmsr.train.calibrate`: class boundaries from TVAT quantiles, and their histogram;
- :mod:`~mmsr.train.losses`: pixel, adversarial and VGG19 perceptual losses;
- :mod:`~mmsr.train.trainer`: one class's two-phase training on one device or DDP group;
- :mod:`~mmsr.train.checkpoint`: atomic, checksummed checkpoints;
- :mod:`~mmsr.train.schedule`: cost estimates and the class -> device / rank assignment;
- :mod:`~mmsr.train.launch`: worker processes, torchrun ranks, summary and bundle;
- :mod:`~mmsr.train.report`: the JSONL logs and summary.json.

Example:
    >>> import argparse
    >>> from mmsr.train import add_arguments, settings_from_args, run
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> settings = settings_from_args(parser.parse_args(["photos/", "--out", "m.safetensors"]))  # doctest: +SKIP
    >>> run(settings)  # doctest: +SKIP
    0
"""
from .calibrate import Calibration, calibrate, class_fractions, format_histogram, quantile_boundaries
from .config import ClassJob, TrainSettings, add_arguments, settings_from_args
from .launch import run
from .schedule import assign_ranks, assign_slots, job_cost
from .trainer import ClassResult, ClassTrainer

__all__ = [
    "Calibration",
    "ClassJob",
    "ClassResult",
    "ClassTrainer",
    "TrainSettings",
    "add_arguments",
    "assign_ranks",
    "assign_slots",
    "calibrate",
    "class_fractions",
    "format_histogram",
    "job_cost",
    "quantile_boundaries",
    "run",
    "settings_from_args",
]

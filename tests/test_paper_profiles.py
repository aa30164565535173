"""The paper harness's profiles (benchmarks/paper/profiles.py): how MMSR's pixel steps are split among
its classes, and that the training commands carry that split.

The harness lives outside the package and imports its siblings by bare name (``from profiles import
...``), so the tests put its folder on sys.path only while they import it, and forget those modules after.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import sys
from pathlib import Path

import pytest

PAPER = Path(__file__).resolve().parents[1] / "benchmarks" / "paper"
_MODULES = ("profiles", "commands", "training", "report", "bins", "environment", "texture_table", "run_experiments",
            "compare_bins", "class_curves", "class_alone", "per_class")


@contextlib.contextmanager
def paper_imported(monkeypatch, *names: str):
    """The harness's modules ``names``, imported from benchmarks/paper; all its modules are forgotten
    after (and any of the same names imported before are put back)."""
    monkeypatch.syspath_prepend(str(PAPER))
    saved = {name: sys.modules.pop(name) for name in _MODULES if name in sys.modules}
    try:
        yield tuple(importlib.import_module(name) for name in names)
    finally:
        for name in _MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@pytest.fixture
def paper(monkeypatch):
    """The harness's ``profiles`` and ``training`` modules."""
    with paper_imported(monkeypatch, "profiles", "training") as modules:
        yield modules


def _profile(profiles, **changes):
    settings = dict(name="t", purpose="test", crop=32, batch=4, pixel_steps=100, gan_steps=0, val_every=10,
                    val_crops=4, calib_samples=64, planned_minutes=1.0)
    return profiles.Profile(**{**settings, **changes})


def test_every_profile_splits_exactly_the_baselines_budget(paper):
    profiles, _ = paper
    for profile in profiles.PROFILES.values():
        steps = profile.mmsr_pixel_steps
        assert len(steps) == profile.classes and min(steps) > 0
        assert sum(steps) == profile.single_pixel_steps == profile.classes * profile.pixel_steps
        assert list(steps) == sorted(steps), "the complex class, last, gets the most steps"
    assert profiles.PROFILES["cpu"].mmsr_pixel_steps == (101, 304, 945)


def test_even_split_without_shares(paper):
    profiles, _ = paper
    assert _profile(profiles).mmsr_pixel_steps == (100, 100, 100)
    assert _profile(profiles, pixel_steps=7, mmsr_step_shares=(0.1, 0.2, 0.7)).mmsr_pixel_steps == (2, 4, 15)


@pytest.mark.parametrize("shares", [(0.5, 0.5), (0.2, 0.2, 0.2), (0.0, 0.3, 0.7), (-0.1, 0.4, 0.7)])
def test_bad_shares_are_refused_by_name(paper, shares):
    profiles, _ = paper
    with pytest.raises(ValueError, match="mmsr_step_shares"):
        _profile(profiles, mmsr_step_shares=shares)


def test_training_commands_carry_the_split(paper):
    profiles, training = paper
    runs = {run.name: run for run in training.plan_runs(profiles.PROFILES["cpu"])}
    for name in ("mmsr", "baseline"):  # --baseline trains one model on the sum of the per-class budgets
        arguments = runs[name].arguments
        assert arguments[arguments.index("--pixel-steps") + 1] == "101,304,945"
    depth = runs["depth_4-2r"].arguments
    assert depth[depth.index("--pixel-steps") + 1] == "1350"


def test_every_run_trains_with_the_profiles_schedule(paper):
    """Constant by default (Table 3's equal-quality reading is fair only when no curve depends on its own
    budget); run_experiments.py --lr-schedule cosine swaps it into every run."""
    profiles, training = paper
    for profile in (profiles.PROFILES["cpu"], dataclasses.replace(profiles.PROFILES["cpu"], lr_schedule="cosine")):
        arguments = training._common_arguments(profile, 0)  # what every run's command ends with
        assert arguments[arguments.index("--lr-schedule") + 1] == profile.lr_schedule
        assert all("--lr-schedule" not in run.arguments for run in training.plan_runs(profile))
    assert {profile.lr_schedule for profile in profiles.PROFILES.values()} == {"constant"}


def test_each_seed_trains_mmsr_and_the_baseline_once(paper):
    profiles, training = paper
    runs = training.plan_runs(profiles.PROFILES["cpu"], seeds=(4, 1))
    seeded = [(run.name, run.role, run.seed) for run in runs if run.role != "depth"]
    assert seeded == [("mmsr", "mmsr", 4), ("baseline", "baseline", 4),
                      ("mmsr_seed1", "mmsr", 1), ("baseline_seed1", "baseline", 1)]  # fmt: skip
    # The depth runs (Table 1) share the first seed's data split with the baseline, which is their 16-8.
    assert {run.seed for run in runs if run.role == "depth"} == {4}
    arguments = training._common_arguments(profiles.PROFILES["cpu"], 1)
    assert arguments[arguments.index("--seed") + 1] == "1"
    assert [run.name for run in training.plan_runs(profiles.PROFILES["cpu"])][:2] == ["mmsr", "baseline"]


@pytest.mark.parametrize("seeds", [(), (1, 1), (-1,)])
def test_bad_seeds_are_refused_by_name(paper, seeds):
    profiles, _ = paper
    with pytest.raises(ValueError, match="seeds"):
        _profile(profiles, seeds=seeds)


def test_the_report_gives_each_seed_and_their_means(paper):
    report = importlib.import_module("report")

    def equal(target, one, separate):
        return {"target_psnr": target, "one_device_speedup": one, "separate_devices_speedup": separate}

    eq = {"seeds": {
        "seeds": [0, 1],
        "per_seed": [{"seed": 0, **equal(26.9, 2.0, 4.0), "final_mmsr": 26.9, "final_baseline": 27.0},
                     {"seed": 1, **equal(26.7, 0.5, 1.0), "final_mmsr": 26.7, "final_baseline": 27.2}],
        "mean_equal": equal(26.8, 0.8, 1.2),
    }}  # fmt: skip
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")[1:]]
            for line in report._seeds_section(eq) if line.startswith("| ")}  # fmt: skip
    assert rows["seed 1"] == ["26.70 dB", "0.50×", "1.00×", "26.70 / 27.20"]
    # Geometric means: sqrt(2.0 * 0.5) = 1.00, sqrt(4.0 * 1.0) = 2.00; finals averaged.
    assert rows["geometric mean of the seeds"] == ["", "1.00×", "2.00×", "26.80 / 27.10 (mean)"]
    assert rows["mean curves"] == ["26.80 dB", "0.80×", "1.20×", ""]
    assert "from 0.50× to 2.00×" in "\n".join(report._seeds_section(eq))

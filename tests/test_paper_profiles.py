"""The paper harness's profiles (benchmarks/paper/profiles.py): how MMSR's pixel steps are split among
its classes, and that the training commands carry that split.

The harness lives outside the package and imports its siblings by bare name (``from profiles import
...``), so the tests put its folder on sys.path only while they import it, and forget those modules after.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

_PAPER = Path(__file__).resolve().parents[1] / "benchmarks" / "paper"
_MODULES = ("profiles", "commands", "training")


@pytest.fixture
def paper(monkeypatch):
    """The harness's ``profiles`` and ``training`` modules, imported from benchmarks/paper."""
    monkeypatch.syspath_prepend(str(_PAPER))
    saved = {name: sys.modules.pop(name) for name in _MODULES if name in sys.modules}
    try:
        yield importlib.import_module("profiles"), importlib.import_module("training")
    finally:
        for name in _MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


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

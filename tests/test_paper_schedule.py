"""The paper harness's training schedule (benchmarks/paper/run_experiments.py): MMSR and the baseline,
which Table 3 times, train side by side seed by seed when the profile says so, one after another
otherwise, and the report says which.

`run_training` is replaced by a stand-in that only records when each run was going, so these tests
train nothing: what they check is the order the harness starts its `mmsr train` processes in.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_paper_profiles import paper_imported
from test_paper_report import _redraw, committed  # noqa: F401  (committed is a fixture)


@pytest.fixture
def harness(monkeypatch):
    """The harness's ``profiles``, ``run_experiments`` and ``report`` modules."""
    with paper_imported(monkeypatch, "profiles", "run_experiments", "report") as modules:
        yield modules


class _Recorder:
    """Stands in for run_training: holds each run for ``hold_s`` and records (name, start, end)."""

    def __init__(self, hold_s: float, barrier: threading.Barrier = None):
        self.hold_s, self.barrier = hold_s, barrier
        self.spans = {}
        self._lock = threading.Lock()

    def __call__(self, run, profile, data, out, *, threads, reuse):
        start = time.perf_counter()
        if self.barrier is not None:
            self.barrier.wait()  # raises BrokenBarrierError unless the pair's other run is going too
        time.sleep(self.hold_s)
        end = time.perf_counter()
        with self._lock:
            self.spans[run.name] = (start, end)
        return SimpleNamespace(name=run.name, seconds=end - start)  # what the harness reads of a TrainedRun


def _overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _timed_runs(run_experiments, profile):
    return [run for run in run_experiments.plan_runs(profile) if run.role != "depth"]


def test_side_by_side_trains_each_seeds_pair_together_and_the_seeds_in_turn(harness, monkeypatch):
    profiles, run_experiments, _ = harness
    profile = dataclasses.replace(profiles.PROFILES["smoke"], seeds=(0, 3))
    assert profile.timed_side_by_side
    recorder = _Recorder(0.2, threading.Barrier(2, timeout=10))
    monkeypatch.setattr(run_experiments, "run_training", recorder)
    stages = {}
    trained = run_experiments._train_timed(profile, _timed_runs(run_experiments, profile), Path("data"), Path("out"),
                                           False, stages)
    spans = recorder.spans
    assert set(trained) == set(spans) == {"mmsr", "baseline", "mmsr_seed3", "baseline_seed3"}
    assert _overlap(spans["mmsr"], spans["baseline"]) and _overlap(spans["mmsr_seed3"], spans["baseline_seed3"])
    seed0_end = max(spans["mmsr"][1], spans["baseline"][1])
    assert min(spans["mmsr_seed3"][0], spans["baseline_seed3"][0]) >= seed0_end, "seed 3 started beside seed 0"
    assert list(stages) == ["train mmsr + baseline (side by side)", "train mmsr_seed3 + baseline_seed3 (side by side)"]
    assert all(seconds >= 0.2 for seconds in stages.values())


def test_without_side_by_side_the_timed_runs_train_one_at_a_time(harness, monkeypatch):
    profiles, run_experiments, _ = harness
    profile = profiles.PROFILES["gpu"]
    assert not profile.timed_side_by_side, "one GPU: the two runs would share it"
    recorder = _Recorder(0.05)
    monkeypatch.setattr(run_experiments, "run_training", recorder)
    stages = {}
    run_experiments._train_timed(profile, _timed_runs(run_experiments, profile), Path("data"), Path("out"), False,
                                 stages)
    spans = recorder.spans
    assert not _overlap(spans["mmsr"], spans["baseline"])
    assert spans["mmsr"][1] <= spans["baseline"][0], "MMSR first, as planned"
    assert list(stages) == ["train mmsr", "train baseline"]


def test_only_the_2_core_profiles_train_side_by_side(harness):
    profiles, _, _ = harness
    assert {name for name, p in profiles.PROFILES.items() if p.timed_side_by_side} == {"smoke", "cpu"}


@pytest.mark.parametrize("side_by_side, says", [
    (True, "MMSR and the baseline trained side by side"),
    (False, "MMSR and the baseline trained one after another, each alone"),
])
def test_the_report_says_how_mmsr_and_the_baseline_were_timed(harness, committed, monkeypatch, side_by_side, says):  # noqa: F811
    _, _, report = harness
    text = _redraw(report, committed, monkeypatch, timed_side_by_side=side_by_side)
    assert says in text
    other = "one after another, each alone" if side_by_side else "trained side by side"
    assert other not in text

"""Unit tests for quality-against-time curves (mmsr.evaluate_curve) and snapshot series (mmsr.train.snapshots)."""
from __future__ import annotations

import json

import pytest

from mmsr.evaluate_curve import CurvePoint, QualityCurve, curve_report, equal_quality, time_to_quality
from mmsr.evaluate_training import RunTimes
from mmsr.models import Generator
from mmsr.train.snapshots import read_series, snapshot_steps, write_snapshot


def _points(*pairs, separate=None):
    separate = separate or [t for t, _ in pairs]
    return tuple(CurvePoint(i, (i,), t, s, p, 0.5) for i, ((t, p), s) in enumerate(zip(pairs, separate)))


def _curve(name, points, mode="mmsr"):
    run = RunTimes(name, f"{name}.run/summary.json", mode, ("4-2",), ("cpu",), ("finished",), (1,), (1.0,), 1.0)
    return QualityCurve(run, series=_FakeSeries(len(points) - 1), points=points)


class _FakeSeries:
    def __init__(self, count):
        self.count = count


def test_snapshot_steps_spread_the_budget_evenly():
    assert snapshot_steps(1000, 4) == [0, 250, 500, 750, 1000]
    assert snapshot_steps(10, 3) == [0, 4, 7, 10]
    assert snapshot_steps(2, 4) == [0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="count must be >= 1"):
        snapshot_steps(10, 0)


def test_time_to_quality_interpolates_between_snapshots():
    points = _points((0.0, 20.0), (100.0, 24.0), (300.0, 26.0), (400.0, 25.0))
    assert time_to_quality(points, 20.0) == 0.0
    assert time_to_quality(points, 22.0) == pytest.approx(50.0)
    assert time_to_quality(points, 25.0) == pytest.approx(200.0)
    assert time_to_quality(points, 26.0) == pytest.approx(300.0)
    assert time_to_quality(points, 26.5) is None


def test_time_to_quality_takes_the_first_crossing_of_a_noisy_curve():
    points = _points((0.0, 20.0), (100.0, 25.5), (200.0, 24.0), (300.0, 26.0))
    assert time_to_quality(points, 25.0) == pytest.approx(100.0 * 5.0 / 5.5)


def test_equal_quality_is_the_best_quality_both_reach():
    base = _curve("base", _points((0.0, 20.0), (100.0, 24.0), (200.0, 26.0)), mode="baseline")
    # The run gets to 25 dB in 60 s on one device (30 s on separate devices), then stops at 25.
    run = _curve("mmsr", _points((0.0, 20.0), (60.0, 25.0), (120.0, 24.8), separate=[0.0, 30.0, 60.0]))
    eq = equal_quality(run, base)
    assert eq.target_psnr == 25.0 and eq.limited_by == "mmsr"
    assert eq.baseline_s == pytest.approx(150.0)
    assert eq.one_device_s == pytest.approx(60.0) and eq.one_device_speedup == pytest.approx(2.5)
    assert eq.separate_devices_speedup == pytest.approx(5.0)
    report = curve_report([run, base], base)
    assert "| mmsr | 25.00 | mmsr | 150.0 | 60.0 | 2.50× | 30.0 | 5.00× |" in report


def test_equal_quality_reached_at_the_start_gives_no_speed_up():
    base = _curve("base", _points((0.0, 27.0), (100.0, 27.5)), mode="baseline")
    run = _curve("mmsr", _points((0.0, 26.0), (60.0, 26.5)))
    eq = equal_quality(run, base)
    assert eq.target_psnr == 26.5 and eq.at_start == ("base",)
    assert eq.one_device_speedup is None
    assert "— (base at the start)" in curve_report([run, base], base)


def test_read_series_explains_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_series(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no plan.json"):
        read_series(tmp_path)
    plan = {"mode": "mmsr", "configs": ["1-2w8", "2-2w8"], "boundaries": [0.1], "threshold": 0.0, "scale": 2}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(ValueError, match="class 0 has no snapshots.*--snapshots K"):
        read_series(tmp_path)

    generators = [Generator(scale=2, blocks=1, channels=8), Generator(scale=2, blocks=2, channels=8)]
    for k, (generator, config) in enumerate(zip(generators, plan["configs"])):
        for index in (0, 1):
            write_snapshot(tmp_path, klass=k, config=config, generator=generator, index=index, count=2, step=index,
                           elapsed_s=float(index), threshold=0.0, tile_size=16, overlap=4)  # fmt: skip
    series = read_series(tmp_path)
    assert not series.complete() and series.bundle(1).num_classes == 2
    with pytest.raises(ValueError, match="class 0 has no snapshot 2 and no final one"):
        series.bundle(2)
    with pytest.raises(ValueError, match=r"snapshot index must be in \[0, 2\]"):
        series.at(3)

    # A snapshot of another class in the wrong folder is refused by name.
    (tmp_path / "snapshots" / "class0" / "001.safetensors").write_bytes(
        (tmp_path / "snapshots" / "class1" / "001.safetensors").read_bytes()
    )
    with pytest.raises(ValueError, match=r"001\.safetensors: holds class 1 \(2-2w8\) snapshot 1, not class 0"):
        read_series(tmp_path)


def test_read_series_refuses_a_gap_before_later_snapshots(tmp_path):
    # Snapshots 1 and 2 of 3 without 0: e.g. --snapshots added when resuming; 1 must not stand in for 0.
    plan = {"mode": "baseline", "configs": ["1-2w8"], "boundaries": [], "threshold": 0.0, "scale": 2}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    generator = Generator(scale=2, blocks=1, channels=8)
    for index in (1, 2, 3):
        write_snapshot(tmp_path, klass=0, config="1-2w8", generator=generator, index=index, count=3, step=index,
                       elapsed_s=float(index), threshold=0.0, tile_size=16, overlap=4)  # fmt: skip
    with pytest.raises(ValueError, match="class 0 lacks snapshot\\(s\\) 0 but has later ones"):
        read_series(tmp_path)

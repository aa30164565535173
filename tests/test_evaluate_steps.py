"""Where a speed-up at equal quality comes from (mmsr.evaluate_steps): steps' worth, step cost and the
longest class's share, against hand-computed crossings."""
from __future__ import annotations

import pytest

from mmsr.evaluate_curve import CurvePoint, QualityCurve, crossing, curve_report, equal_quality
from mmsr.evaluate_seeds import mean_curve, seed_report
from mmsr.evaluate_steps import step_account
from mmsr.evaluate_training import RunTimes


class _FakeSeries:
    def __init__(self, count):
        self.count = count


def _run(name, configs, mode="mmsr", concurrent=False, seed=None):
    n = len(configs)
    return RunTimes(name, f"{name}/summary.json", mode, configs, ("cpu",) * n, ("finished",) * n, (1,) * n,
                    (1.0,) * n, 1.0, concurrent=concurrent, seed=seed)  # fmt: skip


def _mmsr(name="mmsr", concurrent=False, seed=None, psnrs=(20.0, 24.0, 26.0), scale=1.0):
    # Three classes: a cheap shallow one, a middle one, and the 16-8r, which holds most of the time.
    steps = [(0, 0, 0), (50, 100, 200), (100, 200, 400)]
    times = [(0.0, 0.0, 0.0), (5.0 * scale, 20.0 * scale, 60.0 * scale), (10.0 * scale, 40.0 * scale, 120.0 * scale)]
    points = []
    for i, (s, t, p) in enumerate(zip(steps, times, psnrs)):
        one = max(t) if concurrent else sum(t)
        points.append(CurvePoint(i, s, one, None if concurrent else max(t), p, 0.5, t))
    run = _run(name, ("4-2r", "8-6r", "16-8r"), concurrent=concurrent, seed=seed)
    return QualityCurve(run, _FakeSeries(2), tuple(points))


def _baseline(seed=None, psnrs=(20.0, 23.0, 25.0, 26.5), step_s=0.25):
    steps = (0, 200, 400, 600)
    points = tuple(CurvePoint(i, (n,), n * step_s, n * step_s, p, 0.5, (n * step_s,))
                   for i, (n, p) in enumerate(zip(steps, psnrs)))  # fmt: skip
    return QualityCurve(_run("base", ("16-8r",), "baseline", seed=seed), _FakeSeries(3), points)


def test_crossing_reads_any_value_where_the_curve_first_reaches_the_quality():
    points = _baseline().points
    assert crossing(points, 20.0).index == 0 and crossing(points, 20.0).of(lambda p: p.steps[0]) == 0
    where = crossing(points, 24.0)  # halfway from 23 dB (200 steps) to 25 dB (400 steps)
    assert (where.index, where.share) == (2, 0.5)
    assert where.of(lambda p: p.steps[0]) == pytest.approx(300.0)
    assert crossing(points, 27.0) is None


def test_the_account_splits_the_speed_ups_into_worth_step_cost_and_share():
    run, base = _mmsr(), _baseline()
    eq = equal_quality(run, base)  # 26 dB: the run's best, at its last snapshot
    assert eq.target_psnr == 26.0
    a = step_account(run, base, eq)
    assert (a.klass, a.config) == (2, "16-8r")
    # The run: 400 16-8r steps in 120 s, 170 s on one device. The baseline: 25 -> 26.5 dB between 400
    # and 600 steps, so 26 dB two thirds of the way: 533.3 steps, 133.3 s.
    assert a.class_steps == pytest.approx(400.0) and a.class_s == pytest.approx(120.0)
    assert a.baseline_steps == pytest.approx(1600 / 3) and a.baseline_s == pytest.approx(400 / 3)
    assert a.worth == pytest.approx(4 / 3)
    assert a.step_cost == pytest.approx(0.25 / 0.3)
    assert a.share == pytest.approx(120 / 170)
    assert a.separate_devices_speedup == pytest.approx(eq.separate_devices_speedup)
    assert a.one_device_speedup == pytest.approx(eq.one_device_speedup)


def test_a_crossing_between_snapshots_interpolates_the_class_steps_and_time():
    run, base = _mmsr(psnrs=(20.0, 24.0, 28.0)), _baseline(psnrs=(20.0, 23.0, 25.0, 26.0))
    eq = equal_quality(run, base)  # 26 dB: the baseline's best; the run gets there halfway to its last snapshot
    a = step_account(run, base, eq)
    assert a.class_steps == pytest.approx(300.0) and a.class_s == pytest.approx(90.0)
    assert a.baseline_steps == pytest.approx(600.0)
    assert a.worth == pytest.approx(2.0)
    assert a.separate_devices_speedup == pytest.approx(eq.separate_devices_speedup)
    assert a.one_device_speedup == pytest.approx(eq.one_device_speedup)


def test_a_concurrent_run_has_no_separate_devices_factor_and_its_longest_class_is_its_one_device_time():
    run, base = _mmsr(concurrent=True, scale=1.5), _baseline()
    eq = equal_quality(run, base)
    a = step_account(run, base, eq)
    assert a.concurrent and a.separate_devices_speedup is None
    assert a.share == pytest.approx(1.0)
    assert a.one_device_speedup == pytest.approx(eq.one_device_speedup)


def test_no_account_without_training_to_compare_or_without_class_times():
    base = _baseline()
    at_start = _mmsr(psnrs=(26.5, 26.6, 26.7))
    assert step_account(at_start, base, equal_quality(at_start, base)) is None
    run = _mmsr()
    bare = QualityCurve(run.run, run.series, tuple(CurvePoint(p.index, p.steps, p.one_device_s, p.separate_devices_s,
                                                              p.psnr_y, p.ssim_y) for p in run.points))  # fmt: skip
    assert step_account(bare, base, equal_quality(bare, base)) is None


def test_the_curve_report_shows_the_account_under_the_equal_quality_table():
    run, base = _mmsr(), _baseline()
    report = curve_report([run, base], base)
    assert report.index("Training time at equal quality") < report.index("Where the speed-up comes from")
    row = next(line for line in report.splitlines() if line.startswith("| mmsr | 26.00 | 2 (16-8r) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:] == ["400", "533", "1.33", "300 ms / 250 ms", "0.83", "0.71", "0.78×", "1.11×"]
    # The same speed-ups as the equal-quality table's row.
    assert "| mmsr | 26.00 | mmsr | 133.3 | 170.0 | 0.78× | 120.0 | 1.11× |" in report


def test_the_seed_report_accounts_for_the_mean_curves():
    runs = [_mmsr("w", seed=1, psnrs=(20.0, 24.0, 26.0)), _mmsr("w", seed=2, psnrs=(20.0, 24.0, 26.0), scale=2.0)]
    bases = [_baseline(seed=1), _baseline(seed=2)]
    mean = mean_curve(runs, "w")
    assert mean.configs == ("4-2r", "8-6r", "16-8r")
    assert mean.points[2].class_times == pytest.approx((15.0, 60.0, 180.0))
    report = seed_report(runs + bases, bases)
    assert "#### Mean curves: where the speed-up comes from" in report
    row = next(line for line in report.splitlines() if line.startswith("| w | 26.00 | 2 (16-8r) |"))
    # The mean 16-8r: 400 steps in 180 s; the baselines' mean: 533 steps, 133 s.
    assert "| 400 | 533 | 1.33 | 450 ms / 250 ms | 0.56 |" in row
    assert "| w | 1.50 · 1.33 |" in report  # the mean curve's worth at each snapshot


def test_the_worth_is_also_read_at_every_snapshot_of_the_run():
    from mmsr.evaluate_steps import worth_along

    run, base = _mmsr(), _baseline()
    # Snapshot 1: 24 dB with 200 16-8r steps; the baseline gets there halfway from 200 to 400 steps.
    # Snapshot 2: 26 dB with 400 steps; the baseline after 533.3.
    assert worth_along(run, base, 2) == pytest.approx([1.5, 4 / 3])
    assert worth_along(run, base, 0) == pytest.approx([6.0, 16 / 3])  # class 0's own steps: 50, 100
    beyond = _mmsr(psnrs=(20.0, 24.0, 27.0))  # the baseline never reaches 27 dB
    assert worth_along(beyond, base, 2) == [pytest.approx(1.5), None]
    report = curve_report([run, base], base)
    assert "| mmsr | 1.50 · 1.33 |" in report
    assert "| mmsr | 1.50 · — |" in curve_report([beyond, base], base)

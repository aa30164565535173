"""benchmarks/paper/class_alone.py: one MMSR class's model alone on every tile, along its snapshots,
against the baseline's curve at equal quality.

Imported through test_paper_profiles' ``paper_imported`` (the harness imports its siblings by name).
"""
from __future__ import annotations

import math

import pytest

from mmsr.evaluate_curve import CurvePoint
from mmsr.train.snapshots import read_series

from test_paper_class_curves import snapshot_run
from test_paper_profiles import paper_imported


@pytest.fixture
def class_alone(monkeypatch):
    with paper_imported(monkeypatch, "class_alone") as (module,):
        yield module


def _curve(*points):
    """(steps, seconds, PSNR-Y) triples as curve points."""
    return [CurvePoint(i, (steps,), seconds, seconds, psnr, 0.7) for i, (steps, seconds, psnr) in enumerate(points)]


def test_the_speed_up_is_read_where_each_curve_first_reaches_the_best_both_reach(class_alone):
    alone = _curve((0, 0.0, 26.0), (100, 50.0, 27.0), (200, 100.0, 27.5))
    baseline = _curve((0, 0.0, 26.0), (150, 60.0, 27.0), (300, 120.0, 27.4))
    text = "\n".join(class_alone.equal_quality_lines(alone, baseline))
    # 27.4 dB: the class's model crosses it 80% of the way from 100 to 200 steps (180 steps, 90 s); the
    # baseline at its last snapshot (300 steps, 120 s).
    assert "**27.40 dB**" in text
    assert "after 180 steps, 90.0 s of training; the baseline after 300 steps, 120.0 s" in text
    assert "**1.33×** (steps' worth 1.67, step cost 0.80)" in text


def test_curves_that_start_at_the_equal_quality_have_no_speed_up(class_alone):
    flat = _curve((0, 0.0, 27.0), (100, 50.0, 26.9))
    text = "\n".join(class_alone.equal_quality_lines(flat, _curve((0, 0.0, 26.0), (100, 40.0, 27.2))))
    assert "no training time to compare" in text and "Speed-up" not in text
    # Snapshot 0's time is the run's set-up, not training (the harness's smoke profile: 0.025 s at step 0).
    set_up = _curve((0, 0.025, 27.0), (100, 50.0, 26.9))
    assert class_alone.equal_quality_reading(set_up, _curve((0, 0.0, 26.0), (100, 40.0, 27.2)))["speedup"] is None


def test_every_snapshot_of_the_class_is_measured_alone(class_alone, tmp_path, val_folder):
    run = snapshot_run(tmp_path / "mmsr.run", "mmsr", ("1-2w8r", "2-2w8r"), (0.02,), 2, seed=0)
    points = class_alone.alone_points(read_series(run), 1, val_folder, device="cpu", limit=None)
    assert [(p.index, p.steps, p.one_device_s) for p in points] == [(0, (0,), 0.0), (1, (10,), 1.0), (2, (20,), 2.0)]
    assert all(math.isfinite(p.psnr_y) and 0 < p.ssim_y <= 1 for p in points)


@pytest.mark.parametrize("case, message", [
    ("no_images", "--val"),
    ("not_a_run", "--mmsr: "),
    ("class_out_of_range", "--class 2: "),
    ("baseline_without_summary", "--baseline: "),
])
def test_bad_arguments_name_what_is_wrong(class_alone, tmp_path, val_folder, capsys, case, message):
    run = snapshot_run(tmp_path / "mmsr.run", "mmsr", ("1-2w8r", "2-2w8r"), (0.02,), 2, seed=0)
    args = {"--mmsr": str(run), "--class": "1", "--baseline": str(tmp_path / "base.run"), "--val": str(val_folder)}
    if case == "no_images":
        args["--val"] = str(tmp_path / "nowhere")
    elif case == "not_a_run":
        args["--mmsr"] = str(tmp_path)
    elif case == "class_out_of_range":
        args["--class"] = "2"
    with pytest.raises(SystemExit) as exit_info:
        class_alone.main([item for pair in args.items() for item in pair])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err

"""Several seeds of one setting (mmsr.evaluate_seeds, label_seeds / find_baselines / baseline_for) and the
snapshot-score cache of `mmsr report --quality` (mmsr.quality_cache)."""
from __future__ import annotations

import json
import os

import pytest

from mmsr.evaluate_curve import CurvePoint, QualityCurve, curve_report
from mmsr.evaluate_seeds import mean_curve, seed_report
from mmsr.evaluate_training import (
    RunTimes,
    baseline_for,
    find_baseline,
    find_baselines,
    label_seeds,
    training_table,
)
from mmsr.quality_cache import CACHE_FILE, QualityCache, snapshot_key


def _run(name, seed, mode="mmsr", times=(10.0,), wall=None):
    configs = ("16-8r",) if mode == "baseline" else ("4-2r",) * len(times)
    return RunTimes(name, f"{name}{seed}/summary.json", mode, configs, ("cpu",) * len(times),
                    ("finished",) * len(times), (1,) * len(times), tuple(times), wall or sum(times), seed=seed)  # fmt: skip


class _FakeSeries:
    def __init__(self, count):
        self.count = count


def _curve(run, pairs, separate=None):
    separate = separate or [t for t, _ in pairs]
    points = tuple(CurvePoint(i, (i,), t, s, p, 0.5) for i, ((t, p), s) in enumerate(zip(pairs, separate)))
    return QualityCurve(run, _FakeSeries(len(points) - 1), points)


def _rows(text, first):
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {first} |")]  # fmt: skip


def test_runs_sharing_a_name_become_seeds_of_one_setting():
    runs = label_seeds([_run("w", 1), _run("w", 2), _run("solo", 7), _run("b", 1, "baseline"), _run("b", 2, "baseline")])
    assert [r.name for r in runs] == ["w (seed 1)", "w (seed 2)", "solo", "b (seed 1)", "b (seed 2)"]
    assert [r.setting for r in runs] == ["w", "w", "solo", "b", "b"] and runs[2].group is None
    with pytest.raises(ValueError, match=r"several runs are named 'w'.*distinct known seeds.*w1/summary.json \(seed 1\)"):
        label_seeds([_run("w", 1), _run("w", 1)])
    with pytest.raises(ValueError, match=r"seed unknown"):
        label_seeds([_run("w", None), _run("w", 2)])


def test_the_baseline_seeds_are_found_together_and_each_run_meets_its_own():
    runs = label_seeds([_run("w", 1), _run("w", 2), _run("w", 3), _run("b", 1, "baseline"), _run("b", 2, "baseline")])
    baselines = find_baselines(runs)
    assert [b.name for b in baselines] == ["b (seed 1)", "b (seed 2)"]
    assert find_baselines(runs, "b") == baselines and find_baselines(runs, "w (seed 1)") == [runs[0]]
    assert baseline_for(runs[1], baselines) is baselines[1]
    assert baseline_for(runs[2], baselines) is None  # seed 3 has no baseline, and there are two to choose from
    assert baseline_for(runs[2], baselines[:1]) is baselines[0]  # one baseline serves every run
    with pytest.raises(ValueError, match="several runs are baselines"):
        find_baseline(runs)  # the single-baseline helper refuses seeds rather than pick one
    with pytest.raises(ValueError, match="several runs are baselines"):
        find_baselines([_run("b", 1, "baseline"), _run("c", 1, "baseline")])
    with pytest.raises(ValueError, match="--baseline 'x' is not one of the runs"):
        find_baselines(runs, "x")


def test_table3_divides_each_run_by_the_baseline_of_its_seed():
    runs = label_seeds([
        _run("w", 1, times=(100.0, 300.0), wall=400.0), _run("w", 2, times=(100.0, 500.0), wall=600.0),
        _run("w", 3, times=(1.0, 1.0)),
        _run("b", 1, "baseline", times=(800.0,)), _run("b", 2, "baseline", times=(1200.0,)),
    ])  # fmt: skip
    table = training_table(runs, find_baselines(runs))
    assert "Baselines: **b (seed 1)**, **b (seed 2)**" in table
    rows = {r[0]: r for r in _rows(table, "w (seed 1)") + _rows(table, "w (seed 2)") + _rows(table, "w (seed 3)")
            if r[1] == "mmsr"}  # fmt: skip
    # seed 1: 400 / 800, 400 / 800, 300 / 800; seed 2: 600 / 1200, 600 / 1200, 500 / 1200; seed 3: none.
    assert rows["w (seed 1)"][4:] == ["400.0", "0.50", "400.0", "0.50", "300.0", "0.38"]
    assert rows["w (seed 2)"][4:] == ["600.0", "0.50", "600.0", "0.50", "500.0", "0.42"]
    assert rows["w (seed 3)"][5::2] == ["—", "—", "—"]


def test_mean_curve_averages_each_snapshot_and_refuses_different_counts():
    a = _curve(_run("w", 1), [(0.0, 20.0), (50.0, 25.0), (100.0, 25.0)])
    b = _curve(_run("w", 2), [(0.0, 20.0), (70.0, 23.0), (120.0, 24.0)])
    mean = mean_curve([a, b], "w")
    assert [p.psnr_y for p in mean.points] == [20.0, 24.0, 24.5]
    assert [p.one_device_s for p in mean.points] == [0.0, 60.0, 110.0]
    assert mean.psnr_range == ((20.0, 20.0), (23.0, 25.0), (24.0, 25.0)) and mean.seeds == (1, 2)
    assert mean.best_psnr == 24.5
    with pytest.raises(ValueError, match="different snapshot counts"):
        mean_curve([a, _curve(_run("w", 3), [(0.0, 20.0), (50.0, 25.0)])])


def _seeded_curves():
    runs = label_seeds([_run("w", 1), _run("w", 2), _run("b", 1, "baseline"), _run("b", 2, "baseline")])
    w1 = _curve(runs[0], [(0.0, 20.0), (50.0, 25.0), (100.0, 25.0)], separate=[0.0, 25.0, 50.0])
    w2 = _curve(runs[1], [(0.0, 20.0), (50.0, 23.0), (100.0, 24.0)], separate=[0.0, 25.0, 50.0])
    b1 = _curve(runs[2], [(0.0, 20.0), (100.0, 24.0), (200.0, 26.0)])
    b2 = _curve(runs[3], [(0.0, 20.0), (100.0, 22.0), (200.0, 26.0)])
    return [w1, w2, b1, b2], [b1, b2]


def test_each_seed_is_compared_with_the_baseline_of_its_seed():
    curves, baselines = _seeded_curves()
    text = curve_report(curves, baselines)
    # seed 1: equal quality 25 dB, the baseline of seed 1 at 150 s, the run at 50 s: 3.00x.
    assert "| w (seed 1) | 25.00 | w (seed 1) | 150.0 | 50.0 | 3.00× | 25.0 | 6.00× |" in text
    # seed 2: 24 dB, the baseline of seed 2 at 150 s, the run at 100 s: 1.50x.
    assert "| w (seed 2) | 24.00 | w (seed 2) | 150.0 | 100.0 | 1.50× | 50.0 | 3.00× |" in text
    lonely = _curve(label_seeds([_run("x", 9)])[0], [(0.0, 20.0), (10.0, 21.0)])
    assert "| x | — no baseline trained with seed 9 |" in curve_report([lonely, *curves], baselines)


def test_seed_report_gives_the_spread_and_the_mean_curves_speed_up():
    curves, baselines = _seeded_curves()
    text = seed_report(curves, baselines)
    row = _rows(text, "w")[0]
    # Finals 25 and 24; per-seed 3.00x and 1.50x, geometric mean sqrt(4.5) = 2.12.
    # Mean curves: the run (0, 20) (50, 24) (100, 24.5), the baseline (0, 20) (100, 23) (200, 26):
    # equal quality 24.5 dB, the baseline at 150 s, the run at 100 s (1.50x); separate devices 50 s (3.00x).
    assert row[1:] == ["1, 2", "24.50 (24.00–25.00)", "2.12× (1.50–3.00)", "24.50", "150.0", "100.0", "1.50×",
                       "50.0", "3.00×"]  # fmt: skip
    assert _rows(text, "b")[0][1:4] == ["1, 2", "26.00 (26.00–26.00)", "(baseline)"]
    assert "| w | 1 | 50.0 | 25.0 | 24.00 | 23.00–25.00 |" in text
    # A setting measured on seed 2 only meets the seed-2 baseline's curve (150 s to 24 dB: 1.50x), not the
    # mean of both baselines' (133 s: 1.33x).
    d2 = _curve(label_seeds([_run("d", 2)])[0], [(0.0, 20.0), (50.0, 23.0), (100.0, 24.0)])
    row = _rows(seed_report([*curves, d2], baselines), "d")[0]
    assert row[1:] == ["2", "24.00 (24.00–24.00)", "1.50×", "24.00", "150.0", "100.0", "1.50×", "100.0", "1.50×"]
    # One seed per setting: nothing to add.
    assert seed_report([curves[0], curves[2]], [curves[2]]) == ""


# The snapshot-score cache


def test_the_cache_key_changes_with_every_file_and_setting_it_depends_on(tmp_path):
    snap, image = tmp_path / "000.safetensors", tmp_path / "a.png"
    snap.write_bytes(b"weights")
    image.write_bytes(b"pixels")
    method = {"name": "w@0", "path": None, "configs": ["4-2r"], "context": 4, "device": "cuda:0"}
    key = snapshot_key([snap], [image], method, version="0.1.0", crop_border=4)
    # Labels and the GPU's index are not behaviour.
    assert key == snapshot_key([snap], [image], {**method, "name": "x", "device": "cuda:1"}, version="0.1.0",
                               crop_border=4)  # fmt: skip
    assert key != snapshot_key([snap], [image], {**method, "context": 0}, version="0.1.0", crop_border=4)
    assert key != snapshot_key([snap], [image], {**method, "device": "cpu"}, version="0.1.0", crop_border=4)
    assert key != snapshot_key([snap], [image], method, version="0.2.0", crop_border=4)
    assert key != snapshot_key([snap], [image, snap], method, version="0.1.0", crop_border=4)
    snap.write_bytes(b"weights, retrained")
    assert key != snapshot_key([snap], [image], method, version="0.1.0", crop_border=4)


def test_the_cache_keeps_scores_across_instances_and_ignores_a_bad_file(tmp_path):
    cache = QualityCache(tmp_path)
    assert cache.get("k") is None
    cache.save()
    assert not (tmp_path / CACHE_FILE).exists()  # nothing added, nothing written
    cache.put("k", psnr_y=26.5, ssim_y=0.71, images=14)
    cache.save()
    assert QualityCache(tmp_path).get("k") == {"psnr_y": 26.5, "ssim_y": 0.71, "images": 14}
    for bad in ("{not json", json.dumps({"format": "other", "entries": {"k": {}}}), "\xff"):
        (tmp_path / CACHE_FILE).write_text(bad, encoding="latin-1")
        assert QualityCache(tmp_path).get("k") is None
    (tmp_path / CACHE_FILE).write_text(json.dumps(
        {"format": "mmsr-quality-cache-1", "entries": {"k": {"psnr_y": "26"}, "j": {"psnr_y": 1, "ssim_y": 0.5, "images": 2}}}
    ))  # fmt: skip
    kept = QualityCache(tmp_path)
    assert kept.get("k") is None and kept.get("j") == {"psnr_y": 1, "ssim_y": 0.5, "images": 2}
    assert not [p for p in os.listdir(tmp_path) if p != CACHE_FILE]  # no temp file left behind

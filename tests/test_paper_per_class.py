"""benchmarks/paper/per_class.py: the paper harness's per-class stage, on real snapshot runs.

Imported through test_paper_profiles' ``paper_imported`` (the harness imports its siblings by name).
"""
from __future__ import annotations

import json
import math

import pytest

from mmsr.train.snapshots import read_series

from test_paper_class_curves import snapshot_run
from test_paper_profiles import paper_imported


@pytest.fixture
def per_class(monkeypatch):
    with paper_imported(monkeypatch, "per_class", "class_alone") as modules:
        yield modules


def _baseline_curve(psnrs):
    """A baseline curve as results.json keeps it: snapshot i at 15 i steps and 2 i seconds."""
    return [{"index": i, "steps": [15 * i], "one_device_s": 2.0 * i, "separate_devices_s": 2.0 * i, "psnr_y": p,
             "ssim_y": 0.5, "class_times": [2.0 * i]} for i, p in enumerate(psnrs)]


def test_the_stage_scores_every_snapshot_per_class_and_the_last_class_alone(per_class, tmp_path, val_folder):
    module, class_alone = per_class
    mmsr = snapshot_run(tmp_path / "mmsr.run", "mmsr", ("1-2w8", "2-2w8"), (0.02,), 2, seed=1)
    base = snapshot_run(tmp_path / "base.run", "baseline", ("2-2w8",), (), 2, seed=2)
    alone = class_alone.alone_points(read_series(mmsr), 1, val_folder, device="cpu", limit=None)
    # A baseline curve that rises past everything class 1's model reaches, so the reading has a crossing.
    curve = _baseline_curve([alone[0].psnr_y, max(p.psnr_y for p in alone) + 1.0, 99.0])
    result = module.per_class_stage({"set": "tiny", "curves": {"baseline": curve}}, mmsr, base, {"tiny": val_folder},
                                    device="cpu", limit=None, out=tmp_path)
    json.dumps(result)  # it goes into results.json
    assert result["classes"] == ["class 0 (1-2w8, TVAT < 0.02)", "class 1 (2-2w8, TVAT ≥ 0.02)"]
    assert [len(w) for w in result["worth"]] == [2, 2]  # MMSR's snapshots 1 and 2, per class
    assert all(math.isfinite(v) for run in ("mmsr", "baseline") for v in result["final"][run])
    a = result["alone"]
    assert (a["class"], a["config"]) == (1, "2-2w8")
    assert [p["psnr_y"] for p in a["points"]] == [p.psnr_y for p in alone]  # the same models, measured again
    assert a["target_psnr"] == pytest.approx(max(p.psnr_y for p in alone))
    reference = module.curve_points(curve)
    assert [(p.steps, p.one_device_s, p.class_times) for p in reference] == [((0,), 0.0, (0.0,)), ((15,), 2.0, (2.0,)),
                                                                             ((30,), 4.0, (4.0,))]
    expected = class_alone.equal_quality_reading(alone, reference)
    assert {k: a[k] for k in expected} == expected
    text = (tmp_path / result["report"]).read_text(encoding="utf-8")
    assert "| MMSR | 2/2 | 20 · 20 |" in text and "| baseline | 2/2 | 20 |" in text
    assert "Class 1's model (2-2w8) alone on every tile of tiny" in text
    assert text.count("| 2 | 20 | 2.0 |") == 1  # class 1's last snapshot: 20 steps, 2 s


def test_the_stage_says_why_it_measured_nothing(per_class, tmp_path, val_folder):
    module, _ = per_class
    no_curves = module.per_class_stage({"set": "tiny", "error": "no snapshots"}, tmp_path, tmp_path,
                                       {"tiny": val_folder}, device="cpu", limit=None, out=tmp_path)
    assert no_curves == {"error": "no equal-quality curves (no snapshots)"}
    not_a_run = module.per_class_stage({"set": "tiny", "curves": {"baseline": _baseline_curve([20.0])}},
                                       tmp_path / "missing.run", tmp_path / "missing.run", {"tiny": val_folder},
                                       device="cpu", limit=None, out=tmp_path)
    assert "missing.run" in not_a_run["error"]
    assert not (tmp_path / "class_curves.md").exists()

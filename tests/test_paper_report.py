"""The paper harness's report (benchmarks/paper/report.py, run_experiments.py): which bicubic a gain is
over, no conclusions from the smoke profile, and files written atomically.

The harness imports its siblings by bare name, so the tests put its folder on sys.path only while
they import it, and forget those modules after (as tests/test_paper_profiles.py does). The report is
redrawn, without charts, from a frozen copy of the cpu profile's results of 2026-11-27 (the files
report.py reads, in tests/data/), so that rerunning the profile into report_cpu/ does not change what
these tests check.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_paper_profiles import paper_imported

# report_cpu/ as the cpu profile wrote it on 2026-11-27 (cosine schedule, no step account): results.json
# and the files it names that report.py reads.
FROZEN_RUN = Path(__file__).resolve().parent / "data" / "paper_report_cpu_2026-11-27"

@pytest.fixture
def paper(monkeypatch):
    """The harness's ``report`` and ``run_experiments`` modules, imported from benchmarks/paper."""
    with paper_imported(monkeypatch, "report", "run_experiments") as modules:
        yield modules


@pytest.fixture
def committed(tmp_path):
    """The files report.py reads, copied from the frozen cpu profile run of 2026-11-27."""
    source = FROZEN_RUN
    results = json.loads((source / "results.json").read_text(encoding="utf-8"))
    for relative in [*results["quality"].values(), results["table3"]["mmsr_report"], "results.json"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / relative, tmp_path / relative)
    return tmp_path


def _redraw(report, out: Path, monkeypatch, **profile_changes) -> str:
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    results["profile"].update(profile_changes)
    (out / "results.json").write_text(json.dumps(results), encoding="utf-8")
    monkeypatch.setattr(report, "_draw_charts", lambda results, out: ({}, None))
    return report.write_report(out).read_text(encoding="utf-8")


def test_the_smoke_profile_draws_no_conclusion_about_the_paper(paper, committed, monkeypatch):
    report, _ = paper
    text = _redraw(report, committed, monkeypatch, name="smoke", checks_only=True)
    assert "only checks that the pipeline runs" in text
    assert "not reproduced" not in text and "as the paper claims" not in text
    assert "is the budget, not the method" not in text


def test_a_measuring_profile_still_answers_the_depth_question(paper, committed, monkeypatch):
    report, _ = paper
    text = _redraw(report, committed, monkeypatch)
    assert "only checks that the pipeline runs" not in text
    assert "**In this run the best depth" in text


def test_gains_say_which_bicubic_they_are_over(paper, committed, monkeypatch):
    report, _ = paper
    # The frozen run predates the torch-bicubic row: the report says what it did not measure.
    text = _redraw(report, committed, monkeypatch)
    assert "Gain over bicubic (Keys a = −0.5, the SR literature's bicubic)" in text
    assert "torch's bicubic (a = −0.75), not measured in this run" in text
    # With both rows, each model's gain is given over both.
    evaluation = committed / json.loads((committed / "results.json").read_text())["quality"]["set14"]
    data = json.loads(evaluation.read_text())
    bicubic = data["mean"]["bicubic"]
    data["mean"]["torch-bicubic"] = {**bicubic, "psnr_y_db": bicubic["psnr_y_db"] + 0.13}
    evaluation.write_text(json.dumps(data))
    text = _redraw(report, committed, monkeypatch)
    line = next(line for line in text.splitlines() if "Trained models vs the two bicubics on set14" in line)
    gap = data["mean"]["mmsr"]["psnr_y_db"] - data["mean"]["bicubic"]["psnr_y_db"]
    assert f"MMSR {gap:+.2f} / {gap - 0.13:+.2f} dB" in line and "+0.13 dB over bicubic here" in line


def test_results_report_and_tables_are_written_atomically(paper, committed, monkeypatch):
    report, run_experiments = paper
    written = []

    def recording(path, data):
        written.append(Path(path).name)
        Path(path).write_bytes(data)

    monkeypatch.setattr(report, "write_bytes_atomically", recording)
    monkeypatch.setattr(run_experiments, "write_bytes_atomically", recording)
    results = json.loads((committed / "results.json").read_text(encoding="utf-8"))
    run_experiments.write_results(committed, results)
    run_experiments._write_texture_csv(results["texture"], {}, committed / "texture_bins.csv")
    _redraw(report, committed, monkeypatch)
    assert written == ["results.json", "texture_bins.csv", "report.md"]


def test_the_profile_option_says_it_is_required(paper, capsys):
    _, run_experiments = paper
    with pytest.raises(SystemExit):
        run_experiments.main(["--help"])
    assert "required unless --report-only" in " ".join(capsys.readouterr().out.split())


def test_the_gan_phases_effect_is_read_from_the_logs_not_assumed(paper, committed, monkeypatch):
    # The report used to say the adversarial steps "barely move the models" while its own logs showed
    # the 16-8r losing 1.5 dB of validation PSNR in them.
    report, _ = paper
    log = committed / "runs" / "baseline.run" / "logs" / "class0.jsonl"
    log.parent.mkdir(parents=True)
    events = [{"config": "16-8r", "event": "val", "phase": "pixel", "val_psnr": 29.0},
              {"config": "16-8r", "event": "val", "phase": "pixel", "val_psnr": 29.4},
              {"config": "16-8r", "event": "val", "phase": "gan", "val_psnr": 28.8},
              {"config": "16-8r", "event": "finish", "phase": "done", "val_psnr": 28.1}]  # fmt: skip
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    text = _redraw(report, committed, monkeypatch)
    assert "barely move" not in text and "hardly for quality" not in text
    assert "from the best pixel-phase generator to the final one: baseline (16-8r) −1.30 dB." in text
    assert "These are the final bundles, after the GAN phase" in text


def test_an_equal_quality_ratio_that_a_hundredth_of_a_db_overturns_says_so(paper, committed, monkeypatch):
    report, _ = paper
    text = _redraw(report, committed, monkeypatch)
    # The frozen run: 1.25x at 26.642 dB, but the baseline passes 26.632 dB at 214 s, MMSR at 219 s.
    assert "**These ratios hang on a hundredth of a dB**: at 26.632 dB" in text and "(0.98×)" in text
    assert "PSNR-Y on set14 at the end of the pixel phase (the last snapshot" in text


def test_a_concurrent_mmsr_run_has_no_computed_separate_device_curve(paper, committed, monkeypatch):
    # mmsr report now gives concurrent runs no separate-device times (they shared the device); the
    # harness's report used to do arithmetic on them.
    report, _ = paper
    results = json.loads((committed / "results.json").read_text(encoding="utf-8"))
    eq = results["table3"]["equal_quality"]
    for point in eq["curves"]["mmsr"]:
        point["separate_devices_s"] = None
    eq["equal"]["separate_devices_s"] = eq["equal"]["separate_devices_speedup"] = None
    (committed / "results.json").write_text(json.dumps(results), encoding="utf-8")
    text = _redraw(report, committed, monkeypatch)
    assert "— (classes trained concurrently: their times shared the device)" in text
    assert "(0.98×). Near their ends" in text  # the sensitivity line, one device only


@pytest.mark.parametrize("concurrent, gan_steps, warns", [(True, 90, True), (True, 0, False), (False, 90, False)])
def test_a_concurrent_run_with_gan_phases_is_said_to_charge_mmsr_for_them(paper, committed, monkeypatch, concurrent,
                                                                          gan_steps, warns):
    # On the H200 (2026-11-28) the 16-8r class's pixel phase shared the GPU with the shorter classes'
    # GAN phases: its curve carried their work, the baseline's never does.
    report, _ = paper
    results = json.loads((committed / "results.json").read_text(encoding="utf-8"))
    results["table3"]["mmsr_concurrent"] = concurrent
    (committed / "results.json").write_text(json.dumps(results), encoding="utf-8")
    text = _redraw(report, committed, monkeypatch, gan_steps=gan_steps)
    assert ("shared the device with the shorter classes' GAN phases" in text) is warns
    assert ("includes waiting for the others" in text) is concurrent


def test_the_speed_up_is_split_into_its_factors_when_the_results_hold_a_step_account(paper, committed, monkeypatch):
    from mmsr.evaluate_steps import StepAccount

    report, run_experiments = paper
    text = _redraw(report, committed, monkeypatch)
    assert "Where the speed-up comes from" not in text  # the frozen results predate the account
    account = StepAccount(run="mmsr", target_psnr=26.6, klass=2, config="16-8r", class_steps=400.0, class_s=120.0,
                          baseline_steps=500.0, baseline_s=100.0, one_device_s=160.0, concurrent=False)
    results = json.loads((committed / "results.json").read_text(encoding="utf-8"))
    results["table3"]["equal_quality"]["steps"] = run_experiments._steps_dict(account)
    (committed / "results.json").write_text(json.dumps(results), encoding="utf-8")
    text = _redraw(report, committed, monkeypatch)
    # 500 / 400 = 1.25 baseline steps per class step; (100 / 500) / (120 / 400) = 0.67; 120 / 160 = 0.75.
    assert ("MMSR's longest class (class 2, 16-8r) reached the equal quality after 400 steps, the baseline after "
            "500: each of the class's steps was worth **1.25** of the baseline's. Its steps cost 0.67× the "
            "baseline's") in text
    assert "it held 0.75 of MMSR's one-device time. On separate devices the speed-up is their product, 0.83×." in text


def test_the_report_names_the_schedules_effect_on_the_equal_quality_reading(paper, committed, monkeypatch):
    report, _ = paper
    cosine = _redraw(report, committed, monkeypatch)  # the frozen run trained on cosine schedules
    assert "**Schedules of different lengths.**" in cosine and "this reading favours the baseline" in cosine
    assert "One learning rate throughout" not in cosine
    constant = _redraw(report, committed, monkeypatch, lr_schedule="constant")
    assert "**One learning rate throughout the pixel phase.**" in constant
    assert "Schedules of different lengths" not in constant
    assert "lr 0.0002 (constant)" in constant


def _per_class(**alone_changes):
    """A per-class reading as per_class.py leaves it in results.json: two classes, the second alone."""
    alone = {"class": 1, "config": "16-8r", "points": [], "target_psnr": 26.5, "alone_steps": 300.0, "alone_s": 60.0,
             "baseline_steps": 450.0, "baseline_s": 90.0, "speedup": 1.5, "worth": 1.5, "step_cost": 1.0}
    alone.update(alone_changes)
    return {"set": "set14", "report": "class_curves.md",
            "classes": ["class 0 (4-2r, TVAT < 0.05)", "class 1 (16-8r, TVAT ≥ 0.05)"],
            "final": {"mmsr": [33.5, 24.25], "baseline": [33.75, 24.0]}, "worth": [[0.0, None], [1.8, 1.6]],
            "alone": alone}


@pytest.mark.parametrize("per_class, expected, absent", [
    (None, [], ["### Per TVAT class"]),
    ({"error": "no equal-quality curves (no snapshots)"},
     ["### Per TVAT class", "Not measured: no equal-quality curves (no snapshots)"], ["| class 0"]),
    (_per_class(),
     ["| class 0 (4-2r, TVAT < 0.05) | 33.50 | 33.75 | -0.25 | 0.00 · — |",
      "| class 1 (16-8r, TVAT ≥ 0.05) | 24.25 | 24.00 | +0.25 | 1.80 · 1.60 |",
      "it needs 300 steps (60.0 s) and the baseline 450 (90.0 s): **1.50×** (steps' worth 1.50, step cost 1.00)",
      "[class_curves.md](class_curves.md)", "- `class_curves.md`: every snapshot's PSNR-Y per TVAT class"], []),
    (_per_class(speedup=None), ["one of the curves starts there: no training time to compare"], ["**1.50×**"]),
])
def test_the_per_class_reading_is_reported_when_the_results_hold_one(paper, committed, monkeypatch, per_class,
                                                                      expected, absent):
    report, _ = paper
    results = json.loads((committed / "results.json").read_text(encoding="utf-8"))
    if per_class is not None:
        results["table3"]["per_class"] = per_class
    (committed / "results.json").write_text(json.dumps(results), encoding="utf-8")
    text = _redraw(report, committed, monkeypatch)
    assert all(line in text for line in expected), [line for line in expected if line not in text]
    assert not any(line in text for line in absent)

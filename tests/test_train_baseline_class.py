"""`mmsr train --baseline --baseline-class K`: one model for every tile, trained on one TVAT class's crops.

The paper harness and benchmarks/paper/class_alone.py found MMSR's most textured class's 16-8r, used
alone, reaching the baseline's quality sooner than the baseline itself; this option trains that model
from scratch. Tiny models on CPU, as in test_train.py, whose data and helpers these tests share.
"""
from __future__ import annotations

import argparse
import json

import pytest

from mmsr.bundle import load_bundle
from mmsr.cli import main as mmsr_main
from mmsr.data import load_folder, tvat_classes
from mmsr.train.config import add_arguments, settings_from_args
from mmsr.train.trainer import FAIL_ENV, ClassTrainer

from test_train import TINY, _run_cli, _summary, data_dir  # noqa: F401  (data_dir is a fixture)


def _settings(*options: str):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(["data", "--out", "runs/b.safetensors", "--devices", "cpu", *options]))


def test_the_model_trains_class_k_budget_and_keeps_the_split_to_calibrate():
    s = _settings("--baseline", "--baseline-class", "2", "--pixel-steps", "150,450,1400", "--gan-steps", "0,0,30")
    assert (s.pixel_steps, s.gan_steps, s.baseline_class, s.mmsr_classes) == ((1400,), (30,), 2, 3)
    assert s.boundaries is None  # calibrated into 3 classes when the data is read
    given = _settings("--baseline", "--baseline-class", "0", "--boundaries", "0.05,0.15")
    assert given.boundaries == (0.05, 0.15) and given.classes == 1
    plain = _settings("--baseline", "--pixel-steps", "150,450,1400")
    assert (plain.pixel_steps, plain.boundaries, plain.baseline_class) == ((2000,), (), None)


@pytest.mark.parametrize("options, message", [
    (["--baseline-class", "1"], "--baseline-class chooses the crops of --baseline's one model; give --baseline too"),
    (["--baseline", "--baseline-class", "3"], "--baseline-class 3 is not one of the 3 TVAT classes (0 to 2"),
    (["--baseline", "--baseline-class", "-1"], "--baseline-class -1 is not one of the 3 TVAT classes"),
    (["--baseline", "--baseline-class", "0", "--classes", "1"], "--baseline-class needs two or more TVAT classes"),
])
def test_bad_baseline_class_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        _settings(*options)


def test_it_samples_only_class_k_and_validates_on_crops_of_every_kind(data_dir):
    s = _settings("--baseline", "--baseline-class", "1", "--configs", "1-2w8,2-2w8", "--baseline-config", "2-2w8",
                  "--crop", "32", "--batch", "4", "--val-crops", "16", "--gan-steps", "0")
    images = load_folder(data_dir, min_size=32, log=None).images
    boundaries = (0.05,)
    trainer = ClassTrainer(s.jobs()[0], s, images, None, boundaries, "cpu")
    lr, _ = trainer.batches.next(16)
    _, train_classes = tvat_classes(lr, boundaries, s.threshold)
    assert train_classes.tolist() == [1] * 16
    _, val_classes = tvat_classes(trainer.val_lr, boundaries, s.threshold)
    assert set(val_classes.tolist()) == {0, 1}


def test_the_bundle_routes_nothing_and_the_run_records_the_split_and_resumes_with_it(data_dir, tmp_path, capsys):
    out = tmp_path / "spec.safetensors"
    args = ["train", str(data_dir), "--out", str(out), *TINY, "--gan-steps", "0", "--pixel-steps", "4,8",
            "--snapshots", "2", "--baseline", "--baseline-class", "1", "--baseline-config", "2-2w8"]
    assert _run_cli(*args, env={FAIL_ENV: "0:5"}).returncode == 1  # stopped part-way, checkpointed at step 4
    assert mmsr_main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "class 0: resuming from" in err and "TVAT boundaries (from the run being resumed)" in err
    bundle = load_bundle(out)
    assert [c.name for c in bundle.configs] == ["2-2w8"] and list(bundle.boundaries) == []
    summary = _summary(out)
    plan = json.loads((tmp_path / "spec.run" / "plan.json").read_text())
    assert summary["mode"] == "baseline" and summary["boundaries"] == [] and plan["boundaries"] == []
    assert len(summary["crop_boundaries"]) == 1 and plan["crop_boundaries"] == summary["crop_boundaries"]
    assert summary["classes"][0]["steps"] == 8  # class 1's budget, not the sum
    assert bundle.provenance["baseline_class"] == 1
    assert bundle.provenance["crops"].startswith("TVAT class 1 of 2 only (")
    assert mmsr_main(["inspect", str(out)]) == 0
    assert "baseline, trained on TVAT class 1 of 2 only (" in capsys.readouterr().out
    # The snapshots are one-model bundles too, so `mmsr report --quality` reads the run as a baseline.
    from mmsr.train.snapshots import read_series

    series = read_series(tmp_path / "spec.run")
    final = series.bundle(series.count)
    assert series.boundaries == () and [c.name for c in final.configs] == ["2-2w8"] and list(final.boundaries) == []

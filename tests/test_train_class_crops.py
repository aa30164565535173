"""`mmsr train --class-crops and-above`: each MMSR class trains on its own TVAT class's crops and the
more textured classes' (the paper's `own` is the default).

Read per TVAT class, MMSR's shallow classes lost to the baseline on their own tiles, and a class's smooth
crops alone did not teach them (benchmarks/paper/shallow_cpu/); this option lets a class learn from the
more textured crops too. Tiny models on CPU, as in test_train.py, whose data and helpers these tests share.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import pytest
import torch

import mmsr
from mmsr.bundle import load_bundle
from mmsr.cli import main as mmsr_main
from mmsr.data import ClassBatches, RareClassError, load_folder, sample_scores, tvat_classes
from mmsr.evaluate_training import RunTimes, label_seeds, training_table
from mmsr.train.config import add_arguments, settings_from_args
from mmsr.train.trainer import ClassTrainer

from test_data import CROP, SCALE, _mixed_images
from test_train import TINY, _summary, data_dir  # noqa: F401  (data_dir is a fixture)


def _settings(*options: str):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(["data", "--out", "runs/c.safetensors", "--devices", "cpu", *options]))


def _three_class_boundaries(images, threshold):
    scores = sample_scores(images, crop=CROP, scale=SCALE, threshold=threshold, samples=256)
    return scores.quantile(torch.tensor([1 / 3, 2 / 3])).tolist()


@pytest.mark.parametrize("klass", [0, 1, 2])
def test_and_above_keeps_the_class_and_every_more_textured_one(klass):
    images, threshold = _mixed_images(), mmsr.DEFAULT_TVAT_THRESHOLD
    boundaries = _three_class_boundaries(images, threshold)
    batches = ClassBatches(images, crop=CROP, scale=SCALE, klass=klass, boundaries=boundaries, threshold=threshold,
                           seed=3, and_above=True)
    lr = torch.cat([batches.next(16)[0] for _ in range(4)])
    classes = mmsr.classify(mmsr.tvat(lr, threshold), boundaries)
    assert int(classes.min()) >= klass
    # Every class from klass up is drawn (each holds about a third of the crops; 64 draws miss one
    # with a chance of ~1e-11), so it is not just class klass under another name.
    assert set(classes.tolist()) == set(range(klass, 3))


def test_the_most_textured_class_draws_the_same_crops_in_both_modes():
    # What makes an and-above run's most textured class the same model as the paper-mode run's.
    images, threshold = _mixed_images(), mmsr.DEFAULT_TVAT_THRESHOLD
    boundaries = _three_class_boundaries(images, threshold)
    own, above = (ClassBatches(images, crop=CROP, scale=SCALE, klass=2, boundaries=boundaries, threshold=threshold,
                               seed=9, and_above=flag) for flag in (False, True))
    for _ in range(3):
        assert torch.equal(own.next(8)[1], above.next(8)[1])


def test_a_class_range_that_never_occurs_is_named_in_the_error():
    batches = ClassBatches(_mixed_images(), crop=CROP, scale=SCALE, klass=1, boundaries=[1e6], threshold=0.0,
                           min_fraction=0.05, and_above=True)
    with pytest.raises(RareClassError, match=r"TVAT classes 1 and above is too rare to train: 0 of"):
        batches.next(4)


def test_the_option_defaults_to_the_papers_crops_and_is_refused_for_a_baseline():
    assert _settings().class_crops == "own"
    assert _settings("--class-crops", "and-above").class_crops == "and-above"
    with pytest.raises(ValueError, match="--class-crops and-above chooses the crops of MMSR's classes, but --baseline"):
        _settings("--baseline", "--class-crops", "and-above")
    with pytest.raises(SystemExit):  # argparse names the choices
        _settings("--class-crops", "all")


def test_the_trainer_samples_and_above_but_validates_on_its_own_class(data_dir):
    s = _settings("--class-crops", "and-above", "--configs", "1-2w8,2-2w8", "--crop", "32", "--batch", "4",
                  "--val-crops", "16", "--gan-steps", "0")
    images = load_folder(data_dir, min_size=32, log=None).images
    boundaries = (0.05,)
    trainer = ClassTrainer(s.jobs()[0], s, images, None, boundaries, "cpu")
    lr = torch.cat([trainer.batches.next(16)[0] for _ in range(4)])
    _, train_classes = tvat_classes(lr, boundaries, s.threshold)
    assert set(train_classes.tolist()) == {0, 1}
    _, val_classes = tvat_classes(trainer.val_lr, boundaries, s.threshold)
    assert set(val_classes.tolist()) == {0}


def test_the_run_records_the_crops_and_a_resume_must_keep_them(data_dir, tmp_path, capsys):
    out = tmp_path / "above.safetensors"
    args = ["train", str(data_dir), "--out", str(out), *TINY, "--gan-steps", "0", "--pixel-steps", "4,4",
            "--class-crops", "and-above"]
    assert mmsr_main(args) == 0
    err = capsys.readouterr().err
    assert "class crops: each class trains on its own TVAT class's crops and the more textured classes'" in err
    summary = _summary(out)
    assert summary["settings"]["class_crops"] == "and-above"
    provenance = load_bundle(out).provenance
    assert provenance["class_crops"] == "and-above" and "--class-crops and-above" in provenance["crops"]
    assert mmsr_main(["inspect", str(out)]) == 0
    assert "mmsr, trained on each class's own TVAT class and the more textured ones" in capsys.readouterr().out
    assert mmsr_main([*args[:-2], "--resume"]) != 0  # the default, own, is another training
    assert "--class-crops: and-above (the run) vs own (this command)" in capsys.readouterr().err


def _times(name, seed, crops="own"):
    return RunTimes(name, f"{name}{seed}/summary.json", "mmsr", ("4-2r",), ("cpu",), ("finished",), (1,), (5.0,),
                    5.0, seed=seed, class_crops=crops)


def test_report_names_the_crops_and_does_not_pool_them_with_the_papers():
    baseline = replace(_times("b", 1), mode="baseline", configs=("16-8r",))
    table = training_table([_times("a", 1, "and-above"), baseline], baseline)
    assert "| a | mmsr, class crops and-above | 4-2r |" in table
    with pytest.raises(ValueError, match=r"class crops \(--class-crops\)"):
        label_seeds([_times("w", 1, "and-above"), _times("w", 2)])
